"""Handoff events in, SLA events out, clock state in the table: the only `*_pb2` user here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from google.protobuf import duration_pb2
from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.clock import epoch_us, from_epoch_us
from common.codec import CLOCK_NAMES, from_timestamp, priority_name, timestamp_fields
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


# SlaEvents are built from nested dicts: protobuf fills the submessages in C, which costs
# a fraction of reaching each one from Python to set its fields (this runs per event).
def _stamp(moment: datetime) -> dict[str, int]:
    """A Timestamp's fields for an instant."""
    seconds, nanos = timestamp_fields(moment)
    return {"seconds": seconds, "nanos": nanos}


def _span(span: timedelta) -> dict[str, int]:
    """A Duration's fields for a span."""
    if span < _ZERO:  # a Duration's seconds and nanos share a sign; the library gets that right
        duration = duration_pb2.Duration()
        duration.FromTimedelta(span)
        return {"seconds": duration.seconds, "nanos": duration.nanos}
    return {"seconds": span.days * 86_400 + span.seconds, "nanos": span.microseconds * 1000}


def _started(event: ClockStarted) -> tuple[str, dict]:
    clock = event.clock
    return "clock_started", {"started_at": _stamp(clock.started_at), "deadline": _stamp(clock.deadline),
                             "target": _span(clock.target)}


def _breached(event: ClockBreached) -> tuple[str, dict]:
    return "breached", {"deadline": _stamp(event.clock.deadline), "breached_at": _stamp(event.occurred_at)}


def _warning(event: ClockWarning) -> tuple[str, dict]:
    return "warning", {"fraction": event.fraction, "deadline": _stamp(event.clock.deadline),
                       "warned_at": _stamp(event.occurred_at)}


def _paused(event: ClockPaused) -> tuple[str, dict]:
    return "paused", {"paused_at": _stamp(event.occurred_at)}


def _resumed(event: ClockResumed) -> tuple[str, dict]:
    return "resumed", {"resumed_at": _stamp(event.occurred_at), "deadline": _stamp(event.clock.deadline),
                       "allowance_used": event.allowance_used}


def _recomputed(event: ClockRecomputed) -> tuple[str, dict]:
    return "recomputed", {"previous_deadline": _stamp(event.previous_deadline),
                          "deadline": _stamp(event.clock.deadline), "target": _span(event.clock.target)}


def _met(event: ClockMet) -> tuple[str, dict]:
    return "met", {"deadline": _stamp(event.clock.deadline), "stopped_at": _stamp(event.occurred_at),
                   "late": event.late, "overdue": _span(event.overdue), "elapsed": _span(event.elapsed)}


# Each event type's oneof field and its fields.
_CHANGES: dict[type, Callable[[Any], tuple[str, dict]]] = {
    ClockStarted: _started, ClockBreached: _breached, ClockWarning: _warning, ClockPaused: _paused,
    ClockResumed: _resumed, ClockRecomputed: _recomputed, ClockMet: _met,
}


def encode_sla_events(events: list[ClockEvent], recorded_at: datetime) -> list[bytes]:
    """Domain clock events as SlaEvent record values, all recorded at one instant (stamped once)."""
    recorded = _stamp(recorded_at)
    return [_encode(event, recorded) for event in events]


def _encode(event: ClockEvent, recorded: dict[str, int]) -> bytes:
    leg, clock = event.leg, event.clock
    change, fields = _CHANGES[type(event)](event)
    message = sla_events_pb2.SlaEvent(
        envelope={"event_id": event.event_id, "source": SOURCE, "occurred_at": _stamp(event.occurred_at),
                  "recorded_at": recorded},
        handoff_id=leg.handoff_id,
        case_id=leg.case_id,
        customer_ref=leg.customer_ref,
        department=leg.department,
        priority=_PRIORITY_TO_PB[leg.priority],
        category=leg.category,
        clock=_CLOCK_TO_PB[clock.kind],
        policy_version=clock.policy_version,
        clock_sequence=clock.sequence,
        **{change: fields},
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
    return framed(partition, orjson.dumps(payload), _us(due) or 0, running)


def decode_state(value: bytes) -> tuple[LegClocks, int]:
    """Inverse of `encode_state`: the leg's clocks and the partition that owns them."""
    handoff_id, case_id, customer_ref, department, priority, category, clocks = orjson.loads(payload_of(value))
    decoded = {}
    for kind, sequence, started, target, deadline, version, running, breached, stopped, warned, paused in clocks:
        decoded[kind] = Clock(kind, sequence, from_epoch_us(started), timedelta(seconds=target),
                              from_epoch_us(deadline), version, running, breached, _instant(stopped), tuple(warned),
                              _instant(paused))
    leg = LegInfo(handoff_id, case_id, customer_ref, department, priority, category)
    return LegClocks(leg, decoded), partition_of(value)


def breach_deadline(event: sla_events_pb2.SlaEvent) -> datetime:
    """The deadline a breached SlaEvent passed."""
    return from_timestamp(event.breached.deadline)
