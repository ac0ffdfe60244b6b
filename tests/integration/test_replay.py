"""Replay: a month of history imported with `handoffctl import` and processed by an sla
worker on event time emits exactly the SLA events and repeat contacts that live
processing of the same events emits."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handoff.v1 import types_pb2

from common.codec import from_timestamp
from devstack.history import write_history
from handoff_svc.adapters import csvimport
from sla.adapters.policy_file import load_policies
from tests.live_reference import process_live
from tests.replay import replayed

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


# A billing leg raised to urgent (24x7, resolve 8 h) an hour after that target ran out, its
# customer calling between the new deadline and the change: the breach happens at the
# change, so the call is within the SLA whichever way it is processed.
RAISED = dict(handoff_id="replay-raised", case_id="replay-raised-case", customer_ref="replay-raised-cust",
              department="billing", priority="normal", created_at="2026-03-10T00:00:00+00:00",
              acknowledged_at="2026-03-10T00:05:00+00:00", resolved_at="2026-03-10T10:00:00+00:00",
              priority_changed_at="2026-03-10T09:00:00+00:00", changed_priority="urgent")
RAISED_CALLS = ("2026-03-10T01:00:00+00:00", "2026-03-10T08:30:00+00:00")


def _with_raised_leg(handoffs: Path, contacts: Path) -> None:
    """Add the raised leg and its customer's calls to a generated history."""
    with open(handoffs, newline="") as legs_in:
        rows = list(csv.DictReader(legs_in))
    columns = csvimport.HANDOFF_COLUMNS + csvimport.OPTIONAL_HANDOFF_COLUMNS
    with open(handoffs, "w", newline="") as legs_out:
        writer = csv.DictWriter(legs_out, columns, restval="")
        writer.writeheader()
        writer.writerows([*rows, RAISED])
    with open(contacts, "a", newline="") as contacts_out:
        csv.writer(contacts_out).writerows(
            [f"replay-raised-k{n}", RAISED["customer_ref"], RAISED["case_id"], "call", at, "where is my refund"]
            for n, at in enumerate(RAISED_CALLS))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    handoffs, contacts = write_history(tmp_path_factory.mktemp("history"), START, DAYS, CASES, prefix="replay")
    _with_raised_leg(handoffs, contacts)
    return handoffs, contacts


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
    # and the raised leg breached at the change, its customer's second call within the SLA
    [raised] = [e for e in live.sla_events.values()
                if e.handoff_id == RAISED["handoff_id"] and e.WhichOneof("change") == "breached"
                and e.clock == types_pb2.CLOCK_KIND_RESOLVE]
    changed_at = datetime.fromisoformat(RAISED["priority_changed_at"])
    assert from_timestamp(raised.breached.breached_at) == changed_at
    assert from_timestamp(raised.breached.deadline) == changed_at - timedelta(hours=1)
    [call] = [m for m in live.repeats.values() if m.handoff_id == RAISED["handoff_id"]]
    assert call.cause == types_pb2.REPEAT_CAUSE_WITHIN_SLA

    # when an sla worker on event time replays the month as `handoffctl import` writes it
    with replayed(tmp_path, POLICY_FILE, handoffs, contacts, live) as replay:
        replayed_events, repeats = replay.sla_events, replay.repeats

    # then the same SLA events, each once, and the same repeat contacts with the same causes
    replayed_ids = Counter(e.envelope.event_id for e in replayed_events)
    assert not [i for i, n in replayed_ids.items() if n > 1]
    assert set(replayed_ids) == set(live.sla_events)
    assert sorted(_signature(e) for e in replayed_events) == sorted(_signature(e) for e in live.sla_events.values())
    assert {e.envelope.event_id for e in replayed_events if e.WhichOneof("change") == "breached"} == breaches
    assert sorted(_repeat(m) for m in repeats) == sorted(_repeat(m) for m in live.repeats.values())
