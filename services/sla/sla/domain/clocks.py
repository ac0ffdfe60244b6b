"""SLA clocks of a leg: started at creation, warned, paused, breached at the deadline, met when stopped.

Every handler takes the leg's clocks and an instant and returns the new clocks and the
events to emit. Event ids derive from their cause (leg, clock, sequence, deadline, and the
instant of the change that caused them), so a replay or a restart emits the same ids and
consumers drop repeats.

A clock's deadline is always its start plus its target plus the business time it has counted
as paused, so the paused total is derived, not stored. A paused clock neither warns nor
breaches until its pauses reach the policy's `max_pause`; from then on it runs even while
paused, and a ClockResumed records the instant. Policy-derived inputs (calendar, warning
fractions, max_pause) are passed in, like time.

A clock reaches a threshold (a warning's fraction of the target, or the target itself)
only by running past it: when its business time run *exceeds* the threshold. A clock
stopped exactly at its deadline is met; a target reached at closing time breaches at the
next opening (`Calendar.open_from`). Each event is dated at the last instant the threshold
still held, and is due from the instant after it. A priority change never changes a leg's
past: what the new targets put behind the clock happens at the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from common.ids import derived_event_id
from sla.domain.calendar import AlwaysOpen, Calendar
from sla.domain.policy import Policy, Target

ACK = "ack"
RESOLVE = "resolve"
# The clocks a new leg runs; `start` defaults to ACK alone until the engine stops RESOLVE too.
AT_CREATION = (ACK, RESOLVE)
_ZERO = timedelta(0)
# Thresholds are reached only once exceeded: something dated at t is due from t + TICK.
TICK = timedelta(microseconds=1)


# LegInfo and Clock are named tuples, not frozen dataclasses: as immutable, and several
# times cheaper to build and to copy with a change, which every handoff event does a few times.
class LegInfo(NamedTuple):
    """What the clocks need to know of the leg they run on."""

    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: str
    category: str


class Clock(NamedTuple):
    """One running or stopped target on one leg.

    `target` is business time (a target of working days is the business time from the
    start to the day it ends). `warned` holds the warning fractions emitted; `paused_at` is
    set while paused. The business time paused so far is not stored: it is the deadline's
    distance from the start beyond the target (see `paused_total`).
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

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


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
    """`clock.deadline` is the new deadline; `allowance_used` when the pause had used up `max_pause`."""

    previous_deadline: datetime
    allowance_used: bool = False


@dataclass(frozen=True)
class ClockRecomputed(ClockEvent):
    """`clock.deadline` is the new deadline."""

    previous_deadline: datetime


def _event_id(leg: LegInfo, clock: Clock, what: str) -> str:
    return derived_event_id(leg.handoff_id, clock.kind, clock.sequence, clock.deadline.isoformat(), what)


def _target(policy: Policy, kind: str) -> Target:
    if kind not in AT_CREATION:
        raise KeyError(kind)
    return policy.ack_target if kind == ACK else policy.resolve_target


def _business_target(policy: Policy, kind: str, started_at: datetime) -> timedelta:
    """The business time from `started_at` to where the policy's target for `kind` ends."""
    calendar = policy.calendar
    return calendar.between(started_at, _target(policy, kind).reached(calendar, started_at))


def _new_clock(kind: str, sequence: int, policy: Policy, at: datetime) -> Clock:
    target = _business_target(policy, kind, at)
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
    if type(calendar) is AlwaysOpen:  # a subtraction: cheaper than the lookup
        return calendar.between(clock.started_at, clock.deadline) - clock.target
    key = (calendar, clock.started_at, clock.deadline, clock.target)
    total = _PAUSED.get(key)
    if total is None:
        if len(_PAUSED) >= _PAUSED_KEPT:
            _PAUSED.clear()
        total = _PAUSED[key] = calendar.between(clock.started_at, clock.deadline) - clock.target
    return total


def warning_at(clock: Clock, fraction: float, calendar: Calendar) -> datetime:
    """The last instant before the clock's run, closed pauses excluded, exceeds `fraction` of
    its target (the warning is due once the clock runs past it)."""
    business = clock.target * fraction + paused_total(clock, calendar)
    return calendar.open_from(calendar.add(clock.started_at, business))


def breach_at(clock: Clock, calendar: Calendar) -> datetime:
    """The instant the target has run: the deadline, or the next opening after it (due once past it)."""
    return calendar.open_from(clock.deadline)


def _ran(clock: Clock, at: datetime, calendar: Calendar) -> timedelta:
    """Business time the clock has run by `at`, every pause up to `at` excluded."""
    pausing = calendar.between(clock.paused_at, at) if clock.paused_at is not None else _ZERO
    return calendar.between(clock.started_at, at) - paused_total(clock, calendar) - pausing


def _allowance(clock: Clock, calendar: Calendar, max_pause: timedelta | None) -> timedelta | None:
    """Pause time the clock may still count (None: no cap)."""
    return None if max_pause is None else max(max_pause - paused_total(clock, calendar), _ZERO)


def _cap_reached_at(clock: Clock, calendar: Calendar, max_pause: timedelta | None) -> datetime | None:
    """When a paused clock has used up its pause allowance and runs again (None: never)."""
    allowance = _allowance(clock, calendar, max_pause)
    if clock.paused_at is None or allowance is None:
        return None
    return calendar.open_from(calendar.add(clock.paused_at, allowance))


def _paused_since(clock: Clock) -> datetime:
    """When the paused `clock` paused (its callers resume only paused clocks)."""
    if clock.paused_at is None:
        raise ValueError(f"the {clock.kind} clock is not paused")
    return clock.paused_at


def _resumed(clock: Clock, at: datetime, calendar: Calendar, max_pause: timedelta | None) -> Clock:
    """`clock` running again at `at`, its deadline moved by the paused business time it may count."""
    paused = calendar.between(_paused_since(clock), at)
    allowance = _allowance(clock, calendar, max_pause)
    if allowance is not None:
        paused = min(paused, allowance)
    return clock._replace(paused_at=None, deadline=calendar.add(clock.deadline, paused))


def _resume_event(leg: LegInfo, clock: Clock, at: datetime, calendar: Calendar,
                  max_pause: timedelta | None) -> tuple[Clock, ClockResumed]:
    """`clock` running again at `at`, and the event that says so (the same whatever resumed it)."""
    allowance = _allowance(clock, calendar, max_pause)
    used = allowance is not None and calendar.between(_paused_since(clock), at) >= allowance
    resumed = _resumed(clock, at, calendar, max_pause)
    event_id = _event_id(leg, clock, f"resumed:{at.isoformat()}")
    return resumed, ClockResumed(event_id, leg, resumed, at, clock.deadline, used)


# The pending warnings for (fractions, warned): a few policies make a few combinations.
_PENDING: dict[tuple[tuple[float, ...], tuple[float, ...]], tuple[float, ...]] = {}


def _warnings(fractions: Iterable[float], clock: Clock) -> tuple[float, ...]:
    """The warning fractions still to come, smallest first."""
    key = (fractions if type(fractions) is tuple else tuple(fractions), clock.warned)
    pending = _PENDING.get(key)
    if pending is None:
        if len(_PENDING) >= _PAUSED_KEPT:
            _PENDING.clear()
        pending = _PENDING[key] = tuple(sorted(f for f in set(key[0]) if 0 < f < 1 and f not in clock.warned))
    return pending


def _due_of(leg: LegInfo, clock: Clock, now: datetime, calendar: Calendar, fractions: tuple[float, ...],
            max_pause: timedelta | None) -> tuple[Clock, list[ClockEvent]]:
    if not clock.running:
        return clock, []
    events: list[ClockEvent] = []
    cap = _cap_reached_at(clock, calendar, max_pause)
    if cap is not None and now > cap:
        clock, resumed = _resume_event(leg, clock, cap, calendar, max_pause)
        events.append(resumed)
    if clock.is_paused or clock.breached:
        return clock, events
    for fraction in _warnings(fractions, clock):
        at = warning_at(clock, fraction, calendar)
        if not now > at:
            break
        events.append(ClockWarning(_event_id(leg, clock, f"warning:{fraction}"), leg, clock, at, fraction))
        clock = clock._replace(warned=(*clock.warned, fraction))
    at = breach_at(clock, calendar)
    if now > at:
        events.append(ClockBreached(_event_id(leg, clock, "breached"), leg, clock, at))
        clock = clock._replace(breached=True)
    return clock, events


def due_events(state: LegClocks, now: datetime, calendar: Calendar, fractions: Iterable[float] = (),
               max_pause: timedelta | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Warnings at each of `fractions` of the target, then the breach, run past by `now` and not yet emitted.

    A paused clock emits nothing until its pauses reach `max_pause` (never without a cap);
    then it runs again, and a ClockResumed at that instant comes first.
    """
    fractions = tuple(fractions)
    clocks = dict(state.clocks)
    events: list[ClockEvent] = []
    for kind, clock in state.clocks.items():
        clocks[kind], emitted = _due_of(state.leg, clock, now, calendar, fractions, max_pause)
        events.extend(emitted)
    return LegClocks(state.leg, clocks), events


def breach_due(state: LegClocks, now: datetime) -> tuple[LegClocks, list[ClockEvent]]:
    """Breach every running, unpaused clock whose deadline `now` is past, on 24x7 (no warnings)."""
    return due_events(state, now, AlwaysOpen())


def stop(state: LegClocks, kind: str, at: datetime, calendar: Calendar,
         max_pause: timedelta | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Stop clock `kind` at `at`: met, or met late when it ran past its target (breaching first if due).

    A pause still open counts up to `max_pause`. `elapsed` is the business time the clock
    ran, counted pauses excluded; `overdue` the business time it ran past its target, and
    the stop is late exactly when that is more than zero.
    """
    clock = state.clocks.get(kind)
    if clock is None or not clock.running:
        return state, []
    state, events = due_events(state, at, calendar, (), max_pause)
    clock = state.clocks[kind]
    if clock.is_paused:
        clock = _resumed(clock, at, calendar, max_pause)
    elapsed = calendar.between(clock.started_at, at) - paused_total(clock, calendar)
    overdue = max(calendar.between(clock.deadline, at), _ZERO)
    stopped = clock._replace(running=False, stopped_at=at)
    met = ClockMet(_event_id(state.leg, clock, "met"), state.leg, stopped, at, overdue > _ZERO, overdue, elapsed)
    return LegClocks(state.leg, {**state.clocks, kind: stopped}), [*events, met]


def pause(state: LegClocks, at: datetime, calendar: Calendar | None = None, max_pause: timedelta | None = None,
          kind: str = RESOLVE) -> tuple[LegClocks, list[ClockEvent]]:
    """Pause clock `kind` at `at` (breaching first if due); nothing once its pauses reach `max_pause`.

    Warnings due before `at` are the caller's to emit first (`due_events`).
    """
    clock = state.clocks.get(kind)
    if clock is None or not clock.running or clock.is_paused:
        return state, []
    calendar = calendar or AlwaysOpen()
    if max_pause is not None and not _allowance(clock, calendar, max_pause):
        return state, []
    state, events = due_events(state, at, calendar, (), max_pause)
    paused = state.clocks[kind]._replace(paused_at=at)
    event = ClockPaused(_event_id(state.leg, paused, f"paused:{at.isoformat()}"), state.leg, paused, at)
    return LegClocks(state.leg, {**state.clocks, kind: paused}), [*events, event]


def resume(state: LegClocks, at: datetime, calendar: Calendar, max_pause: timedelta | None = None,
           kind: str = RESOLVE) -> tuple[LegClocks, list[ClockEvent]]:
    """Run clock `kind` again at `at`, its deadline moved by the paused business time (up to `max_pause` in all)."""
    clock = state.clocks.get(kind)
    if clock is None or not clock.running or not clock.is_paused:
        return state, []
    resumed, event = _resume_event(state.leg, clock, at, calendar, max_pause)
    return LegClocks(state.leg, {**state.clocks, kind: resumed}), [event]


def reopen(state: LegClocks, at: datetime, policy: Policy) -> tuple[LegClocks, list[ClockEvent]]:
    """Start the next resolve clock of a reopened leg; nothing while one still runs."""
    previous = state.clocks.get(RESOLVE)
    if previous is not None and previous.running:
        return state, []
    clock = _new_clock(RESOLVE, previous.sequence + 1 if previous else 1, policy, at)
    event = ClockStarted(_event_id(state.leg, clock, "started"), state.leg, clock, at)
    return LegClocks(state.leg, {**state.clocks, RESOLVE: clock}), [event]


def recompute(state: LegClocks, policy: Policy, at: datetime, priority: str | None = None,
              previous: Calendar | None = None) -> tuple[LegClocks, list[ClockEvent]]:
    """Re-derive running clocks' deadlines from their start under `policy` (a priority change at `at`).

    Pauses already counted still count, as the business time they counted on `previous`,
    the calendar the clocks ran on until now (by default the policy's). Each warning and the breach that the new target puts
    behind the clock (its business time run by `at`, pauses excluded, exceeds them) happens
    at `at`, after the ClockRecomputed, carrying the new deadline: what the leg went through
    before `at` stays as it was. `priority`, when given, becomes the leg's. What was due
    under the old target before `at` is the caller's to emit first (`due_events`).
    """
    leg = state.leg._replace(priority=priority) if priority else state.leg
    calendar = policy.calendar
    clocks = dict(state.clocks)
    events: list[ClockEvent] = []
    for kind, clock in state.clocks.items():
        if not clock.running:
            continue
        target = _business_target(policy, kind, clock.started_at)
        deadline = calendar.add(clock.started_at, target + paused_total(clock, previous or calendar))
        updated = clock._replace(target=target, deadline=deadline, policy_version=policy.version)
        if updated == clock:
            continue
        what = f"recomputed:{at.isoformat()}:{policy.version}"
        events.append(ClockRecomputed(_event_id(leg, updated, what), leg, updated, at, clock.deadline))
        clocks[kind], passed = _passed_at_change(leg, updated, at, calendar, policy.warning_fractions)
        events.extend(passed)
    return LegClocks(leg, clocks), events


def _passed_at_change(leg: LegInfo, clock: Clock, at: datetime, calendar: Calendar,
                      fractions: Iterable[float]) -> tuple[Clock, list[ClockEvent]]:
    """The warnings and breach a new target puts behind `clock` at `at`, each dated `at`."""
    if clock.breached:
        return clock, []
    ran = _ran(clock, at, calendar)
    events: list[ClockEvent] = []
    for fraction in _warnings(fractions, clock):
        if not ran > clock.target * fraction:
            break
        events.append(ClockWarning(_event_id(leg, clock, f"warning:{fraction}"), leg, clock, at, fraction))
        clock = clock._replace(warned=(*clock.warned, fraction))
    if ran > clock.target:
        events.append(ClockBreached(_event_id(leg, clock, "breached"), leg, clock, at))
        clock = clock._replace(breached=True)
    return clock, events


def record_breach(state: LegClocks, kind: str, sequence: int) -> LegClocks:
    """Remember a breach emitted earlier (read back from sla.events.v1)."""
    clock = state.clocks.get(kind)
    if clock is None or clock.sequence != sequence or clock.breached:
        return state
    return LegClocks(state.leg, {**state.clocks, kind: clock._replace(breached=True)})


def record_warning(state: LegClocks, kind: str, sequence: int, fraction: float) -> LegClocks:
    """Remember a warning emitted earlier (read back from sla.events.v1)."""
    clock = state.clocks.get(kind)
    if clock is None or clock.sequence != sequence or fraction in clock.warned:
        return state
    return LegClocks(state.leg, {**state.clocks, kind: clock._replace(warned=(*clock.warned, fraction))})


def next_deadline(state: LegClocks) -> datetime | None:
    """The earliest deadline among running, unbreached, unpaused clocks."""
    pending = [c.deadline for c in state.clocks.values() if c.running and not c.breached and not c.is_paused]
    return min(pending, default=None)


def _next_instant(clock: Clock, calendar: Calendar, fractions: tuple[float, ...],
                  max_pause: timedelta | None) -> datetime | None:
    """The instant after which the clock's next event falls due (None: nothing pending)."""
    if not clock.running:
        return None
    if clock.is_paused:
        return _cap_reached_at(clock, calendar, max_pause)
    if clock.breached:
        return None
    # Warnings come before the breach, the smaller fraction first (business time only grows),
    # so the next instant is the smallest pending warning's, or else the breach's.
    pending = _warnings(fractions, clock)
    return warning_at(clock, pending[0], calendar) if pending else breach_at(clock, calendar)


def next_due(state: LegClocks, calendar: Calendar, fractions: Iterable[float] = (),
             max_pause: timedelta | None = None) -> datetime | None:
    """The earliest instant a warning, breach or end of a pause of this leg falls due (None: nothing pending).

    Something dated t is due from t + TICK, once the clock has run past t.
    """
    fractions = tuple(fractions)
    earliest = None
    for clock in state.clocks.values():
        instant = _next_instant(clock, calendar, fractions, max_pause)
        if instant is not None and (earliest is None or instant < earliest):
            earliest = instant
    return None if earliest is None else earliest + TICK



def breached_by(state: LegClocks, at: datetime, calendar: Calendar,
                max_pause: timedelta | None = None) -> datetime | None:
    """The earliest instant before `at` at which one of the leg's clocks breached, the breach
    not emitted yet (the timer had not got there); None when there is none.

    Breaches emitted reach the repeat tracker with their events, each at its own instant.
    """
    _, due = due_events(state, at, calendar, (), max_pause)
    return min((event.occurred_at for event in due if isinstance(event, ClockBreached)), default=None)
