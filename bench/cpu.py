"""CPU seconds spent by given processes over a phase, read from /proc.

On a 2-core machine the services, the broker and the bench share the CPUs, so events/s
alone mixes a service's own cost with what its neighbours took. CPU seconds per process
say which one did the work, and events per CPU-second compares a service with the plain
aiokafka loop on equal terms. Without /proc (not Linux) the figures are left out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far, or None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return _stat_seconds(stat)


def _stat_seconds(stat: str) -> float:
    """User + system CPU time in a /proc stat line (of a process or of one of its threads)."""
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def compiler_seconds(pid: int) -> float | None:
    """CPU time so far of the JVM `pid`'s JIT compiler threads (HotSpot names them "C1
    CompilerThre…" and "C2 CompilerThre…"): how much of a broker's CPU went to compiling its
    own code rather than to serving requests. None when it cannot be read."""
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            if not (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                continue
            total += _stat_seconds((task / "stat").read_text())
        except OSError:  # a thread that ended meanwhile
            continue
    return total


class CpuMeter:
    """Snapshot CPU times of named processes at construction; `spent()` gives the deltas."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def spent(self) -> dict[str, float]:
        spent = {}
        for name, pid in self._pids.items():
            now, then = cpu_seconds(pid), self._start[name]
            if now is not None and then is not None:
                spent[name] = round(now - then, 2)
        return spent


def stack_pids(stack: Any) -> dict[str, int]:
    """The process ids of a devstack Stack: each service's, and the local broker's when it runs one."""
    pids = {name: service.pid for name, service in stack.services.items()}
    if stack.kafka is not None and stack.kafka.pid is not None:
        pids["kafka"] = stack.kafka.pid
    return pids


def stack_meter(stack: Any) -> CpuMeter:
    """A meter of every process of a devstack Stack and of the bench itself."""
    return CpuMeter({**stack_pids(stack), "bench": os.getpid()})


def metered(stack: Any, run: Callable[[], dict]) -> dict:
    """`run()`'s result with the CPU seconds each process of the stack (and the bench) spent
    meanwhile; with a local broker, also how many of its seconds went to its JIT compiler."""
    meter = stack_meter(stack)
    broker = stack_pids(stack).get("kafka")
    compiling = compiler_seconds(broker) if broker is not None else None
    started = time.perf_counter()
    result = run()
    measured = {**result, "cpu_seconds": meter.spent(), "wall_seconds": time.perf_counter() - started}
    if compiling is not None and (compiled := compiler_seconds(broker)) is not None:
        measured["kafka_jit_cpu_seconds"] = round(compiled - compiling, 2)
    return measured
