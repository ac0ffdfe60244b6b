"""The container image, read by a Dockerfile parser: built in stages from one pinned base,
locked dependencies, protobuf code generated inside, no build or dev tools in the runtime
stage, not root, one image whose command picks the service."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("handoff_svc", "sla", "notify", "gateways")


@pytest.fixture(scope="module")
def stages() -> list[list[dict]]:
    """The Dockerfile's instructions, one list per FROM."""
    found: list[list[dict]] = []
    for instruction in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def values(stage: list[dict], name: str) -> list[str]:
    return [instruction["value"] for instruction in stage if instruction["instruction"] == name]


def test_the_image_is_built_in_stages_from_one_base_pinned_to_an_exact_release(stages):
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    assert len(stages) >= 2
    bases = set(parser.parent_images)
    assert len(bases) == 1
    python = re.fullmatch(r"python:(3\.\d+)\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", bases.pop())
    assert python, "the base must name an exact Python release on a named Debian release"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={python.group(1)}" in requires


def test_the_runtime_stage_runs_as_a_numeric_user_that_is_not_root(stages):
    users = values(stages[-1], "USER")
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_every_pip_install_takes_its_versions_from_requirements_lock(stages):
    installs = [run for stage in stages for run in values(stage, "RUN") if "pip install" in run]
    assert installs
    for run in installs:
        for command in re.findall(r"pip install[^&]*", run):
            assert "--constraint requirements.lock" in command or "-r requirements.lock" in command, command


def test_the_protobuf_code_is_generated_in_the_image_not_copied(stages):
    runs = " ".join(run for stage in stages[:-1] for run in values(stage, "RUN"))
    assert "grpc_tools.protoc" in runs and "proto/handoff/v1/*.proto" in runs
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "services/common/gen" in ignored and ".venv" in ignored


def test_the_runtime_stage_installs_nothing_and_copies_only_the_virtualenv(stages):
    runtime = stages[-1]
    assert not any("pip" in run for run in values(runtime, "RUN"))
    copied_from_build = [value for value in values(runtime, "COPY") if value.startswith("--from=")]
    assert copied_from_build == ["--from=build /opt/venv /opt/venv"]
    dev = [spec.split("==")[0] for spec in
           tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]]
    # The code generator and the compiler are the dev tools the build stage needs, installed
    # in an environment of their own; the runtime stage names none.
    build_tools = {"grpcio-tools", "mypy", "setuptools"}
    build = " ".join(" ".join(instruction["value"] for instruction in stage) for stage in stages[:-1])
    runtime_text = " ".join(instruction["value"] for instruction in runtime)
    assert [tool for tool in dev if tool in build and tool not in build_tools] == []
    assert [tool for tool in dev if tool in runtime_text] == []
    tool_installs = [run for run in values(stages[0], "RUN") if "/opt/protoc/bin/pip install" in run]
    assert tool_installs and all(tool in tool_installs[0] for tool in build_tools)


def test_one_image_runs_every_service_chosen_by_its_command(stages):
    runtime = stages[-1]
    assert json.loads(values(runtime, "ENTRYPOINT")[-1]) == ["python", "-m"]
    assert json.loads(values(runtime, "CMD")[-1])[0] in SERVICES
    for module in SERVICES:
        assert list(ROOT.glob(f"services/*/{module}/__main__.py")), f"{module} has no __main__"
    assert "handoff_svc | sla | notify | gateways" in (ROOT / "Dockerfile").read_text()
