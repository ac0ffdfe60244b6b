"""Start a service as a child process, wait for its ready line, stop it by its pid.

Children get their own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in order; nothing is ever stopped by name. A supervisor killed
outright takes its children with it (common.lifeline).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common import lifeline
from devstack.compile import with_compiled


# How long a service may take to print its ready line (it restores its state first).
SERVICE_READY_SECONDS = 90


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message carries its log's tail."""


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[str]
    log_path: Path
    endpoints: dict[str, str] = field(default_factory=dict)
    # Set by the reader of its output once the service has printed its ready line.
    ready: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def grpc(self) -> str:
        return self.endpoints["grpc"]

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch_service(name: str, module: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Run `python -m module` with `env` added and return at once; `wait_ready` waits for its
    ready line, so several services can start side by side."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("a")
    process = subprocess.Popen(
        lifeline.command([sys.executable, "-m", module]),
        env=with_compiled({**os.environ, **env}),
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        start_new_session=True,
    )
    log_file.close()
    service = ServiceProcess(name, process, log_path)

    def pump() -> None:
        # Drain stdout for the life of the process so the child never blocks on a full pipe.
        with log_path.open("a") as sink:
            for line in process.stdout:  # type: ignore[union-attr]
                if not service.ready.is_set() and line.startswith('{"ready"'):
                    document = json.loads(line)
                    document.pop("ready")
                    service.endpoints.update(document)
                    service.ready.set()
                sink.write(line)
                sink.flush()

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
    return service


def launch_each(launches: Mapping[str, Callable[[], ServiceProcess]]) -> dict[str, ServiceProcess]:
    """Launch each process in turn, by key. If one cannot be launched, the ones launched before
    it are stopped (nobody else holds them yet) and the error is raised."""
    launched: dict[str, ServiceProcess] = {}
    try:
        for key, launch in launches.items():
            launched[key] = launch()
    except BaseException:
        for process in launched.values():
            process.stop()
        raise
    return launched


def wait_ready(service: ServiceProcess, timeout: float = SERVICE_READY_SECONDS) -> ServiceProcess:
    """Return `service` once it has printed its ready line; stop it and raise ServiceFailed,
    with its log's tail, when it exits first or is not ready within `timeout`."""
    deadline = time.monotonic() + timeout
    process = service.process
    while not service.ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            # Why, before stop() gives a process that was merely slow an exit code of its own.
            why = f"exited with {process.returncode}" if process.returncode is not None else \
                f"was not ready within {timeout:g} s (stopped)"
            service.stop()
            raise ServiceFailed(f"{service.name} {why}; last log lines:\n{_tail(service.log_path)}")
    return service


def start_service(
    name: str, module: str, env: dict[str, str], log_dir: Path, timeout: float = SERVICE_READY_SECONDS
) -> ServiceProcess:
    """Run `python -m module` with `env` added; return once it prints its ready line."""
    return wait_ready(launch_service(name, module, env, log_dir), timeout)
