"""Replay: a month of history imported with `handoffctl import` and processed by an sla
worker on event time emits exactly the SLA events and repeat contacts that live
processing of the same events emits."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from common.topics import REPEAT_CONTACTS, SLA_EVENTS
from devstack.history import write_history
from devstack.stack import Stack
from handoff_svc.adapters import csvimport
from sla.adapters.policy_file import load_policies
from tests.live_reference import process_live
from tests.support import read_events

pytestmark = pytest.mark.integration

# Across the spring DST change (29 March) and Easter (3-6 April) in Germany, on the
# shipped policies with their Berlin office calendars.
START = datetime(2026, 3, 9, tzinfo=timezone.utc)
DAYS, CASES = 31, 500
POLICY_FILE = Path("config/sla-policies.yaml")


def _signature(event) -> tuple:
    change = event.WhichOneof("change")
    return event.handoff_id, event.clock, event.clock_sequence, change


def _repeat(message) -> tuple:
    return (message.contact_id, message.cause, message.handoff_id, message.department, message.cost_minor,
            message.previous_contact_id)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_history(tmp_path_factory.mktemp("history"), START, DAYS, CASES, prefix="replay")


def test_replay_on_event_time_emits_what_live_processing_emits(history: tuple[Path, Path], tmp_path: Path) -> None:
    # given a generated month of legs and contacts, and what live processing makes of it
    handoffs, contacts = history
    policies = load_policies(POLICY_FILE)
    plan = csvimport.validate(handoffs, contacts, datetime.now(timezone.utc), None)
    assert not plan.errors
    last = plan.schedule()[-1][0]
    live = process_live(plan, policies, until=last)
    breaches = {i for i, e in live.sla_events.items() if e.WhichOneof("change") == "breached"}
    causes = Counter(m.cause for m in live.repeats.values())
    # the month is one a test can tell something from: breaches, and repeats of every kind
    assert len(breaches) > 50 and len(causes) == 4, (len(breaches), causes)

    # when an sla worker on event time replays the month as `handoffctl import` writes it
    stack = Stack(tmp_path, POLICY_FILE, env={"SLA_CLOCK": "event"})
    try:
        stack.start_kafka()
        stack.start_service("sla")
        imported = subprocess.run(
            [sys.executable, "-m", "handoffctl.main", "import", "--handoffs", str(handoffs), "--contacts",
             str(contacts), "--quiet"],
            env={**os.environ, "KAFKA_BOOTSTRAP": stack.bootstrap}, capture_output=True, text=True, timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        replayed = read_events(stack.bootstrap, SLA_EVENTS, lambda e: True,
                               until=lambda found: len(found) >= len(live.sla_events), timeout=180)
        repeats = read_events(stack.bootstrap, REPEAT_CONTACTS, lambda e: True,
                              until=lambda found: len(found) >= len(live.repeats), timeout=60)
        stack.check_alive()
    finally:
        stack.stop()

    # then the same SLA events, each once, and the same repeat contacts with the same causes
    replayed_ids = Counter(e.envelope.event_id for e in replayed)
    assert not [i for i, n in replayed_ids.items() if n > 1]
    assert set(replayed_ids) == set(live.sla_events)
    assert sorted(_signature(e) for e in replayed) == sorted(_signature(e) for e in live.sla_events.values())
    assert {e.envelope.event_id for e in replayed if e.WhichOneof("change") == "breached"} == breaches
    assert sorted(_repeat(m) for m in repeats) == sorted(_repeat(m) for m in live.repeats.values())
