"""SLA exactness end to end: histories imported with `handoffctl import` and replayed by an
sla worker on event time emit what the SLA semantics say (docs/architecture.md), and the
same as live processing of those histories.

1. acknowledged exactly at the ack deadline: met, no breach, not in ListBreaches;
3. raised to high priority after the new deadline: the breach happens at the change;
4. the same with the customer calling in between: the repeat is within the SLA;
6. a contact at the instant of a transfer: examined on the leg the transfer opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from handoff.v1 import sla_service_pb2 as sla_api
from handoff.v1 import sla_service_pb2_grpc as sla_grpc
from handoff.v1 import types_pb2

from common.codec import from_timestamp, to_timestamp
from common.grpcclient import channel
from devstack.stack import ADMIN_TOKEN
from handoff_svc.adapters.csvimport import CONTACT_COLUMNS, HANDOFF_COLUMNS, OPTIONAL_HANDOFF_COLUMNS, validate
from sla.adapters.policy_file import load_policies
from tests.live_reference import process_live
from tests.replay import replayed as replay_import
from tests.support import around_the_clock, unique, write_policies

pytestmark = pytest.mark.e2e

# 24x7: acknowledge within 30 minutes, resolve within 8 hours (high priority: 4 hours).
POLICIES = around_the_clock("30m", "8h") + """  - {department: "*", priority: HIGH, ack: 30m, resolve: 4h}
"""
ACK, RESOLVE = types_pb2.CLOCK_KIND_ACK, types_pb2.CLOCK_KIND_RESOLVE
WITHIN_SLA = types_pb2.REPEAT_CAUSE_WITHIN_SLA


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@dataclass
class Replayed:
    ids: dict[str, str]
    sla_events: list
    repeats: list
    live: object
    stub: sla_grpc.SlaServiceStub

    def of(self, leg: str, clock: int) -> list[tuple[str, datetime, datetime]]:
        """(change, instant, deadline) of one clock's SLA events, in the order emitted."""
        return [_told(e) for e in self.sla_events if e.handoff_id == self.ids[leg] and e.clock == clock]


_INSTANT = {"clock_started": "started_at", "warning": "warned_at", "breached": "breached_at", "met": "stopped_at",
            "recomputed": None}


def _told(event) -> tuple[str, datetime | None, datetime]:
    change = event.WhichOneof("change")
    body = getattr(event, change)
    field = _INSTANT[change]
    at = from_timestamp(getattr(body, field)) if field else from_timestamp(event.envelope.occurred_at)
    name = f"warning {body.fraction}" if change == "warning" else change
    return name, at, from_timestamp(body.deadline)


def _legs(ids: dict[str, str], customers: dict[str, str]) -> list[dict[str, str]]:
    def leg(name: str, customer: str, created: datetime, **fields) -> dict[str, str]:
        times = {key: value.isoformat() for key, value in fields.items() if isinstance(value, datetime)}
        text = {key: value for key, value in fields.items() if isinstance(value, str)}
        return {"handoff_id": ids[name], "case_id": f"case-{ids[name]}", "customer_ref": customers[customer],
                "department": "billing", "priority": "normal", "created_at": created.isoformat(), **times, **text}

    k0 = f"case-{ids['k0-billing']}"
    return [
        leg("ack-at-deadline", "c1", utc(2026, 5, 6, 10), acknowledged_at=utc(2026, 5, 6, 10, 30),
            resolved_at=utc(2026, 5, 6, 11)),
        leg("raised", "c3", utc(2026, 5, 22), acknowledged_at=utc(2026, 5, 22, 0, 5),
            priority_changed_at=utc(2026, 5, 22, 6), changed_priority="high", resolved_at=utc(2026, 5, 22, 9)),
        leg("raised-called", "c4", utc(2026, 5, 22), acknowledged_at=utc(2026, 5, 22, 0, 5),
            priority_changed_at=utc(2026, 5, 22, 6), changed_priority="high", resolved_at=utc(2026, 5, 22, 9)),
        {**leg("k0-billing", "c6", utc(2025, 11, 26, 12), transferred_to="claims",
               next_handoff_id=ids["k0-claims"]), "case_id": k0},
        {**leg("k0-claims", "c6", utc(2025, 11, 30, 1, 25), previous_handoff_id=ids["k0-billing"]),
         "case_id": k0, "department": "claims"},
    ]


def _contacts(ids: dict[str, str], customers: dict[str, str]) -> list[dict[str, str]]:
    def contact(name: str, customer: str, at: datetime, case_id: str) -> dict[str, str]:
        return {"contact_id": f"{name}-{ids['raised-called']}", "customer_ref": customers[customer],
                "case_id": case_id, "channel": "call", "contacted_at": at.isoformat()}

    k0 = f"case-{ids['k0-billing']}"
    return [
        contact("c4-first", "c4", utc(2026, 5, 22, 1), f"case-{ids['raised-called']}"),
        contact("c4-again", "c4", utc(2026, 5, 22, 5), f"case-{ids['raised-called']}"),
        contact("k0-first", "c6", utc(2025, 11, 27, 1, 16), k0),
        contact("k0-again", "c6", utc(2025, 11, 30, 1, 25), k0),
    ]


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    path.write_text("\n".join([",".join(columns)] + [",".join(row.get(c, "") for c in columns) for row in rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    workdir = tmp_path_factory.mktemp("sla-exactness")
    ids = {name: unique(name) for name in ("ack-at-deadline", "raised", "raised-called", "k0-billing", "k0-claims")}
    customers = {name: unique(f"cust-{name}") for name in ("c1", "c3", "c4", "c6")}
    handoffs = _write(workdir / "handoffs.csv", HANDOFF_COLUMNS + OPTIONAL_HANDOFF_COLUMNS, _legs(ids, customers))
    contacts = _write(workdir / "contacts.csv", CONTACT_COLUMNS, _contacts(ids, customers))
    policy_file = write_policies(workdir, POLICIES)

    # what live processing of these histories emits
    plan = validate(handoffs, contacts, datetime.now(timezone.utc), None)
    assert not plan.errors, plan.errors
    live = process_live(plan, load_policies(policy_file), until=plan.schedule()[-1][0])

    # and what an sla worker on event time emits when they are imported
    ours = set(customers.values())
    with replay_import(workdir, policy_file, handoffs, contacts, live, lambda m: m.customer_ref in ours) as replay:
        with channel(replay.stack.services["sla"].grpc, ADMIN_TOKEN) as sla_channel:
            yield Replayed(ids, replay.sla_events, replay.repeats, live, sla_grpc.SlaServiceStub(sla_channel))


def test_replay_emits_what_live_processing_emits(replayed: Replayed) -> None:
    assert sorted(e.envelope.event_id for e in replayed.sla_events) == sorted(replayed.live.sla_events)
    assert sorted((m.contact_id, m.cause, m.handoff_id) for m in replayed.repeats) == sorted(
        (m.contact_id, m.cause, m.handoff_id) for m in replayed.live.repeats.values())


def test_an_ack_exactly_at_its_deadline_is_met_without_a_breach(replayed: Replayed) -> None:
    # created 10:00, acknowledged 10:30 under a 30-minute ack target
    deadline = utc(2026, 5, 6, 10, 30)
    assert replayed.of("ack-at-deadline", ACK) == [
        ("clock_started", utc(2026, 5, 6, 10), deadline), ("warning 0.5", utc(2026, 5, 6, 10, 15), deadline),
        ("warning 0.8", utc(2026, 5, 6, 10, 24), deadline), ("met", deadline, deadline)]
    [met] = [e.met for e in replayed.sla_events if e.handoff_id == replayed.ids["ack-at-deadline"]
             and e.WhichOneof("change") == "met" and e.clock == ACK]
    assert not met.late and met.overdue.ToTimedelta() == timedelta(0)
    listed = replayed.stub.ListBreaches(sla_api.ListBreachesRequest(since=to_timestamp(utc(2025, 11, 1))), timeout=10)
    assert replayed.ids["ack-at-deadline"] not in {b.handoff_id for b in listed.breaches}


@pytest.mark.parametrize("leg", ["raised", "raised-called"])
def test_a_priority_change_past_the_new_deadline_breaches_at_the_change(replayed: Replayed, leg: str) -> None:
    # created 00:00 (resolve 8 h, deadline 08:00), raised to high (4 h) at 06:00, resolved 09:00
    old, new, change = utc(2026, 5, 22, 8), utc(2026, 5, 22, 4), utc(2026, 5, 22, 6)
    assert replayed.of(leg, RESOLVE) == [
        ("clock_started", utc(2026, 5, 22), old), ("warning 0.5", utc(2026, 5, 22, 4), old),
        ("recomputed", change, new), ("warning 0.8", change, new), ("breached", change, new),
        ("met", utc(2026, 5, 22, 9), new)]
    listed = replayed.stub.ListBreaches(sla_api.ListBreachesRequest(since=to_timestamp(utc(2025, 11, 1))), timeout=10)
    [breach] = [b for b in listed.breaches if b.handoff_id == replayed.ids[leg]]
    assert (from_timestamp(breach.breached_at), from_timestamp(breach.deadline)) == (change, new)


def test_a_customer_calling_before_the_change_called_within_the_sla(replayed: Replayed) -> None:
    [repeat] = [m for m in replayed.repeats if m.handoff_id == replayed.ids["raised-called"]]
    assert (from_timestamp(repeat.contacted_at), repeat.cause) == (utc(2026, 5, 22, 5), WITHIN_SLA)


def test_a_contact_at_the_instant_of_a_transfer_is_examined_on_the_leg_it_opened(replayed: Replayed) -> None:
    # replayed, whichever topic the worker read first, and processed live, where the call
    # arrives before the transfer
    for repeats in (replayed.repeats, replayed.live.repeats.values()):
        [repeat] = [m for m in repeats if m.contact_id.startswith("k0-again")]
        assert (repeat.handoff_id, repeat.department, repeat.cause) == (replayed.ids["k0-claims"], "claims",
                                                                         WITHIN_SLA)
