"""SLA clocks of a leg: started at creation, breached at the deadline, met when stopped.

Every handler takes the leg's clocks and an instant and returns the new clocks and the
events to emit. Event ids derive from their cause (leg, clock, sequence, deadline), so a
replay or a restart emits the same ids and consumers drop repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.ids import derived_event_id
from sla.domain.calendar import Calendar
from sla.domain.policy import Policy

ACK = "ack"


@dataclass(frozen=True)
class LegInfo:
    """What the clocks need to know of the leg they run on."""

    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: str
    category: str


@dataclass(frozen=True)
class Clock:
    """One running or stopped target on one leg."""

    kind: str
    sequence: int
    started_at: datetime
    target: timedelta
    deadline: datetime
    policy_version: str
    running: bool = True
    breached: bool = False
    stopped_at: datetime | None = None

    def is_due(self, now: datetime) -> bool:
        """Has the deadline passed while the clock runs, without a breach recorded yet?"""
        return self.running and not self.breached and now >= self.deadline


@dataclass(frozen=True)
class LegClocks:
    """The clocks of one leg, keyed by kind."""

    leg: LegInfo
    clocks: dict[str, Clock]


@dataclass(frozen=True)
class ClockEvent:
    """Base of every SLA event: which leg and clock, and a deterministic id."""

    event_id: str
    leg: LegInfo
    clock: Clock
    occurred_at: datetime


@dataclass(frozen=True)
class ClockStarted(ClockEvent):
    pass


@dataclass(frozen=True)
class ClockBreached(ClockEvent):
    pass


@dataclass(frozen=True)
class ClockMet(ClockEvent):
    late: bool
    overdue: timedelta
    elapsed: timedelta


def _event_id(leg: LegInfo, clock: Clock, what: str) -> str:
    return derived_event_id(leg.handoff_id, clock.kind, clock.sequence, clock.deadline.isoformat(), what)


def start(leg: LegInfo, policy: Policy, at: datetime) -> tuple[LegClocks, list[ClockEvent]]:
    """Start the ack clock of a new leg under `policy`."""
    clock = Clock(
        kind=ACK,
        sequence=1,
        started_at=at,
        target=policy.ack_target,
        deadline=policy.calendar.add(at, policy.ack_target),
        policy_version=policy.version,
    )
    return LegClocks(leg, {ACK: clock}), [ClockStarted(_event_id(leg, clock, "started"), leg, clock, at)]


def breach_due(state: LegClocks, now: datetime) -> tuple[LegClocks, list[ClockEvent]]:
    """Breach every running clock whose deadline has passed by `now`."""
    events: list[ClockEvent] = []
    clocks = dict(state.clocks)
    for kind, clock in state.clocks.items():
        if clock.is_due(now):
            clocks[kind] = replace(clock, breached=True)
            events.append(ClockBreached(_event_id(state.leg, clock, "breached"), state.leg, clock, clock.deadline))
    return LegClocks(state.leg, clocks), events


def stop(state: LegClocks, kind: str, at: datetime, calendar: Calendar) -> tuple[LegClocks, list[ClockEvent]]:
    """Stop clock `kind` at `at`: met, or met late after a breach (breaching first if due)."""
    clock = state.clocks.get(kind)
    if clock is None or not clock.running:
        return state, []
    state, events = breach_due(state, at)
    clock = state.clocks[kind]
    elapsed = calendar.between(clock.started_at, at)
    overdue = max(calendar.between(clock.deadline, at), timedelta(0))
    stopped = replace(clock, running=False, stopped_at=at)
    met = ClockMet(_event_id(state.leg, clock, "met"), state.leg, stopped, at, clock.breached, overdue, elapsed)
    return LegClocks(state.leg, {**state.clocks, kind: stopped}), [*events, met]


def record_breach(state: LegClocks, kind: str, sequence: int) -> LegClocks:
    """Remember a breach emitted earlier (read back from sla.events.v1)."""
    clock = state.clocks.get(kind)
    if clock is None or clock.sequence != sequence or clock.breached:
        return state
    return LegClocks(state.leg, {**state.clocks, kind: replace(clock, breached=True)})


def next_deadline(state: LegClocks) -> datetime | None:
    """The earliest deadline among running, unbreached clocks."""
    pending = [c.deadline for c in state.clocks.values() if c.running and not c.breached]
    return min(pending, default=None)
