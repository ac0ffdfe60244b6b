"""For every test: stacks started by the suite accept the suite's departments (tests.support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import stack
from tests.support import write_departments


@pytest.fixture(scope="session", autouse=True)
def suite_departments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stack, "DEPARTMENTS_FILE", write_departments(tmp_path_factory.mktemp("departments") / "departments.yaml"))
        yield
