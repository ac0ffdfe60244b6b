"""Handoff events in, SLA events out, clock state in the table: the only `*_pb2` user here."""

from __future__ import annotations

from datetime import datetime, timedelta

from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.codec import CLOCK_NAMES, from_timestamp, new_envelope, priority_name, to_duration, to_timestamp
from sla.domain.clocks import (
    ACK,
    RESOLVE,
    Clock,
    ClockBreached,
    ClockEvent,
    ClockMet,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockWarning,
    LegClocks,
    LegInfo,
)

SOURCE = "sla"
_CLOCK_FROM_PB = CLOCK_NAMES
_CLOCK_TO_PB = {name: value for value, name in CLOCK_NAMES.items()}


def leg_info(event: handoff_events_pb2.HandoffEvent) -> LegInfo:
    """The leg a created event opens."""
    return LegInfo(
        handoff_id=event.handoff_id,
        case_id=event.case_id,
        customer_ref=event.customer_ref,
        department=event.department,
        priority=priority_name(event.created.priority),
        category=event.created.category,
    )


def occurred_at(event: handoff_events_pb2.HandoffEvent) -> datetime:
    return from_timestamp(event.envelope.occurred_at)


def encode_sla_event(event: ClockEvent, recorded_at: datetime) -> bytes:
    """A domain clock event as an SlaEvent record value."""
    leg, clock = event.leg, event.clock
    message = sla_events_pb2.SlaEvent(
        envelope=new_envelope(SOURCE, event.occurred_at, recorded_at, event_id=event.event_id),
        handoff_id=leg.handoff_id,
        case_id=leg.case_id,
        customer_ref=leg.customer_ref,
        department=leg.department,
        priority=types_pb2.Priority.Value(f"PRIORITY_{leg.priority}"),
        category=leg.category,
        clock=_CLOCK_TO_PB[clock.kind],
        policy_version=clock.policy_version,
        clock_sequence=clock.sequence,
    )
    if isinstance(event, ClockStarted):
        message.clock_started.CopyFrom(
            sla_events_pb2.ClockStarted(
                started_at=to_timestamp(clock.started_at),
                deadline=to_timestamp(clock.deadline),
                target=to_duration(clock.target),
            )
        )
    elif isinstance(event, ClockBreached):
        message.breached.CopyFrom(
            sla_events_pb2.ClockBreached(
                deadline=to_timestamp(clock.deadline), breached_at=to_timestamp(event.occurred_at)
            )
        )
    elif isinstance(event, ClockWarning):
        message.warning.CopyFrom(
            sla_events_pb2.ClockWarning(
                fraction=event.fraction, deadline=to_timestamp(clock.deadline),
                warned_at=to_timestamp(event.occurred_at),
            )
        )
    elif isinstance(event, ClockPaused):
        message.paused.CopyFrom(sla_events_pb2.ClockPaused(paused_at=to_timestamp(event.occurred_at)))
    elif isinstance(event, ClockResumed):
        message.resumed.CopyFrom(
            sla_events_pb2.ClockResumed(resumed_at=to_timestamp(event.occurred_at), deadline=to_timestamp(clock.deadline))
        )
    elif isinstance(event, ClockRecomputed):
        message.recomputed.CopyFrom(
            sla_events_pb2.ClockRecomputed(
                previous_deadline=to_timestamp(event.previous_deadline), deadline=to_timestamp(clock.deadline),
                target=to_duration(clock.target),
            )
        )
    elif isinstance(event, ClockMet):
        message.met.CopyFrom(
            sla_events_pb2.ClockMet(
                deadline=to_timestamp(clock.deadline),
                stopped_at=to_timestamp(event.occurred_at),
                late=event.late,
                overdue=to_duration(event.overdue),
                elapsed=to_duration(event.elapsed),
            )
        )
    return message.SerializeToString()


def status_name(value: int) -> str:
    """'WAITING_ON_CUSTOMER' for LEG_STATUS_WAITING_ON_CUSTOMER."""
    return types_pb2.LegStatus.Name(value).removeprefix("LEG_STATUS_") if value in types_pb2.LegStatus.values() else ""


def emitted_of(event: sla_events_pb2.SlaEvent) -> tuple[str, str, int, float | None] | None:
    """(handoff id, clock, sequence, warning fraction or None for a breach) for a warning or
    breach this service emitted; None for every other change."""
    if event.clock not in _CLOCK_FROM_PB:
        return None
    change = event.WhichOneof("change")
    if change == "breached":
        return event.handoff_id, _CLOCK_FROM_PB[event.clock], event.clock_sequence, None
    if change == "warning":
        return event.handoff_id, _CLOCK_FROM_PB[event.clock], event.clock_sequence, event.warning.fraction
    return None


def encode_state(state: LegClocks, partition: int) -> dict:
    """Table value: the leg's clocks and the partition that owns them, JSON-ready."""
    # Fields by hand rather than dataclasses.asdict, which deep-copies: this runs per event.
    clocks = {
        kind: {
            "kind": clock.kind,
            "sequence": clock.sequence,
            "started_at": clock.started_at.isoformat(),
            "target": clock.target.total_seconds(),
            "deadline": clock.deadline.isoformat(),
            "policy_version": clock.policy_version,
            "running": clock.running,
            "breached": clock.breached,
            "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
            "warned": list(clock.warned),
            "paused_at": clock.paused_at.isoformat() if clock.paused_at else None,
        }
        for kind, clock in state.clocks.items()
    }
    leg = state.leg
    return {
        "leg": {"handoff_id": leg.handoff_id, "case_id": leg.case_id, "customer_ref": leg.customer_ref,
                "department": leg.department, "priority": leg.priority, "category": leg.category},
        "clocks": clocks,
        "partition": partition,
    }


def decode_state(document: dict) -> tuple[LegClocks, int]:
    """Inverse of `encode_state`."""
    clocks = {
        kind: Clock(
            **{
                **fields,
                "started_at": datetime.fromisoformat(fields["started_at"]),
                "deadline": datetime.fromisoformat(fields["deadline"]),
                "stopped_at": datetime.fromisoformat(fields["stopped_at"]) if fields["stopped_at"] else None,
                "paused_at": datetime.fromisoformat(fields["paused_at"]) if fields.get("paused_at") else None,
                "warned": tuple(fields.get("warned", ())),
                "target": timedelta(seconds=fields["target"]),
            }
        )
        for kind, fields in document["clocks"].items()
    }
    return LegClocks(LegInfo(**document["leg"]), clocks), document["partition"]


def breach_deadline(event: sla_events_pb2.SlaEvent) -> datetime:
    """The deadline a breached SlaEvent passed."""
    return from_timestamp(event.breached.deadline)
