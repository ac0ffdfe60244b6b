"""Handoff events in, SLA events out, clock state in the table: the only `*_pb2` user here."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.clock import epoch_us, from_epoch_us
from common.codec import CLOCK_NAMES, from_timestamp, new_envelope, priority_name, to_duration, to_timestamp
from common.streams.store import framed, partition_of, payload_of
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
_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)
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
            sla_events_pb2.ClockResumed(resumed_at=to_timestamp(event.occurred_at), deadline=to_timestamp(clock.deadline),
                                        allowance_used=event.allowance_used)
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


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else epoch_us(moment)


def _instant(us: int | None) -> datetime | None:
    return None if us is None else from_epoch_us(us)


def encode_state(state: LegClocks, partition: int, due: datetime | None = None) -> bytes:
    """Store value: the leg's clocks, owned by `partition`, next wanting the timer at `due`.

    A compact JSON array (field order fixed here) after the store header; the header's tag
    counts the running clocks, so a rebuild counts them without decoding.
    """
    leg = state.leg
    clocks = [
        [clock.kind, clock.sequence, _us(clock.started_at), clock.target.total_seconds(), _us(clock.deadline),
         clock.policy_version, clock.running, clock.breached, _us(clock.stopped_at), list(clock.warned),
         _us(clock.paused_at)]
        for clock in state.clocks.values()
    ]
    payload = [leg.handoff_id, leg.case_id, leg.customer_ref, leg.department, leg.priority, leg.category, clocks]
    running = sum(1 for clock in state.clocks.values() if clock.running)
    return framed(partition, _JSON.encode(payload).encode(), _us(due) or 0, running)


def decode_state(value: bytes) -> tuple[LegClocks, int]:
    """Inverse of `encode_state`: the leg's clocks and the partition that owns them."""
    handoff_id, case_id, customer_ref, department, priority, category, clocks = json.loads(payload_of(value))
    decoded = {}
    for kind, sequence, started, target, deadline, version, running, breached, stopped, warned, paused in clocks:
        decoded[kind] = Clock(kind, sequence, _instant(started), timedelta(seconds=target), _instant(deadline),
                              version, running, breached, _instant(stopped), tuple(warned), _instant(paused))
    leg = LegInfo(handoff_id, case_id, customer_ref, department, priority, category)
    return LegClocks(leg, decoded), partition_of(value)


def breach_deadline(event: sla_events_pb2.SlaEvent) -> datetime:
    """The deadline a breached SlaEvent passed."""
    return from_timestamp(event.breached.deadline)
