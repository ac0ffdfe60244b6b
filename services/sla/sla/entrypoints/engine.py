"""The clock engine: applies handoff events to the clocks table and fires due clocks.

Kept apart from faust wiring so each step reads as decode -> domain -> encode. State
writes happen only inside stream iteration (faust requires it); the timer emits breaches
and learns them back through the sla agent, which records them in the table. A handoff
event awaits its sends between reading and writing a leg's clocks, so a lock keeps the
sla agent's writes from landing in between and being overwritten.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta

from common.clock import Clock, WallClock
from sla import metrics
from sla.adapters import codec
from sla.domain import clocks
from sla.domain.calendar import AlwaysOpen, Calendar
from sla.domain.clocks import ClockBreached, ClockEvent, ClockMet, ClockStarted, ClockWarning, LegClocks
from common.dueindex import DueIndex
from sla.domain.policy import Policy, PolicyBook

Send = Callable[[str, bytes], Awaitable[None]]
# A leg resolved, transferred or cancelled before anyone acknowledged it stops its ack clock
# too: the department has dealt with it.
STOPS_ACK = frozenset({"acknowledged", "resolved", "transferred", "cancelled"})


class RecentIds:
    """Ids emitted lately by this worker, so a breach the timer sent is not sent again."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; False when it was already there."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class ClockEngine:
    """`clock` decides what is due (wall time, or event time in replay); `recorded` stamps
    each event's recorded_at (always wall time)."""

    def __init__(self, table: MutableMapping[str, dict], policies: PolicyBook, clock: Clock, send: Send,
                 recorded: Clock | None = None) -> None:
        self._table = table
        self._policies = policies
        self._clock = clock
        self._recorded = recorded or WallClock()
        self._send = send
        self._due = DueIndex()
        self._recent = RecentIds()
        self._lock = asyncio.Lock()
        self.indexed_partitions: frozenset[int] = frozenset()
        # Running clocks of the owned partitions (counted at a rebuild, then kept up to date).
        self.running_clocks = 0

    def _load(self, handoff_id: str) -> tuple[LegClocks | None, int]:
        raw = self._table.get(handoff_id)
        return codec.decode_state(raw) if raw else (None, -1)

    def _policy(self, state: LegClocks) -> Policy | None:
        return self._policies.find(state.leg.department, state.leg.priority, state.leg.category)

    def _rules(self, state: LegClocks) -> tuple[Calendar, tuple[float, ...], timedelta | None]:
        """The leg's calendar, warning fractions and pause cap (24x7, none, none without a policy)."""
        policy = self._policy(state)
        if policy is None:
            return AlwaysOpen(), (), None
        return policy.calendar, policy.warning_fractions, policy.max_pause

    async def _emit(self, events: list[ClockEvent]) -> None:
        recorded_at, now = self._recorded.now(), self._clock.now()
        for event in events:
            if not self._recent.add(event.event_id):
                continue
            await self._send(event.leg.customer_ref, codec.encode_sla_event(event, recorded_at))
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
            return clocks.recompute(state, policy, at, priority=priority) if policy else None
        return None

    def _index(self, state: LegClocks) -> None:
        calendar, fractions, max_pause = self._rules(state)
        due = clocks.next_due(state, calendar, fractions, max_pause)
        if due is not None:
            self._due.add(due, state.leg.handoff_id)

    async def on_handoff_event(self, message, partition: int) -> list[ClockEvent]:
        """Start, stop, pause, resume or recompute clocks for one HandoffEvent; the events decided."""
        async with self._lock:
            return await self._apply(message, partition)

    async def _apply(self, message, partition: int) -> list[ClockEvent]:
        state, _ = self._load(message.handoff_id)
        decided = self._decide(message, state, codec.occurred_at(message))
        if decided is None:
            return []
        self.running_clocks -= _running(state)
        state, events = decided
        self.running_clocks += _running(state)
        # Emit before saving: a crash in between re-emits the same ids, which consumers drop.
        await self._emit(events)
        self._table[message.handoff_id] = codec.encode_state(state, partition)
        self._index(state)
        return events

    async def on_sla_event(self, message, partition: int) -> None:
        """Record a warning or breach this service emitted, so a restart does not emit it again."""
        async with self._lock:
            self._record(message, partition)

    def _record(self, message, partition: int) -> None:
        emitted = codec.emitted_of(message)
        if emitted is None:
            return
        handoff_id, kind, sequence, fraction = emitted
        state, _ = self._load(handoff_id)
        if state is None:
            return
        if fraction is None:
            updated = clocks.record_breach(state, kind, sequence)
        else:
            updated = clocks.record_warning(state, kind, sequence, fraction)
        if updated is not state:
            self._table[handoff_id] = codec.encode_state(updated, partition)

    def breached_by(self, handoff_id: str, at: datetime) -> datetime | None:
        """When one of the leg's clocks breached, if it had by `at` (emitted yet or not)."""
        state, _ = self._load(handoff_id)
        if state is None:
            return None
        calendar, _, max_pause = self._rules(state)
        return clocks.breached_by(state, at, calendar, max_pause)

    def rebuild(self, partitions: frozenset[int]) -> None:
        """Re-index the running clocks of the partitions this worker now owns."""
        self._due.clear()
        self.running_clocks = 0
        for raw in self._table.values():
            state, partition = codec.decode_state(raw)
            if partition in partitions:
                self._index(state)
                self.running_clocks += _running(state)
        self.indexed_partitions = partitions

    async def fire_due(self) -> None:
        """Emit the warnings and breaches that have fallen due."""
        now = self._clock.now()
        for handoff_id in self._due.pop_due(now):
            state, partition = self._load(handoff_id)
            if state is None or partition not in self.indexed_partitions:
                continue
            calendar, fractions, max_pause = self._rules(state)
            state, events = clocks.due_events(state, now, calendar, fractions, max_pause)
            await self._emit(events)
            # Until the sla agent reads them back, remember what was emitted (RecentIds drops
            # repeats) and index what falls due next.
            self._index(state)
        metrics.RUNNING_CLOCKS.set(self.running_clocks)
        metrics.PENDING_DEADLINES.set(len(self._due))


def _running(state: LegClocks | None) -> int:
    return 0 if state is None else sum(1 for clock in state.clocks.values() if clock.running)


def _count(event: ClockEvent, now: datetime) -> None:
    leg, clock = event.leg, event.clock
    labels = (leg.department, leg.priority.lower(), clock.kind)
    if isinstance(event, ClockStarted):
        metrics.CLOCKS_STARTED.labels(*labels).inc()
    elif isinstance(event, ClockWarning):
        metrics.WARNINGS.labels(*labels).inc()
    elif isinstance(event, ClockBreached):
        metrics.BREACHES.labels(*labels).inc()
        metrics.BREACH_LAG.observe(max((now - clock.deadline).total_seconds(), 0.0))
    elif isinstance(event, ClockMet):
        metrics.MET.labels(*labels, "late" if event.late else "in_time").inc()
        spent = metrics.TIME_TO_ACKNOWLEDGE if clock.kind == clocks.ACK else metrics.TIME_TO_RESOLVE
        spent.labels(leg.department, leg.priority.lower()).observe(event.elapsed.total_seconds())
