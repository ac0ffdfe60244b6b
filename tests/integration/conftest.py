"""One broker for the integration tests: KAFKA_BOOTSTRAP when set, else a local one.

Never skipped: when no broker can be had, every test that needs one fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from common.localkafka import LocalKafka, create_topics, wait_for_kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        wait_for_kafka(external, timeout=60)
        create_topics(external)
        yield external
        return
    with LocalKafka(tmp_path_factory.mktemp("session-kafka")) as kafka:
        create_topics(kafka.bootstrap)
        yield kafka.bootstrap
