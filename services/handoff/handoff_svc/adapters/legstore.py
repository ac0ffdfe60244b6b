"""The legs this replica knows, rebuilt from handoff.events.v1 and kept current by tailing it.

Every replica reads every partition, so any replica answers reads. Events this replica
writes are applied at once (so a create followed by an acknowledge works without waiting
for the round trip); their echo from Kafka is skipped by event id.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.kafkaio import topic_partitions
from common.topics import HANDOFF_EVENTS
from handoff_svc.adapters.codec import decode_event
from handoff_svc.domain.legs import HandoffEvent, Leg, apply

log = logging.getLogger(__name__)


class LegStore:
    """Legs by id, fed by events, each event applied once."""

    def __init__(self) -> None:
        self._legs: dict[str, Leg] = {}
        self._applied: set[str] = set()

    def get(self, handoff_id: str) -> Leg | None:
        return self._legs.get(handoff_id)

    def was_applied(self, event_id: str) -> bool:
        return event_id in self._applied

    def __len__(self) -> int:
        return len(self._legs)

    def apply(self, event_id: str, event: HandoffEvent) -> Leg | None:
        """Apply `event` unless already applied; returns the leg after it."""
        if event_id in self._applied:
            return self._legs.get(event.handoff_id)
        leg = apply(self._legs.get(event.handoff_id), event)
        self._applied.add(event_id)
        self._legs[event.handoff_id] = leg
        return leg


class LegFeed:
    """Tails handoff.events.v1 from the beginning into a LegStore."""

    def __init__(self, bootstrap: str, store: LegStore) -> None:
        self._store = store
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read every partition up to its current end, then keep following in the background."""
        partitions = await topic_partitions(self._bootstrap, HANDOFF_EVENTS.name)
        await self._consumer.start()
        assigned = [TopicPartition(HANDOFF_EVENTS.name, p) for p in partitions]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        ends = await self._consumer.end_offsets(assigned)
        while await self._behind(ends):
            await self._poll(timeout_ms=200)
        self._task = asyncio.create_task(self._follow(), name="leg-feed")

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            await self._poll(timeout_ms=500)

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        for records in batches.values():
            for record in records:
                try:
                    message = decode(HANDOFF_EVENTS, record.value)
                    event = decode_event(message)
                    if event is not None:
                        self._store.apply(message.envelope.event_id, event)
                except (MalformedRecord, ValueError) as error:
                    # The sla service dead-letters malformed records; here we only skip them.
                    log.warning("skipping unreadable handoff event at offset %s: %s", record.offset, error)
