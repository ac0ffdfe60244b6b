"""The clock engine and the repeat tracker wired together: what each record and each change
of assignment does to them. The faust app, the in-process live reference and the tests all
drive this one wiring.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from common.clock import Clock, EventTime, WallClock
from sla.adapters import codec
from sla.domain.clocks import ClockEvent
from sla.domain.policy import PolicyBook
from sla.entrypoints.engine import ClockEngine, Send
from sla.entrypoints.repeat_tracker import RepeatTracker


class SlaWorker:
    """`clock` decides what is due: a WallClock, or an EventTime for replay; `recorded`
    stamps recorded_at (wall time unless given)."""

    def __init__(self, clock_table: MutableMapping[str, dict], customers: MutableMapping[str, dict],
                 policies: PolicyBook, clock: Clock, send_sla: Send, send_repeat: Send,
                 recorded: Clock | None = None) -> None:
        recorded = recorded or WallClock()
        self.event_time = clock if isinstance(clock, EventTime) else None
        self.engine = ClockEngine(clock_table, policies, clock, send_sla, recorded=recorded)
        self.tracker = RepeatTracker(customers, self.engine.breached_by, policies.repeats, send_repeat, recorded,
                                     self.event_time)

    async def on_handoff_event(self, message, partition: int) -> list[ClockEvent]:
        """The watermark, the leg's clocks, the customer's legs, then the contacts it releases."""
        if self.event_time is not None:
            self.event_time.advance(partition, codec.occurred_at(message))
        events: list[ClockEvent] = []
        if message.WhichOneof("change") != "heartbeat":
            events = await self.engine.on_handoff_event(message, partition)
            await self.tracker.on_leg_change(message, events, partition)
        if self.event_time is not None:
            await self.tracker.settle(partition)
        return events

    async def on_sla_event(self, message, partition: int) -> None:
        """An SLA event this service emitted, read back: the clocks and the customer's legs record it."""
        await self.engine.on_sla_event(message, partition)
        if message.WhichOneof("change") == "breached":
            await self.tracker.on_breach(message, partition)

    async def on_contact(self, message, partition: int) -> None:
        await self.tracker.on_contact(message, partition)

    def assign(self, partitions: frozenset[int]) -> None:
        """The worker now owns `partitions`: re-index due clocks and waiting contacts."""
        if self.event_time is not None:
            self.event_time.own(partitions)
        self.engine.rebuild(partitions)
        self.tracker.rebuild(partitions)

    @property
    def assigned(self) -> frozenset[int]:
        return self.engine.indexed_partitions

    async def fire_due(self) -> None:
        await self.engine.fire_due()
