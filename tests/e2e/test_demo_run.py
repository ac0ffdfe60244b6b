"""`make run` (python -m devstack run): the demo comes up and its notifications reach the
departments' webhooks, and Ctrl-C or SIGTERM stops it cleanly — every process it started
is gone, and nothing is printed after the last word."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

UNCLEAN = ("Traceback", "Task was destroyed", "Exception ignored", "Event loop is closed")


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stop, to_group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigterm"])
def test_the_demo_runs_and_a_stop_signal_leaves_nothing_running(tmp_path: Path, stop: signal.Signals,
                                                                to_group: bool) -> None:
    # given `make run`'s supervisor, started the way a terminal starts it
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run", "--free-ports", "--workdir", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(supervisor.stdout), daemon=True)
    reader.start()
    try:
        # when the demo drives legs and a department's webhook has been called
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(" HOOK " in line for line in lines):
            assert supervisor.poll() is None, "".join(lines)
            time.sleep(0.5)
        assert any(" HOOK " in line for line in lines), "".join(lines)
        started = children(supervisor.pid)
        assert len(started) >= 4  # the broker, the services and the gateways
        # and it is told to stop (Ctrl-C in a terminal reaches the whole foreground group)
        if to_group:
            os.killpg(supervisor.pid, stop)
        else:
            supervisor.send_signal(stop)
        assert supervisor.wait(timeout=120) == 0
    finally:
        if supervisor.poll() is None:  # only on failure: stop what this test started, by its id
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(timeout=30)
    reader.join(timeout=10)
    output = "".join(lines)
    # then it says so last, everything it started is gone, and nothing is left half-closed
    assert output.rstrip().endswith("stopped; nothing left running"), output[-2000:]
    assert [pid for pid in started if alive(pid)] == []
    assert not [marker for marker in UNCLEAN if marker in output], output[-2000:]
