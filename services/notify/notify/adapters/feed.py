"""A receiver's notifications read from notifications.v1, from a cursor or from now on.

notifications.v1 is keyed by receiver, so one partition holds all of a receiver's
notifications in order; a cursor is that partition and the offset of the last one seen.
Each subscription reads with its own consumer, so any replica can serve any receiver and
a reconnecting client resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import MalformedRecord, decode
from common.kafkaio import partition_for, topic_partitions
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


async def follow(bootstrap: str, receiver: str, cursor: Cursor | None) -> AsyncIterator[tuple[Cursor, object]]:
    """Yield (cursor, NotificationEvent) for `receiver`: after `cursor`, or from now on."""
    partitions = await topic_partitions(bootstrap, NOTIFICATIONS.name)
    partition = partition_for(receiver, partitions)
    if cursor is not None and cursor.partition != partition:
        raise BadCursor(f"cursor {cursor} does not belong to receiver {receiver!r}")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
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
