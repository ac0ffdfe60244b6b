"""Every replica's read model: all legs, their breaches and all contacts, kept current by
tailing handoff.events.v1, sla.events.v1 and contacts.v1 from the beginning.

Every replica reads every partition, so any replica answers reads. `caught_up()` waits
until the model holds everything written before the call, which makes a read after a
write (on any replica) see that write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.kafkaio import topic_partitions
from common.topics import CONTACTS, HANDOFF_EVENTS, SLA_EVENTS, TopicSpec
from handoff_svc.adapters.codec import decode_contact, decode_event
from handoff_svc.domain.contacts import Contact
from handoff_svc.domain.legs import HandoffEvent, Leg, apply

log = logging.getLogger(__name__)
FEEDS: tuple[TopicSpec, ...] = (HANDOFF_EVENTS, SLA_EVENTS, CONTACTS)
_FEED_BY_NAME = {spec.name: spec for spec in FEEDS}


class LegStore:
    """Legs by id, breaches by leg, contacts by customer; each event applied once."""

    def __init__(self) -> None:
        self._legs: dict[str, Leg] = {}
        self._applied: set[str] = set()
        self._breached: set[str] = set()
        self._legs_by_customer: dict[str, list[str]] = defaultdict(list)
        self._contacts: dict[str, dict[str, Contact]] = defaultdict(dict)

    def get(self, handoff_id: str) -> Leg | None:
        return self._legs.get(handoff_id)

    def is_breached(self, handoff_id: str) -> bool:
        return handoff_id in self._breached

    def legs(self) -> list[Leg]:
        return list(self._legs.values())

    def customer_legs(self, customer_ref: str) -> list[Leg]:
        return [self._legs[h] for h in self._legs_by_customer.get(customer_ref, ())]

    def customer_contacts(self, customer_ref: str) -> list[Contact]:
        return list(self._contacts.get(customer_ref, {}).values())

    def was_applied(self, event_id: str) -> bool:
        return event_id in self._applied

    def __len__(self) -> int:
        return len(self._legs)

    def apply(self, event_id: str, event: HandoffEvent) -> Leg | None:
        """Apply `event` unless already applied; returns the leg after it."""
        if event_id in self._applied:
            return self._legs.get(event.handoff_id)
        known = event.handoff_id in self._legs
        leg = apply(self._legs.get(event.handoff_id), event)
        self._applied.add(event_id)
        self._legs[event.handoff_id] = leg
        if not known:
            self._legs_by_customer[leg.customer_ref].append(leg.handoff_id)
        return leg

    def record_breach(self, handoff_id: str) -> None:
        self._breached.add(handoff_id)

    def record_contact(self, contact: Contact) -> None:
        self._contacts[contact.customer_ref][contact.contact_id] = contact


class LegFeed:
    """Tails the feed topics from the beginning into a LegStore."""

    def __init__(self, bootstrap: str, store: LegStore) -> None:
        self._store = store
        self._bootstrap = bootstrap
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._read_up_to: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read every partition up to its current end, then keep following in the background."""
        for topic in FEEDS:
            self._partitions += [TopicPartition(topic.name, p) for p in await topic_partitions(self._bootstrap, topic.name)]
        # Kafka clients bind to the running loop, so they are made here, not in __init__.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._follow(), name="leg-feed")
        await self.caught_up(timeout=None)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def caught_up(self, timeout: float | None = 5.0) -> None:
        """Wait until every record written before this call has been applied."""
        ends = await self._consumer.end_offsets(self._partitions)

        def done() -> bool:
            return all(self._read_up_to.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(done), timeout)

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(tp.topic, record)
            # Everything the consumer has handed out is applied, so its positions are ours.
            for tp in self._partitions:
                self._read_up_to[tp] = await self._consumer.position(tp)
            async with self._progress:
                self._progress.notify_all()

    def _apply(self, topic: str, record) -> None:
        spec = _FEED_BY_NAME[topic]
        try:
            message = decode(spec, record.value)
            if spec is HANDOFF_EVENTS:
                event = decode_event(message)
                if event is not None:
                    self._store.apply(message.envelope.event_id, event)
            elif spec is SLA_EVENTS:
                if message.WhichOneof("change") == "breached":
                    self._store.record_breach(message.handoff_id)
            else:
                self._store.record_contact(decode_contact(message))
        except (MalformedRecord, ValueError, KeyError) as error:
            # The sla service dead-letters malformed records; a read model only skips them.
            log.warning("skipping unreadable %s record at offset %s: %s", topic, record.offset, error)
