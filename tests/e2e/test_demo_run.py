"""`make run` (python -m devstack run): the simulated centre on a live screen, read through
tmux as a person would see it — a repeat call charged to a slow department within a
minute, keys that pause and speed up, a resize — and a stop by Ctrl-C or SIGTERM that prints
the charge-back table and leaves no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import UNCLEAN, alive, children

pytestmark = pytest.mark.e2e

SLOW = "(Field Service|Claims)"
# A repeat call the engine attributed to a slow department's breached leg, with its cost.
REPEAT_ON_SCREEN = re.compile(rf"avoidable repeat\s+{SLOW}\s+CASE-\d+\s+customer called again .*\d+\.\d\d EUR")
CHARGED_ON_SCREEN = re.compile(rf"charged\s+{SLOW}\s+.*failure demand \d+\.\d\d EUR")
RUN = [sys.executable, "-m", "devstack", "run", "--free-ports"]


class Terminal:
    """A tmux server of this test's own (its own socket), one window running a command."""

    def __init__(self, name: str, command: list[str], width: int, height: int) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is needed to read the live screen (apt-get install tmux)")
        self.socket = name
        shell = " ".join(command) + "; echo EXIT=$?; sleep 300"
        # The server takes this environment; COLUMNS and LINES would pin the program's idea of the size.
        self._env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self._tmux("new-session", "-d", "-s", "run", "-x", str(width), "-y", str(height), shell)
        self.shell_pid = int(self._tmux("display-message", "-p", "-t", "run", "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=30, env=self._env).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "run")

    def history(self) -> str:
        return self._tmux("capture-pane", "-p", "-S", "-200", "-t", "run")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "run", *keys)

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", "run", "-x", str(width), "-y", str(height))

    def wait_for(self, test, timeout: float, read=None) -> str:
        read = read or self.screen
        deadline = time.monotonic() + timeout
        while True:
            text = read()
            if test(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.5)

    def close(self) -> set[int]:
        """Stop the run if it still runs (Ctrl-C), then the server; the run's processes still alive after that."""
        try:
            if "EXIT=" not in self.history():
                self.keys("C-c")
                self.wait_for(lambda s: "EXIT=" in s, 120, read=self.history)
        except subprocess.CalledProcessError:
            pass  # the server is gone already; what is left of the run is found below
        left = {pid for pid in children(self.shell_pid) if alive(pid)}
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
        return {pid for pid in left if alive(pid) and "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()}


@pytest.mark.timeout(600)  # a broker, the stack and a minute of demo, on a shared machine
def test_the_live_view_shows_a_repeat_call_charged_to_a_slow_department_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    # given `make run` in a 160 x 50 terminal
    terminal = Terminal(f"handoff-test-{os.getpid()}", [*RUN, "--workdir", str(tmp_path / "run")], 160, 50)
    try:
        screen = terminal.wait_for(lambda s: "Simulated contact centre" in s or "EXIT=" in s, 240)
        assert "Simulated contact centre" in screen, terminal.history()
        # when a minute passes, then a repeat call attributed to a slow department and its cost are on screen
        screen = terminal.wait_for(lambda s: REPEAT_ON_SCREEN.search(s) or CHARGED_ON_SCREEN.search(s), 60)
        assert REPEAT_ON_SCREEN.search(screen) or CHARGED_ON_SCREEN.search(screen), screen
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", screen), "a raw leg id is on screen"
        started = children(terminal.shell_pid)
        assert len(started) >= 5  # the run, the broker, the services and the gateways
        # and space pauses, + doubles the speed
        terminal.keys(" ")
        assert "PAUSED" in terminal.wait_for(lambda s: "PAUSED" in s, 10)
        terminal.keys("+")
        assert "speed 3,600x" in terminal.wait_for(lambda s: "speed 3,600x" in s, 10)
        terminal.keys(" ")
        # and a narrower terminal gets a screen that fits it
        terminal.resize(100, 40)
        narrow = terminal.wait_for(lambda s: max(map(len, s.splitlines()), default=0) <= 100 and "Claims" in s, 10)
        assert max(map(len, narrow.splitlines())) <= 100 and "Claims" in narrow, narrow
        # when Ctrl-C is pressed
        terminal.keys("C-c")
        final = terminal.wait_for(lambda s: "EXIT=" in s, 120, read=terminal.history)
    finally:
        leftover = terminal.close()
        for pid in leftover:  # only on failure: what this test started, by its id
            os.kill(pid, signal.SIGKILL)
    # then the charge-back table is printed with cost centres, everything stopped, nothing is left
    assert "EXIT=0" in final, final
    assert "Charge-back" in final and "CC-4200" in final, final
    assert re.search(r"stopped; nothing left running\s+EXIT=0", final), final
    assert leftover == set() and not [pid for pid in started if alive(pid)]
    assert not [marker for marker in UNCLEAN if marker in final], final


def piped_run(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    """`make run` with its output piped (no terminal, no keys); its lines are collected as they come."""
    supervisor = subprocess.Popen([*RUN, "--workdir", str(tmp_path / "run")], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True, env={**os.environ, "COLUMNS": "160"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(supervisor.stdout), daemon=True)
    reader.start()
    return supervisor, lines, reader


def wait_until_up(supervisor: subprocess.Popen[str], lines: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any("stack is up" in line for line in lines):
        assert supervisor.poll() is None, "".join(lines)
        time.sleep(0.5)
    assert any("stack is up" in line for line in lines), "".join(lines)


def test_sigterm_stops_the_run_without_a_terminal_and_leaves_nothing_running(tmp_path: Path) -> None:
    # given `make run` without a terminal (output piped, no keys)
    supervisor, lines, reader = piped_run(tmp_path)
    try:
        wait_until_up(supervisor, lines)
        time.sleep(15)  # the simulation drives the services for a while
        started = children(supervisor.pid)
        assert len(started) >= 4
        # when it is sent SIGTERM
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=120) == 0
    finally:
        if supervisor.poll() is None:  # only on failure: stop what this test started, by its id
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(timeout=30)
    reader.join(timeout=10)
    output = "".join(lines)
    # then it prints the charge-back table, says so last, and everything it started is gone
    assert "Charge-back" in output and "CC-4100" in output, output[-3000:]
    assert output.rstrip().endswith("stopped; nothing left running"), output[-2000:]
    assert [pid for pid in started if alive(pid)] == []
    assert not [marker for marker in UNCLEAN if marker in output], output[-2000:]


def test_a_supervisor_killed_outright_takes_every_child_with_it(tmp_path: Path) -> None:
    # given `make run` with its stack up: the broker, the gateways and the services
    supervisor, lines, reader = piped_run(tmp_path)
    started: set[int] = set()
    try:
        wait_until_up(supervisor, lines)
        started = children(supervisor.pid)
        assert len(started) >= 8, "".join(lines)  # broker, SMTP sink, three gateways, three services
        # when the supervisor is killed with SIGKILL, so it cannot stop anything itself
        supervisor.kill()
        supervisor.wait(timeout=30)
        # then every process it started is gone soon after, each checked by its pid
        deadline = time.monotonic() + 30
        while [pid for pid in started if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in started if alive(pid)] == []
    finally:
        for pid in [pid for pid in started | children(supervisor.pid) if alive(pid)]:
            os.kill(pid, signal.SIGKILL)  # only on failure: what this test started, by its id
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(timeout=30)
    reader.join(timeout=10)
