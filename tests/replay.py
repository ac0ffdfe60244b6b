"""Replay of a history, as an analyst runs one: an sla worker on event time on a broker of
its own, and `handoffctl import` writing the history's files; what the worker emitted is
read back until there is as much as live processing of the same history emitted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.topics import REPEAT_CONTACTS, SLA_EVENTS
from devstack.stack import Stack
from tests.live_reference import LiveRun
from tests.support import read_events


@dataclass
class Replay:
    stack: Stack
    sla_events: list
    repeats: list


@contextmanager
def replayed(workdir: Path, policy_file: Path, handoffs: Path, contacts: Path, live: LiveRun,
             match: Callable[[object], bool] = lambda message: True, timeout: float = 180) -> Iterator[Replay]:
    """The SLA events and repeat contacts (those that `match`) of the imported history; the
    stack runs until the block ends."""
    stack = Stack(workdir, policy_file, env={"SLA_CLOCK": "event"})
    try:
        stack.start_kafka()
        stack.start_service("sla")
        imported = subprocess.run(
            [sys.executable, "-m", "handoffctl.main", "import", "--handoffs", str(handoffs), "--contacts",
             str(contacts), "--quiet"],
            env={**os.environ, "KAFKA_BOOTSTRAP": stack.bootstrap}, capture_output=True, text=True, timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        sla_events = read_events(stack.bootstrap, SLA_EVENTS, match,
                                 until=lambda found: len(found) >= len(live.sla_events), timeout=timeout)
        repeats = read_events(stack.bootstrap, REPEAT_CONTACTS, match,
                              until=lambda found: len(found) >= len(live.repeats), timeout=60)
        stack.check_alive()
        yield Replay(stack, sla_events, repeats)
    finally:
        stack.stop()
