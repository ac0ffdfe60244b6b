"""The clock engine: applies handoff events to the legs' clocks and fires due clocks.

Kept apart from the stream engine's wiring so each step reads as decode -> domain ->
encode. A leg's stored value carries the instant its clocks next want attention; the stream
engine's timer calls `on_due` then. What the engine emits and the state that records it are
written in the same batch, so sla never needs to read its own events back.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime, timedelta

from common.clock import Clock, EventTime, WallClock, epoch_us
from common.metrics import child
from common.streams.store import Header, header_of
from sla import metrics
from sla.adapters import codec
from sla.domain import clocks
from sla.domain.calendar import AlwaysOpen, Calendar
from sla.domain.clocks import ClockBreached, ClockEvent, ClockMet, ClockStarted, ClockWarning, LegClocks
from sla.domain.policy import Policy, PolicyBook

Send = Callable[[str, bytes], None]
# A leg resolved, transferred or cancelled before anyone acknowledged it stops its ack clock
# too: the department has dealt with it.
STOPS_ACK = frozenset({"acknowledged", "resolved", "transferred", "cancelled"})


class ClockEngine:
    """`clock` decides what is due (wall time, or event time in replay); `recorded` stamps
    each event's recorded_at (always wall time)."""

    def __init__(self, table: MutableMapping[str, bytes], policies: PolicyBook, clock: Clock, send: Send,
                 recorded: Clock | None = None) -> None:
        self._table = table
        self._policies = policies
        self._clock = clock
        self._recorded = recorded or WallClock()
        self._send = send
        self.indexed_partitions: frozenset[int] = frozenset()
        # Running clocks of the owned partitions (counted at a rebuild, then kept up to date).
        self.running_clocks = 0

    def now(self, partition: int) -> datetime:
        """What time it is for `partition`'s clocks: its watermark on event time, else the clock's."""
        return self._clock.mark(partition) if isinstance(self._clock, EventTime) else self._clock.now()

    def _load(self, handoff_id: str) -> tuple[LegClocks | None, int]:
        raw = self._table.get(handoff_id)
        return codec.decode_state(raw) if raw else (None, -1)

    def _save(self, state: LegClocks, partition: int) -> None:
        """Store the leg's clocks with the instant they next fall due, for the timer: the next
        warning, breach or end of a pause; once every clock has stopped, when the leg is forgotten."""
        calendar, fractions, max_pause = self._rules(state)
        due = clocks.next_due(state, calendar, fractions, max_pause)
        if due is None and not _running(state):
            due = self._forget_at(state)
        self._table[state.leg.handoff_id] = codec.encode_state(state, partition, due)

    def _forget_at(self, state: LegClocks) -> datetime:
        """A leg whose clocks all stopped is kept for the repeat window after the last stop
        (a late or redelivered change finds it), then forgotten."""
        stops = [clock.stopped_at or clock.started_at for clock in state.clocks.values()]
        return max(stops) + self._policies.repeats.window + clocks.TICK

    def _policy(self, state: LegClocks) -> Policy | None:
        return self._policies.find(state.leg.department, state.leg.priority, state.leg.category)

    def _rules(self, state: LegClocks) -> tuple[Calendar, tuple[float, ...], timedelta | None]:
        """The leg's calendar, warning fractions and pause cap (24x7, none, none without a policy)."""
        policy = self._policy(state)
        if policy is None:
            return AlwaysOpen(), (), None
        return policy.calendar, policy.warning_fractions, policy.max_pause

    def _emit(self, events: list[ClockEvent], now: datetime) -> None:
        for event, value in zip(events, codec.encode_sla_events(events, self._recorded.now())):
            self._send(event.leg.customer_ref, value)
            _count(event, now)

    def _decide(self, message, state: LegClocks | None, at: datetime):
        """The leg's clocks and the events after one handoff change; None when nothing changes."""
        change = message.WhichOneof("change")
        if change == "created":
            if state is not None:
                return None
            leg = codec.leg_info(message)
            policy = self._policies.find(leg.department, leg.priority, leg.category)
            if policy is None:
                metrics.UNCOVERED_LEGS.labels(leg.department).inc()
                return None
            return clocks.start(leg, policy, at, kinds=clocks.AT_CREATION)
        if state is None:
            return None
        # What fell due before this change is emitted first, whether or not the timer got
        # there: the events then depend only on the leg's history, not on timing, which is
        # what makes a replay on event time emit what live processing emitted.
        calendar, fractions, max_pause = self._rules(state)
        state, due = clocks.due_events(state, at, calendar, fractions, max_pause)
        decided = self._change(change, message, state, at, calendar, max_pause)
        if decided is None:
            return (state, due) if due else None
        state, events = decided
        return state, due + events

    def _change(self, change: str, message, state: LegClocks, at: datetime, calendar: Calendar,
                max_pause: timedelta | None):
        """The leg's clocks and events after a change to an existing leg; None when nothing changes."""
        if change in STOPS_ACK:
            state, events = clocks.stop(state, clocks.ACK, at, calendar, max_pause)
            if change != "acknowledged":
                state, more = clocks.stop(state, clocks.RESOLVE, at, calendar, max_pause)
                events += more
            return state, events
        if change == "status_changed":
            policy = self._policy(state)
            pauses = policy.pause_states if policy else ()
            to_status = codec.status_name(message.status_changed.to_status)
            if to_status in pauses:
                return clocks.pause(state, at, calendar, max_pause)
            return clocks.resume(state, at, calendar, max_pause)
        if change == "reopened":
            policy = self._policy(state)
            return clocks.reopen(state, at, policy) if policy else None
        if change == "priority_changed":
            priority = codec.priority_name(message.priority_changed.to_priority)
            policy = self._policies.find(state.leg.department, priority, state.leg.category)
            return clocks.recompute(state, policy, at, priority=priority, previous=calendar) if policy else None
        return None

    def on_handoff_event(self, message, partition: int, at: datetime | None = None) -> list[ClockEvent]:
        """Start, stop, pause, resume or recompute clocks for one HandoffEvent; the events decided
        (`at` is its occurred_at when the caller has read it already)."""
        state, _ = self._load(message.handoff_id)
        decided = self._decide(message, state, at or codec.occurred_at(message))
        if decided is None:
            return []
        self.running_clocks -= _running(state)
        state, events = decided
        self.running_clocks += _running(state)
        self._emit(events, self.now(partition))
        self._save(state, partition)
        return events

    def on_due(self, handoff_id: str, partition: int) -> list[ClockEvent]:
        """Emit the warnings and breaches of one leg that have fallen due; the state records them."""
        state, _ = self._load(handoff_id)
        if state is None:
            return []
        now = self.now(partition)
        if not _running(state):
            if now >= self._forget_at(state):
                del self._table[handoff_id]
            return []
        calendar, fractions, max_pause = self._rules(state)
        state, events = clocks.due_events(state, now, calendar, fractions, max_pause)
        self._emit(events, now)
        self._save(state, partition)
        return events

    def due_legs(self) -> list[tuple[str, int]]:
        """(handoff id, partition) of every owned leg with something due now (a scan: for
        in-memory runs and tests; the stream engine's timer calls `on_due` per leg instead)."""
        due = []
        for handoff_id, raw in self._table.items():
            header = header_of(raw)
            if header.partition in self.indexed_partitions and 0 < header.due_us <= epoch_us(self.now(header.partition)):
                due.append((handoff_id, header.partition))
        return due

    def breached_by(self, handoff_id: str, at: datetime) -> datetime | None:
        """When one of the leg's clocks breached, if it had by `at` (emitted yet or not)."""
        raw = self._table.get(handoff_id)
        if not raw or not _may_have_breached(header_of(raw), at):
            return None
        state, _ = self._load(handoff_id)
        if state is None:
            return None
        calendar, _, max_pause = self._rules(state)
        return clocks.breached_by(state, at, calendar, max_pause)

    def rebuild(self, partitions: frozenset[int]) -> None:
        """Count the running clocks of the partitions this worker now owns (from the values' headers)."""
        self.running_clocks = 0
        for raw in self._table.values():
            header = header_of(raw)
            if header.partition in partitions:
                self.running_clocks += header.tag
        self.indexed_partitions = partitions
        metrics.RUNNING_CLOCKS.set(self.running_clocks)


def _may_have_breached(header: Header, at: datetime) -> bool:
    """Might the leg stored with `header` show a breach by `at`? Read from the header alone (the
    repeat tracker asks for every leg of a customer at each contact, most of them quiet).

    Not without a running clock (the tag counts them). Nor before the header's due instant:
    a clock passes its next warning or the end of its pause before its breach, and the due
    instant is the earliest of those over the leg's clocks (0: none pending, so look).
    """
    if not header.tag:
        return False
    return not header.due_us or epoch_us(at) >= header.due_us


def _running(state: LegClocks | None) -> int:
    return 0 if state is None else sum(1 for clock in state.clocks.values() if clock.running)


# The counter of each event type counted by department, priority and clock alone.
_COUNTED = {ClockStarted: metrics.CLOCKS_STARTED, ClockWarning: metrics.WARNINGS}


def _count(event: ClockEvent, now: datetime) -> None:
    leg, clock = event.leg, event.clock
    labels = (leg.department, leg.priority.lower(), clock.kind)
    counter = _COUNTED.get(type(event))
    if counter is not None:
        child(counter, *labels).inc()
    elif isinstance(event, ClockBreached):
        child(metrics.BREACHES, *labels).inc()
        metrics.BREACH_LAG.observe(max((now - clock.deadline).total_seconds(), 0.0))
    elif isinstance(event, ClockMet):
        child(metrics.MET, *labels, "late" if event.late else "in_time").inc()
        spent = metrics.TIME_TO_ACKNOWLEDGE if clock.kind == clocks.ACK else metrics.TIME_TO_RESOLVE
        child(spent, leg.department, leg.priority.lower()).observe(event.elapsed.total_seconds())
