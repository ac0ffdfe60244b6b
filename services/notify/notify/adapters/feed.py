"""A receiver's notifications read from notifications.v1, from a cursor or from now on.

notifications.v1 is keyed by receiver, so one partition holds all of a receiver's
notifications in order; a cursor is that partition and the offset of the last one seen.
Any replica can serve any receiver, and a reconnecting client resumes where it stopped.
A subscription from now on is served by the replica's one reader of the topic (the API's
read model), which hands each record to every live subscriber of its receiver; one that
resumes from a cursor reads with a consumer of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.kafkaio import known_partitions, partition_for
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import NOTIFICATIONS


class BadCursor(ValueError):
    """A cursor that this service did not hand out."""


@dataclass(frozen=True)
class Cursor:
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        partition, _, offset = text.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise BadCursor(f"cursor {text!r} is not of the form PARTITION:OFFSET")
        return cls(int(partition), int(offset))


async def follow(bootstrap: str, receiver: str, cursor: Cursor | None,
                 security: KafkaSecurity = PLAINTEXT) -> AsyncIterator[tuple[Cursor, object]]:
    """Yield (cursor, NotificationEvent) for `receiver`: after `cursor`, or from now on."""
    partitions = await known_partitions(bootstrap, NOTIFICATIONS.name, security)
    partition = partition_for(receiver, partitions)
    if cursor is not None and cursor.partition != partition:
        raise BadCursor(f"cursor {cursor} does not belong to receiver {receiver!r}")
    # read_committed: notify writes notifications.v1 in transactions; an aborted batch's
    # records must never reach a subscriber.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
                                isolation_level="read_committed", **security.aiokafka())
    await consumer.start()
    try:
        tp = TopicPartition(NOTIFICATIONS.name, partition)
        consumer.assign([tp])
        if cursor is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, cursor.offset + 1)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, ()):
                if record.key != receiver.encode():
                    continue
                try:
                    event = decode(NOTIFICATIONS, record.value)
                except MalformedRecord:
                    continue
                yield Cursor(partition, record.offset), event
    finally:
        await consumer.stop()


class FellBehind(RuntimeError):
    """A live subscriber read too slowly: it should resume from its last cursor."""


class _Waiting:
    """What the reader handed one live subscriber and it has not streamed yet."""

    def __init__(self, capacity: int) -> None:
        self.items: deque[tuple[Cursor, object]] = deque()
        self.ready = asyncio.Event()
        self.fell_behind = False
        self.capacity = capacity

    def push(self, item: tuple[Cursor, object]) -> None:
        if len(self.items) >= self.capacity:
            self.fell_behind = True
        else:
            self.items.append(item)
        self.ready.set()


class LiveSubscribers:
    """Every subscription from now on of this replica, fed by one reader of notifications.v1
    (`publish` is its TopicFeed observer) instead of a consumer each."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._by_receiver: dict[bytes, set[_Waiting]] = {}

    def publish(self, record, event) -> None:
        """Hand one record of notifications.v1 to the live subscribers of its receiver."""
        for waiting in tuple(self._by_receiver.get(record.key, ())):
            waiting.push((Cursor(record.partition, record.offset), event))

    async def follow(self, receiver: str) -> AsyncIterator[tuple[Cursor, object]]:
        """Yield (cursor, NotificationEvent) for `receiver` from now on; FellBehind if too slow."""
        key, waiting = receiver.encode(), _Waiting(self._capacity)
        self._by_receiver.setdefault(key, set()).add(waiting)
        try:
            while True:
                await waiting.ready.wait()
                waiting.ready.clear()
                if waiting.fell_behind:
                    raise FellBehind(f"the subscriber fell more than {self._capacity} notifications behind; "
                                     "subscribe again with the last cursor received")
                while waiting.items:
                    yield waiting.items.popleft()
        finally:
            subscribers = self._by_receiver.get(key, set())
            subscribers.discard(waiting)
            if not subscribers:
                self._by_receiver.pop(key, None)
