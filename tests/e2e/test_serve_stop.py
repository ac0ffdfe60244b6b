"""`make up`'s supervisor (python -m devstack serve) stops everything it started on SIGTERM,
also when a second SIGTERM comes while it is stopping (an impatient `kill`, an init system
that repeats itself): the second one must not cut the stop short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import UNCLEAN, alive, children

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_a_second_sigterm_while_the_supervisor_stops_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    # given `make up`'s supervisor with its stack up, run where its state file is this test's own
    (tmp_path / ".run").mkdir()
    log = (tmp_path / "serve.log").open("w")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "devstack", "serve", "--free-ports", "--workdir", str(tmp_path / "up"),
         "--policies", str(ROOT / "config" / "sla-policies.yaml")],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state_file = tmp_path / ".run" / "stack.json"
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not state_file.exists():
            assert supervisor.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        assert json.loads(state_file.read_text())["pid"] == supervisor.pid
        started = children(supervisor.pid)
        assert len(started) >= 7, started  # the broker, the SMTP sink, three gateways, three services
        # when it is sent SIGTERM, and SIGTERM again while it stops the services
        supervisor.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert supervisor.poll() is None, "stopped the whole stack in half a second: the test proves nothing"
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=120)
    finally:
        if supervisor.poll() is None:  # only on failure: stop what this test started, by its id
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(timeout=30)
        for pid in [pid for pid in started if alive(pid)]:
            os.kill(pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    # then it finished its stop: a clean exit, every process it started gone, its state file removed
    assert code == 0, output[-3000:]
    assert [pid for pid in started if alive(pid)] == []
    assert not state_file.exists()
    assert not [marker for marker in UNCLEAN if marker in output], output[-3000:]
