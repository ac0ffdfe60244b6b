"""Handoff events in, SLA events out, clock state in the table: the only `*_pb2` user here."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.clock import epoch_us, from_epoch_us
from common.codec import CLOCK_NAMES, from_timestamp, priority_name
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
_CLOCK_FROM_PB = CLOCK_NAMES
_CLOCK_TO_PB = {name: value for value, name in CLOCK_NAMES.items()}
_ZERO = timedelta(0)
_PRIORITY_TO_PB = {name.removeprefix("PRIORITY_"): value for name, value in types_pb2.Priority.items()}


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


def _stamp(stamp, moment: datetime) -> None:
    """Set a Timestamp field in place (building one and copying it costs twice as much)."""
    seconds, micros = divmod(epoch_us(moment), 1_000_000)
    stamp.seconds, stamp.nanos = seconds, micros * 1000


def _span(duration, span: timedelta) -> None:
    if span < _ZERO:  # a Duration's seconds and nanos share a sign; the library gets that right
        duration.FromTimedelta(span)
        return
    duration.seconds = span.days * 86_400 + span.seconds
    duration.nanos = span.microseconds * 1000


def encode_sla_event(event: ClockEvent, recorded_at: datetime) -> bytes:
    """A domain clock event as an SlaEvent record value (fields set in place: this runs per event)."""
    leg, clock = event.leg, event.clock
    message = sla_events_pb2.SlaEvent(
        handoff_id=leg.handoff_id,
        case_id=leg.case_id,
        customer_ref=leg.customer_ref,
        department=leg.department,
        priority=_PRIORITY_TO_PB[leg.priority],
        category=leg.category,
        clock=_CLOCK_TO_PB[clock.kind],
        policy_version=clock.policy_version,
        clock_sequence=clock.sequence,
    )
    envelope = message.envelope
    envelope.event_id, envelope.source = event.event_id, SOURCE
    _stamp(envelope.occurred_at, event.occurred_at)
    _stamp(envelope.recorded_at, recorded_at)
    if isinstance(event, ClockStarted):
        change = message.clock_started
        _stamp(change.started_at, clock.started_at)
        _stamp(change.deadline, clock.deadline)
        _span(change.target, clock.target)
    elif isinstance(event, ClockBreached):
        change = message.breached
        _stamp(change.deadline, clock.deadline)
        _stamp(change.breached_at, event.occurred_at)
    elif isinstance(event, ClockWarning):
        change = message.warning
        change.fraction = event.fraction
        _stamp(change.deadline, clock.deadline)
        _stamp(change.warned_at, event.occurred_at)
    elif isinstance(event, ClockPaused):
        _stamp(message.paused.paused_at, event.occurred_at)
    elif isinstance(event, ClockResumed):
        change = message.resumed
        _stamp(change.resumed_at, event.occurred_at)
        _stamp(change.deadline, clock.deadline)
        change.allowance_used = event.allowance_used
    elif isinstance(event, ClockRecomputed):
        change = message.recomputed
        _stamp(change.previous_deadline, event.previous_deadline)
        _stamp(change.deadline, clock.deadline)
        _span(change.target, clock.target)
    elif isinstance(event, ClockMet):
        change = message.met
        _stamp(change.deadline, clock.deadline)
        _stamp(change.stopped_at, event.occurred_at)
        change.late = event.late
        _span(change.overdue, event.overdue)
        _span(change.elapsed, event.elapsed)
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
    return framed(partition, orjson.dumps(payload), _us(due) or 0, running)


def decode_state(value: bytes) -> tuple[LegClocks, int]:
    """Inverse of `encode_state`: the leg's clocks and the partition that owns them."""
    handoff_id, case_id, customer_ref, department, priority, category, clocks = orjson.loads(payload_of(value))
    decoded = {}
    for kind, sequence, started, target, deadline, version, running, breached, stopped, warned, paused in clocks:
        decoded[kind] = Clock(kind, sequence, _instant(started), timedelta(seconds=target), _instant(deadline),
                              version, running, breached, _instant(stopped), tuple(warned), _instant(paused))
    leg = LegInfo(handoff_id, case_id, customer_ref, department, priority, category)
    return LegClocks(leg, decoded), partition_of(value)


def breach_deadline(event: sla_events_pb2.SlaEvent) -> datetime:
    """The deadline a breached SlaEvent passed."""
    return from_timestamp(event.breached.deadline)
