"""A receiver's notifications read from notifications.v1, from a cursor or from now on.

notifications.v1 is keyed by receiver, so one partition holds all of a receiver's
notifications in order; a cursor is that partition and the offset of the last one seen.
Any replica can serve any receiver, and a reconnecting client resumes where it stopped.
Subscriptions are served by the replica's one reader of the topic (the API's read model),
which hands each record to every subscriber of its receiver. One that resumes from a cursor
behind that reader first reads what it missed with a consumer of its own, up to where the
reader was when it subscribed, then goes on with the reader: each notification once, none
missed, and no consumer per subscriber once it has caught up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.kafkaio import known_partitions, partition_for
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.rdkafka import batches, follower_config
from common.topics import NOTIFICATIONS

# A subscriber's own consumer: a fetch returns as soon as a record is readable, else after this.
FETCH_WAIT_MS = 500
POLL_WAIT_S = 0.25
MOST_PER_BATCH = 1000


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


async def receiver_partition(bootstrap: str, receiver: str, cursor: Cursor | None,
                             security: KafkaSecurity = PLAINTEXT) -> int:
    """The partition of notifications.v1 that holds `receiver`'s notifications; BadCursor if
    `cursor` points elsewhere."""
    partition = partition_for(receiver, await known_partitions(bootstrap, NOTIFICATIONS.name, security))
    if cursor is not None and cursor.partition != partition:
        raise BadCursor(f"cursor {cursor} does not belong to receiver {receiver!r}")
    return partition


async def read(bootstrap: str, receiver: str, partition: int, start: int, until: int,
               security: KafkaSecurity = PLAINTEXT) -> AsyncIterator[tuple[Cursor, object]]:
    """Yield (cursor, NotificationEvent) for `receiver` from offset `start` of its `partition` up
    to offset `until` (not included), read with a consumer of its own (librdkafka, fetching on
    its threads): what a subscriber missed. From a `start` whose records retention has deleted,
    it reads from the first one kept."""
    if start >= until:
        return
    # read_committed: notify writes notifications.v1 in transactions; an aborted batch's
    # records must never reach a subscriber.
    consumer = Consumer(follower_config(bootstrap, f"subscriber-{receiver}", "read_committed", FETCH_WAIT_MS,
                                        **{"auto.offset.reset": "earliest"}, **security.librdkafka()))
    thread = ThreadPoolExecutor(1, thread_name_prefix="subscriber")
    key, tp = receiver.encode(), TopicPartition(NOTIFICATIONS.name, partition, start)
    try:
        consumer.assign([tp])
        async for records in batches(consumer, thread, MOST_PER_BATCH, POLL_WAIT_S, f"subscriber {receiver}"):
            for record in records:
                if record.error() is not None or record.key() != key:
                    continue
                if record.offset() >= until:
                    return
                try:
                    event = decode(NOTIFICATIONS, record.value())
                except MalformedRecord:
                    continue
                yield Cursor(partition, record.offset()), event
            # Past the range without a record of its own beyond it (markers, other receivers).
            if consumer.position([tp])[0].offset >= until:
                return
    finally:
        # The thread may still wait for a batch: the consumer closes after it.
        await asyncio.to_thread(thread.shutdown)
        await asyncio.to_thread(consumer.close)


# (start, until) -> what a subscriber missed on its receiver's partition, from offset start up
# to until (not included): `read` for one receiver and partition.
CatchUp = Callable[[int, int], AsyncIterator[tuple[Cursor, object]]]


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
    """Every subscription of this replica, fed by one reader of notifications.v1 (`publish` is
    its TopicFeed observer) instead of a consumer each."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._by_receiver: dict[bytes, set[_Waiting]] = {}
        # By partition, the offset after the last record published: every record from there on
        # reaches the subscribers registered now, in offset order.
        self._next: dict[int, int] = {}

    def publish(self, record, event) -> None:
        """Hand one record of notifications.v1 to the live subscribers of its receiver."""
        self._next[record.partition] = record.offset + 1
        for waiting in tuple(self._by_receiver.get(record.key, ())):
            waiting.push((Cursor(record.partition, record.offset), event))

    async def follow(self, receiver: str, after: Cursor | None = None,
                     catch_up: CatchUp | None = None) -> AsyncIterator[tuple[Cursor, object]]:
        """Yield (cursor, NotificationEvent) for `receiver` from now on, or after `after`; FellBehind
        if too slow. What the reader published before the subscription and after `after` is
        read with `catch_up` (required with `after`) while the reader's records wait."""
        key, waiting = receiver.encode(), _Waiting(self._capacity)
        # Registered and told where the reader stands in one step: nothing falls between.
        self._by_receiver.setdefault(key, set()).add(waiting)
        last = -1
        try:
            if after is not None:
                last, until = after.offset, self._next.get(after.partition, 0)
                if last + 1 < until:
                    async for position, event in catch_up(last + 1, until):
                        last = position.offset
                        yield position, event
                    last = until - 1
            while True:
                await waiting.ready.wait()
                waiting.ready.clear()
                if waiting.fell_behind:
                    raise FellBehind(f"the subscriber fell more than {self._capacity} notifications behind; "
                                     "subscribe again with the last cursor received")
                while waiting.items:
                    position, event = waiting.items.popleft()
                    if position.offset > last:  # a cursor ahead of this replica's reader: not again
                        yield position, event
        finally:
            subscribers = self._by_receiver.get(key, set())
            subscribers.discard(waiting)
            if not subscribers:
                self._by_receiver.pop(key, None)
