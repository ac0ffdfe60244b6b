"""SLA clocks of a leg: started at creation, warned, paused, breached at the deadline, met when stopped.

Every handler takes the leg's clocks and an instant and returns the new clocks and the
events to emit. Event ids derive from their cause (leg, clock, sequence, deadline, and the
instant of the change that caused them), so a replay or a restart emits the same ids and
consumers drop repeats.

A clock's deadline is always its start plus its target plus the business time it has counted
as paused, so the paused total is derived, not stored. A paused clock neither warns nor
breaches until its pauses reach the policy's `max_pause`; from then on it runs even while
paused. Policy-derived inputs (calendar, warning fractions, max_pause) are passed in, like time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.ids import derived_event_id
from sla.domain.calendar import AlwaysOpen, Calendar
from sla.domain.policy import Policy

ACK = "ack"
RESOLVE = "resolve"
# The clocks a new leg runs; `start` defaults to ACK alone until the engine stops RESOLVE too.
AT_CREATION = (ACK, RESOLVE)
_ZERO = timedelta(0)


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
    """One running or stopped target on one leg.

    `warned` holds the warning fractions emitted; `paused_at` is set while paused. The
    business time paused so far is not stored: it is the deadline's distance from the start
    beyond the target (see `paused_total`).
    """

    kind: str
    sequence: int
    started_at: datetime
    target: timedelta
    deadline: datetime
    policy_version: str
    running: bool = True
    breached: bool = False
    stopped_at: datetime | None = None
    warned: tuple[float, ...] = ()
    paused_at: datetime | None = None

    def __post_init__(self) -> None:
        # A table document gives back a list.
        object.__setattr__(self, "warned", tuple(self.warned))

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    def is_due(self, now: datetime) -> bool:
        """Has the deadline passed while the clock runs, without a breach recorded yet?"""
        return self.running and not self.breached and not self.is_paused and now >= self.deadline


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
class ClockWarning(ClockEvent):
    fraction: float


@dataclass(frozen=True)
class ClockBreached(ClockEvent):
    pass


@dataclass(frozen=True)
class ClockMet(ClockEvent):
    late: bool
    overdue: timedelta
    elapsed: timedelta


@dataclass(frozen=True)
class ClockPaused(ClockEvent):
    pass


@dataclass(frozen=True)
class ClockResumed(ClockEvent):
    """`clock.deadline` is the new deadline."""

    previous_deadline: datetime


@dataclass(frozen=True)
class ClockRecomputed(ClockEvent):
    """`clock.deadline` is the new deadline."""

    previous_deadline: datetime


def _event_id(leg: LegInfo, clock: Clock, what: str) -> str:
    return derived_event_id(leg.handoff_id, clock.kind, clock.sequence, clock.deadline.isoformat(), what)


def _target(policy: Policy, kind: str) -> timedelta:
    return {ACK: policy.ack_target, RESOLVE: policy.resolve_target}[kind]


def _new_clock(kind: str, sequence: int, policy: Policy, at: datetime) -> Clock:
    target = _target(policy, kind)
    return Clock(kind, sequence, at, target, policy.calendar.add(at, target), policy.version)


def start(
    leg: LegInfo, policy: Policy, at: datetime, kinds: Iterable[str] = (ACK,)
) -> tuple[LegClocks, list[ClockEvent]]:
    """Start the clocks `kinds` of a new leg under `policy` (pass AT_CREATION for ack and resolve)."""
    clocks = {kind: _new_clock(kind, 1, policy, at) for kind in kinds}
    events: list[ClockEvent] = [ClockStarted(_event_id(leg, c, "started"), leg, c, at) for c in clocks.values()]
    return LegClocks(leg, clocks), events


# The due checks ask for a clock's paused total several times per event; the answer only
# depends on these inputs, so recent ones are kept (a plain dict, emptied when full).
_PAUSED: dict[tuple[Calendar, datetime, datetime, timedelta], timedelta] = {}
_PAUSED_KEPT = 65536


def paused_total(clock: Clock, calendar: Calendar) -> timedelta:
    """Business time the clock has counted as paused (closed pauses only)."""
    key = (calendar, clock.started_at, clock.deadline, clock.target)
    total = _PAUSED.get(key)
    if total is None:
        if len(_PAUSED) >= _PAUSED_KEPT:
            _PAUSED.clear()
        total = _PAUSED[key] = calendar.between(clock.started_at, clock.deadline) - clock.target
    return total


def warning_at(clock: Clock, fraction: float, calendar: Calendar) -> datetime:
    """The instant `fraction` of the target has run, closed pauses excluded."""
    return calendar.add(clock.started_at, clock.target * fraction + paused_total(clock, calendar))


def _allowance(clock: Clock, calendar: Calendar, max_pause: timedelta | None) -> timedelta | None:
    """Pause time the clock may still count (None: no cap)."""
    return None if max_pause is None else max(max_pause - paused_total(clock, calendar), _ZERO)


def _cap_reached_at(clock: Clock, calendar: Calendar, max_pause: timedelta | None) -> datetime | None:
    """When a paused clock has used up its pause allowance and runs again (None: never)."""
    allowance = _allowance(clock, calendar, max_pause)
    if not clock.is_paused or allowance is None:
        return None
    return calendar.add(clock.paused_at, allowance)


def _resumed(clock: Clock, at: datetime, calendar: Calendar, max_pause: timedelta | None) -> Clock:
    """`clock` running again at `at`, its deadline moved by the paused business time it may count."""
    paused = calendar.between(clock.paused_at, at)
    allowance = _allowance(clock, calendar, max_pause)
    if allowance is not None:
        paused = min(paused, allowance)
    return replace(clock, paused_at=None, deadline=calendar.add(clock.deadline, paused))


def _running_at(clock: Clock, now: datetime, calendar: Calendar, max_pause: timedelta | None) -> Clock:
    """`clock` as it stands at `now`: a pause that has used up the allowance no longer holds it."""
    cap = _cap_reached_at(clock, calendar, max_pause)
    return _resumed(clock, cap, calendar, max_pause) if cap is not None and now >= cap else clock


def _warnings(fractions: Iterable[float], clock: Clock) -> list[float]:
    return sorted(f for f in set(fractions) if 0 < f < 1 and f not in clock.warned)


def _due_of(leg: LegInfo, clock: Clock, now: datetime, calendar: Calendar, fractions: tuple[float, ...],
            max_pause: timedelta | None) -> tuple[Clock, list[ClockEvent]]:
    if not clock.running or clock.breached:
        return clock, []
    clock = _running_at(clock, now, calendar, max_pause)
    if clock.is_paused:
        return clock, []
    events: list[ClockEvent] = []
    for fraction in _warnings(fractions, clock):
        at = warning_at(clock, fraction, calendar)
        if at > now:
            break
        events.append(ClockWarning(_event_id(leg, clock, f"warning:{fraction}"), leg, clock, at, fraction))
        clock = replace(clock, warned=(*clock.warned, fraction))
    if clock.is_due(now):
        events.append(ClockBreached(_event_id(leg, clock, "breached"), leg, clock, clock.deadline))
        clock = replace(clock, breached=True)
    return clock, events


def due_events(state: LegClocks, now: datetime, calendar: Calendar, fractions: Iterable[float] = (),
               max_pause: timedelta | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Warnings at each of `fractions` of the target, then the breach, reached by `now` and not yet emitted.

    A paused clock emits nothing until its pauses reach `max_pause` (never without a cap).
    """
    fractions = tuple(fractions)
    clocks = dict(state.clocks)
    events: list[ClockEvent] = []
    for kind, clock in state.clocks.items():
        clocks[kind], emitted = _due_of(state.leg, clock, now, calendar, fractions, max_pause)
        events.extend(emitted)
    return LegClocks(state.leg, clocks), events


def breach_due(state: LegClocks, now: datetime) -> tuple[LegClocks, list[ClockEvent]]:
    """Breach every running, unpaused clock whose deadline has passed by `now` (no warnings)."""
    return due_events(state, now, AlwaysOpen())


def stop(state: LegClocks, kind: str, at: datetime, calendar: Calendar,
         max_pause: timedelta | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Stop clock `kind` at `at`: met, or met late after a breach (breaching first if due).

    A pause still open counts up to `max_pause`. `elapsed` is the business time the clock
    ran, counted pauses excluded.
    """
    clock = state.clocks.get(kind)
    if clock is None or not clock.running:
        return state, []
    if clock.is_paused:
        state = LegClocks(state.leg, {**state.clocks, kind: _resumed(clock, at, calendar, max_pause)})
    state, events = due_events(state, at, calendar, (), max_pause)
    clock = state.clocks[kind]
    elapsed = calendar.between(clock.started_at, at) - paused_total(clock, calendar)
    overdue = max(calendar.between(clock.deadline, at), _ZERO)
    stopped = replace(clock, running=False, stopped_at=at)
    met = ClockMet(_event_id(state.leg, clock, "met"), state.leg, stopped, at, clock.breached, overdue, elapsed)
    return LegClocks(state.leg, {**state.clocks, kind: stopped}), [*events, met]


def pause(state: LegClocks, at: datetime, calendar: Calendar | None = None, max_pause: timedelta | None = None,
          kind: str = RESOLVE) -> tuple[LegClocks, list[ClockEvent]]:
    """Pause clock `kind` at `at` (breaching first if due); nothing once its pauses reach `max_pause`.

    Warnings due before `at` are the caller's to emit first (`due_events`).
    """
    clock = state.clocks.get(kind)
    if clock is None or not clock.running or clock.is_paused:
        return state, []
    if max_pause is not None and not _allowance(clock, calendar or AlwaysOpen(), max_pause):
        return state, []
    state, events = breach_due(state, at)
    paused = replace(state.clocks[kind], paused_at=at)
    event = ClockPaused(_event_id(state.leg, paused, f"paused:{at.isoformat()}"), state.leg, paused, at)
    return LegClocks(state.leg, {**state.clocks, kind: paused}), [*events, event]


def resume(state: LegClocks, at: datetime, calendar: Calendar, max_pause: timedelta | None = None,
           kind: str = RESOLVE) -> tuple[LegClocks, list[ClockEvent]]:
    """Run clock `kind` again at `at`, its deadline moved by the paused business time (up to `max_pause` in all)."""
    clock = state.clocks.get(kind)
    if clock is None or not clock.running or not clock.is_paused:
        return state, []
    resumed = _resumed(clock, at, calendar, max_pause)
    what = f"resumed:{at.isoformat()}"
    event = ClockResumed(_event_id(state.leg, clock, what), state.leg, resumed, at, clock.deadline)
    return LegClocks(state.leg, {**state.clocks, kind: resumed}), [event]


def reopen(state: LegClocks, at: datetime, policy: Policy) -> tuple[LegClocks, list[ClockEvent]]:
    """Start the next resolve clock of a reopened leg; nothing while one still runs."""
    previous = state.clocks.get(RESOLVE)
    if previous is not None and previous.running:
        return state, []
    clock = _new_clock(RESOLVE, previous.sequence + 1 if previous else 1, policy, at)
    event = ClockStarted(_event_id(state.leg, clock, "started"), state.leg, clock, at)
    return LegClocks(state.leg, {**state.clocks, RESOLVE: clock}), [event]


def recompute(state: LegClocks, policy: Policy, at: datetime,
              priority: str | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Re-derive running clocks' deadlines from their start under `policy` (a priority change at `at`).

    Pauses already counted still count. A deadline that lands in the past breaches at the
    next due check. `priority`, when given, becomes the leg's.
    """
    leg = replace(state.leg, priority=priority) if priority else state.leg
    clocks = dict(state.clocks)
    events: list[ClockEvent] = []
    for kind, clock in state.clocks.items():
        if not clock.running:
            continue
        target = _target(policy, kind)
        deadline = policy.calendar.add(clock.started_at, target + paused_total(clock, policy.calendar))
        updated = replace(clock, target=target, deadline=deadline, policy_version=policy.version)
        if updated == clock:
            continue
        clocks[kind] = updated
        what = f"recomputed:{at.isoformat()}:{policy.version}"
        events.append(ClockRecomputed(_event_id(leg, updated, what), leg, updated, at, clock.deadline))
    return LegClocks(leg, clocks), events


def record_breach(state: LegClocks, kind: str, sequence: int) -> LegClocks:
    """Remember a breach emitted earlier (read back from sla.events.v1)."""
    clock = state.clocks.get(kind)
    if clock is None or clock.sequence != sequence or clock.breached:
        return state
    return LegClocks(state.leg, {**state.clocks, kind: replace(clock, breached=True)})


def record_warning(state: LegClocks, kind: str, sequence: int, fraction: float) -> LegClocks:
    """Remember a warning emitted earlier (read back from sla.events.v1)."""
    clock = state.clocks.get(kind)
    if clock is None or clock.sequence != sequence or fraction in clock.warned:
        return state
    return LegClocks(state.leg, {**state.clocks, kind: replace(clock, warned=(*clock.warned, fraction))})


def next_deadline(state: LegClocks) -> datetime | None:
    """The earliest deadline among running, unbreached, unpaused clocks."""
    pending = [c.deadline for c in state.clocks.values() if c.running and not c.breached and not c.is_paused]
    return min(pending, default=None)


def _next_instant(clock: Clock, calendar: Calendar, fractions: tuple[float, ...],
                  max_pause: timedelta | None) -> datetime | None:
    if not clock.running or clock.breached:
        return None
    cap = _cap_reached_at(clock, calendar, max_pause)
    if clock.is_paused and cap is None:
        return None
    running = clock if cap is None else _resumed(clock, cap, calendar, max_pause)
    earliest = min([*(warning_at(running, f, calendar) for f in _warnings(fractions, running)), running.deadline])
    return earliest if cap is None else max(earliest, cap)


def next_due(state: LegClocks, calendar: Calendar, fractions: Iterable[float] = (),
             max_pause: timedelta | None = None) -> datetime | None:
    """The earliest instant a warning or breach of this leg falls due (None: nothing pending)."""
    fractions = tuple(fractions)
    instants = (_next_instant(c, calendar, fractions, max_pause) for c in state.clocks.values())
    return min((i for i in instants if i is not None), default=None)



def breached_by(state: LegClocks, at: datetime, calendar: Calendar,
                max_pause: timedelta | None = None) -> datetime | None:
    """The earliest instant, at or before `at`, at which one of the leg's clocks breached.

    Counts breaches recorded, clocks stopped after their deadline, and breaches that were
    due by `at` but not emitted yet (the timer had not got there).
    """
    _, due = due_events(state, at, calendar, (), max_pause)
    breaches = [event.clock.deadline for event in due if isinstance(event, ClockBreached)]
    breaches += [
        c.deadline for c in state.clocks.values()
        if c.deadline <= at and (c.breached or (c.stopped_at is not None and c.stopped_at > c.deadline))
    ]
    return min(breaches, default=None)
