"""The clock engine: applies handoff events to the clocks table and fires due clocks.

Kept apart from faust wiring so each step reads as decode -> domain -> encode. State
writes happen only inside stream iteration (faust requires it); the timer emits breaches
and learns them back through the sla agent, which records them in the table.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime

from common.clock import Clock
from sla import metrics
from sla.adapters import codec
from sla.domain import clocks
from sla.domain.calendar import AlwaysOpen, Calendar
from sla.domain.clocks import ClockBreached, ClockEvent, ClockMet, ClockStarted, LegClocks
from sla.domain.dueindex import DueIndex
from sla.domain.policy import PolicyBook

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
    def __init__(self, table: MutableMapping[str, dict], policies: PolicyBook, clock: Clock, send: Send) -> None:
        self._table = table
        self._policies = policies
        self._clock = clock
        self._send = send
        self._due = DueIndex()
        self._recent = RecentIds()
        self.indexed_partitions: frozenset[int] = frozenset()

    def _load(self, handoff_id: str) -> tuple[LegClocks | None, int]:
        raw = self._table.get(handoff_id)
        return codec.decode_state(raw) if raw else (None, -1)

    def _calendar(self, state: LegClocks) -> Calendar:
        policy = self._policies.find(state.leg.department, state.leg.priority, state.leg.category)
        return policy.calendar if policy else AlwaysOpen()

    async def _emit(self, events: list[ClockEvent]) -> None:
        now = self._clock.now()
        for event in events:
            if not self._recent.add(event.event_id):
                continue
            await self._send(event.leg.customer_ref, codec.encode_sla_event(event, now))
            _count(event, now)

    async def on_handoff_event(self, message, partition: int) -> None:
        """Start or stop clocks for one HandoffEvent (already decoded)."""
        change = message.WhichOneof("change")
        state, _ = self._load(message.handoff_id)
        at = codec.occurred_at(message)
        if change == "created" and state is None:
            leg = codec.leg_info(message)
            policy = self._policies.find(leg.department, leg.priority, leg.category)
            if policy is None:
                metrics.UNCOVERED_LEGS.labels(leg.department).inc()
                return
            state, events = clocks.start(leg, policy, at)
        elif change in STOPS_ACK and state is not None:
            state, events = clocks.stop(state, clocks.ACK, at, self._calendar(state))
        else:
            return
        # Emit before saving: a crash in between re-emits the same ids, which consumers drop.
        await self._emit(events)
        self._table[message.handoff_id] = codec.encode_state(state, partition)
        deadline = clocks.next_deadline(state)
        if deadline is not None:
            self._due.add(deadline, message.handoff_id)

    async def on_sla_event(self, message, partition: int) -> None:
        """Record a breach this service emitted, so a restart does not emit it again."""
        breach = codec.breach_of(message)
        if breach is None:
            return
        handoff_id, kind, sequence = breach
        state, _ = self._load(handoff_id)
        if state is None:
            return
        updated = clocks.record_breach(state, kind, sequence)
        if updated is not state:
            self._table[handoff_id] = codec.encode_state(updated, partition)

    def rebuild(self, partitions: frozenset[int]) -> None:
        """Re-index the running clocks of the partitions this worker now owns."""
        self._due.clear()
        for raw in self._table.values():
            state, partition = codec.decode_state(raw)
            deadline = clocks.next_deadline(state)
            if partition in partitions and deadline is not None:
                self._due.add(deadline, state.leg.handoff_id)
        self.indexed_partitions = partitions

    async def fire_due(self) -> None:
        """Emit a breach for every clock whose deadline has passed."""
        now = self._clock.now()
        for handoff_id in self._due.pop_due(now):
            state, partition = self._load(handoff_id)
            if state is None or partition not in self.indexed_partitions:
                continue
            state, events = clocks.breach_due(state, now)
            await self._emit(events)
            deadline = clocks.next_deadline(state)
            if deadline is not None:
                self._due.add(deadline, handoff_id)
        metrics.RUNNING_CLOCKS.set(len(self._due))

    def seconds_to_next_deadline(self) -> float | None:
        deadline = self._due.next_deadline()
        return None if deadline is None else (deadline - self._clock.now()).total_seconds()


def _count(event: ClockEvent, now: datetime) -> None:
    leg, clock = event.leg, event.clock
    labels = (leg.department, leg.priority.lower(), clock.kind)
    if isinstance(event, ClockStarted):
        metrics.CLOCKS_STARTED.labels(*labels).inc()
    elif isinstance(event, ClockBreached):
        metrics.BREACHES.labels(*labels).inc()
        metrics.BREACH_LAG.observe(max((now - clock.deadline).total_seconds(), 0.0))
    elif isinstance(event, ClockMet):
        metrics.MET.labels(*labels, "late" if event.late else "in_time").inc()
        if clock.kind == clocks.ACK:
            metrics.TIME_TO_ACKNOWLEDGE.labels(leg.department, leg.priority.lower()).observe(
                event.elapsed.total_seconds()
            )
