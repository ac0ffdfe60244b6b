"""Launching several processes side by side leaves none behind when one cannot be launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.processes import ServiceProcess, launch_each, launch_service


def idle(tmp_path: Path, name: str) -> ServiceProcess:
    """A process that runs until it is stopped (a module that only sleeps; no port)."""
    (tmp_path / "idle.py").write_text("import time\ntime.sleep(600)\n")
    return launch_service(name, "idle", {"PYTHONPATH": str(tmp_path)}, tmp_path / "logs")


def test_a_failed_launch_stops_the_processes_launched_before_it(tmp_path: Path) -> None:
    # given a first process that runs until stopped, then one that cannot be created
    started: list[ServiceProcess] = []

    def first() -> ServiceProcess:
        started.append(idle(tmp_path, "first"))
        return started[-1]

    def second() -> ServiceProcess:
        raise OSError("cannot create the process")

    # when they are launched together
    with pytest.raises(OSError, match="cannot create the process"):
        launch_each({"first": first, "second": second})
    # then the error reaches the caller and the first process is no longer running
    assert len(started) == 1 and not started[0].is_running()


def test_every_process_is_returned_by_its_key_when_all_launch(tmp_path: Path) -> None:
    # given two processes that run until stopped
    def launcher(name: str):
        return lambda: idle(tmp_path, name)

    # when they are launched together
    launched = launch_each({"a": launcher("a"), "b": launcher("b")})
    try:
        # then both run, each under its key
        assert list(launched) == ["a", "b"] and all(process.is_running() for process in launched.values())
        assert [process.name for process in launched.values()] == ["a", "b"]
    finally:
        for process in launched.values():
            process.stop()
