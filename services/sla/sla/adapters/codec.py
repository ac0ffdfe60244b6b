"""Handoff events in, SLA events out, clock state in the table: the only `*_pb2` user here."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.codec import from_timestamp, new_envelope, priority_name, to_duration, to_timestamp
from sla.domain.clocks import ACK, Clock, ClockBreached, ClockEvent, ClockMet, ClockStarted, LegClocks, LegInfo

SOURCE = "sla"
_CLOCK_TO_PB = {ACK: types_pb2.CLOCK_KIND_ACK, "resolve": types_pb2.CLOCK_KIND_RESOLVE}
_CLOCK_FROM_PB = {v: k for k, v in _CLOCK_TO_PB.items()}


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


def breach_of(event: sla_events_pb2.SlaEvent) -> tuple[str, str, int] | None:
    """(handoff id, clock kind, sequence) when `event` is a breach, else None."""
    if event.WhichOneof("change") != "breached" or event.clock not in _CLOCK_FROM_PB:
        return None
    return event.handoff_id, _CLOCK_FROM_PB[event.clock], event.clock_sequence


def encode_state(state: LegClocks, partition: int) -> dict:
    """Table value: the leg's clocks and the partition that owns them, JSON-ready."""
    clocks = {
        kind: {
            **asdict(clock),
            "started_at": clock.started_at.isoformat(),
            "deadline": clock.deadline.isoformat(),
            "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
            "target": clock.target.total_seconds(),
        }
        for kind, clock in state.clocks.items()
    }
    return {"leg": asdict(state.leg), "clocks": clocks, "partition": partition}


def decode_state(document: dict) -> tuple[LegClocks, int]:
    """Inverse of `encode_state`."""
    clocks = {
        kind: Clock(
            **{
                **fields,
                "started_at": datetime.fromisoformat(fields["started_at"]),
                "deadline": datetime.fromisoformat(fields["deadline"]),
                "stopped_at": datetime.fromisoformat(fields["stopped_at"]) if fields["stopped_at"] else None,
                "target": timedelta(seconds=fields["target"]),
            }
        )
        for kind, fields in document["clocks"].items()
    }
    return LegClocks(LegInfo(**document["leg"]), clocks), document["partition"]
