"""Protobuf <-> the read model: the four topics' records in, SlaService answers out.

The read model's only `*_pb2` user besides the servicer's request types.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from sys import intern

from handoff.v1 import contacts_pb2, handoff_events_pb2, sla_events_pb2, sla_service_pb2, types_pb2

from common.codec import CLOCK_NAMES, from_duration, from_timestamp, priority_name, to_duration, to_timestamp
from sla.adapters.readmodel_store import PriorityChange, SlaChange
from sla.domain.scorecard import ClockRecord, LegRecord, RepeatRecord, ReopenRecord, Scorecard

_CLOCK_TO_PB = {name: value for value, name in CLOCK_NAMES.items()}
# Per SlaEvent change: the fields of its message holding the change's instant and deadline.
_INSTANT_AND_DEADLINE = {
    "clock_started": ("started_at", "deadline"),
    "warning": ("warned_at", "deadline"),
    "breached": ("breached_at", "deadline"),
    "met": ("stopped_at", "deadline"),
    "paused": ("paused_at", None),
    "resumed": ("resumed_at", "deadline"),
    "recomputed": (None, "deadline"),
}
# Changes that mean nothing without their instant: a record lacking it is refused.
_NEEDS_INSTANT = frozenset({"clock_started", "breached", "met"})
CAUSE_FROM_PB = {
    value: types_pb2.RepeatCause.Name(value).removeprefix("REPEAT_CAUSE_").lower()
    for value in types_pb2.RepeatCause.values() if value != types_pb2.REPEAT_CAUSE_UNSPECIFIED
}
CAUSE_TO_PB = {name: value for value, name in CAUSE_FROM_PB.items()}


def _instant(message, field: str | None) -> datetime | None:
    return from_timestamp(getattr(message, field)) if field and message.HasField(field) else None


def sla_change(message: sla_events_pb2.SlaEvent) -> SlaChange | None:
    """The change an SlaEvent records; None for one without a change or of an unknown clock."""
    change = message.WhichOneof("change")
    if change is None or message.clock not in CLOCK_NAMES:
        return None
    body = getattr(message, change)
    at_field, deadline_field = _INSTANT_AND_DEADLINE[change]
    at, deadline = _instant(body, at_field), _instant(body, deadline_field)
    if change in _NEEDS_INSTANT and (at is None or deadline is None):
        raise ValueError(f"SlaEvent {change} of {message.handoff_id} lacks {at_field} or {deadline_field}")
    return SlaChange(
        leg=LegRecord(
            handoff_id=intern(message.handoff_id), department=intern(message.department),
            priority=priority_name(message.priority), category=intern(message.category), case_id=message.case_id,
            customer_ref=message.customer_ref,
        ),
        kind=CLOCK_NAMES[message.clock],
        sequence=message.clock_sequence,
        policy_version=intern(message.policy_version),
        change=change,
        at=at,
        deadline=deadline,
        target=from_duration(body.target) if change in ("clock_started", "recomputed") else None,
        late=change == "met" and body.late,
        elapsed=from_duration(body.elapsed) if change == "met" else None,
    )


def handoff_change(message: handoff_events_pb2.HandoffEvent) -> LegRecord | PriorityChange | ReopenRecord | None:
    """What the read model keeps of a HandoffEvent: a new leg, a priority or a reopen; else None."""
    change = message.WhichOneof("change")
    occurred = from_timestamp(message.envelope.occurred_at)
    if change == "created":
        created = message.created
        return LegRecord(
            handoff_id=intern(message.handoff_id), department=intern(message.department),
            priority=priority_name(created.priority), category=intern(created.category), case_id=message.case_id,
            customer_ref=message.customer_ref,
            created_at=from_timestamp(created.created_at) if created.HasField("created_at") else occurred,
        )
    if change == "priority_changed":
        return PriorityChange(message.handoff_id, priority_name(message.priority_changed.to_priority))
    if change == "reopened":
        return ReopenRecord(message.handoff_id, message.department, occurred)
    return None


def repeat_record(message: contacts_pb2.RepeatContactDetected) -> RepeatRecord:
    """A RepeatContactDetected as a record; an unknown cause is a ValueError (the record is skipped)."""
    if message.cause not in CAUSE_FROM_PB:
        raise ValueError(f"repeat contact {message.contact_id} has no known cause ({message.cause})")
    return RepeatRecord(
        contact_id=message.contact_id, cause=CAUSE_FROM_PB[message.cause],
        contacted_at=from_timestamp(message.contacted_at), handoff_id=message.handoff_id,
        department=message.department, cost_minor=message.cost_minor, currency=message.currency,
    )


def contact_time(message: contacts_pb2.ContactRecorded) -> tuple[str, datetime]:
    """(contact id, contacted at) of a ContactRecorded."""
    return message.contact_id, from_timestamp(message.contacted_at)


# -- answers ---------------------------------------------------------------------------


def _priority_pb(name: str) -> int:
    return types_pb2.Priority.Value(f"PRIORITY_{name}")


def clock_state_pb(clock: ClockRecord, left: timedelta) -> sla_service_pb2.ClockState:
    return sla_service_pb2.ClockState(
        clock=_CLOCK_TO_PB[clock.kind], sequence=clock.sequence, started_at=to_timestamp(clock.started_at),
        deadline=to_timestamp(clock.deadline), target=to_duration(clock.target),
        business_time_left=to_duration(left), running=clock.running, paused=clock.paused_at is not None,
        breached=clock.breached, met=clock.met, late=clock.late, policy_version=clock.policy_version,
    )


def handoff_sla_pb(leg: LegRecord, clocks: list[tuple[ClockRecord, timedelta]]) -> sla_service_pb2.HandoffSla:
    """A leg's clocks, each with its business time left."""
    return sla_service_pb2.HandoffSla(
        handoff_id=leg.handoff_id, department=leg.department, priority=_priority_pb(leg.priority),
        clocks=[clock_state_pb(clock, left) for clock, left in clocks],
    )


def breach_pb(leg: LegRecord, clock: ClockRecord) -> sla_service_pb2.Breach:
    return sla_service_pb2.Breach(
        handoff_id=clock.handoff_id, department=clock.department, priority=_priority_pb(leg.priority),
        clock=_CLOCK_TO_PB[clock.kind], deadline=to_timestamp(clock.breach_deadline or clock.deadline),
        breached_at=to_timestamp(clock.breached_at), case_id=leg.case_id,
    )


def scorecard_pb(card: Scorecard) -> sla_service_pb2.Scorecard:
    return sla_service_pb2.Scorecard(
        department=card.department,
        period_start=to_timestamp(card.period.start),
        period_end=to_timestamp(card.period.end),
        legs=card.legs,
        ack_compliance=card.ack_compliance,
        resolve_compliance=card.resolve_compliance,
        breaches=card.breaches,
        tta_p50=to_duration(card.tta_p50),
        tta_p90=to_duration(card.tta_p90),
        ttr_p50=to_duration(card.ttr_p50),
        ttr_p90=to_duration(card.ttr_p90),
        repeat_contacts=[
            sla_service_pb2.RepeatCount(cause=CAUSE_TO_PB[cause], count=count)
            for cause, count in card.repeat_contacts.items()
        ],
        avoidable_repeats=card.avoidable_repeats,
        failure_demand_cost_minor=card.failure_demand_cost_minor,
        currency=card.currency,
        first_contact_resolution=card.first_contact_resolution,
        reopens=card.reopens,
        ack_outcomes=card.ack_outcomes,
        resolve_outcomes=card.resolve_outcomes,
        ack_running=card.ack_running,
        resolve_running=card.resolve_running,
        tta_n=card.tta_n,
        ttr_n=card.ttr_n,
        fcr_n=card.fcr_n,
        open_legs=card.open_legs,
        costliest_legs=[sla_service_pb2.LegCost(handoff_id=leg.handoff_id, case_id=leg.case_id,
                                                department=leg.department, avoidable_repeats=leg.avoidable_repeats,
                                                cost_minor=leg.cost_minor) for leg in card.costliest_legs],
    )
