"""A subscriber that resumes behind the replica's reader reads what it missed with a consumer of
its own (notify.adapters.feed.read), on the real broker: exactly its receiver's committed
records in the range asked, and no further, however the range ends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from common.kafkaio import known_partitions, partition_for
from common.topics import NOTIFICATIONS
from notify.adapters.codec import encode_acknowledged
from notify.adapters.feed import read, receiver_partition

pytestmark = pytest.mark.integration
LIMIT_S = 30.0


def write(bootstrap: str, partition: int, receivers: list[str], commit: bool = True) -> list[tuple[str, str]]:
    """One acknowledgement per receiver, in this order, in one transaction on `partition`;
    (receiver, notification id) of each."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"catch-up-test-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    written = [(receiver, f"n-{uuid.uuid4()}") for receiver in receivers]
    at = datetime.now(timezone.utc)
    for receiver, notification_id in written:
        producer.produce(NOTIFICATIONS.name, encode_acknowledged(notification_id, receiver, "tester", at),
                         receiver.encode(), partition=partition)
    producer.flush(30)
    (producer.commit_transaction if commit else producer.abort_transaction)(30)
    return written


def end_of(bootstrap: str, partition: int) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "catch-up-test"})
    try:
        return reader.get_watermark_offsets(TopicPartition(NOTIFICATIONS.name, partition), timeout=LIMIT_S)[1]
    finally:
        reader.close()


def offsets_of(bootstrap: str, partition: int, receiver: str, until: int) -> dict[str, int]:
    """Where each notification of `receiver` sits on the partition, up to `until`."""

    async def scan() -> dict[str, int]:
        return {event.acknowledged.notification_id: cursor.offset
                async for cursor, event in read(bootstrap, receiver, partition, 0, until)}

    return asyncio.run(asyncio.wait_for(scan(), LIMIT_S))


def test_catching_up_reads_the_receivers_committed_records_in_the_range_and_stops_at_its_end(
        kafka_bootstrap: str) -> None:
    # given two receivers that share a partition and an aborted batch among their records; the
    # range ends where the partition ends, after another receiver's record and a commit marker
    mine = f"billing-{uuid.uuid4().hex[:8]}"
    partitions = asyncio.run(known_partitions(kafka_bootstrap, NOTIFICATIONS.name))
    partition = partition_for(mine, partitions)
    other = next(name for name in (f"claims-{n}" for n in range(1000)) if partition_for(name, partitions) == partition)
    first = write(kafka_bootstrap, partition, [mine, other, mine])
    write(kafka_bootstrap, partition, [mine, mine], commit=False)
    second = write(kafka_bootstrap, partition, [mine, other])
    until = end_of(kafka_bootstrap, partition)
    start = offsets_of(kafka_bootstrap, partition, mine, until)[first[0][1]] + 1  # as a cursor would say

    async def catch_up() -> list[str]:
        return [event.acknowledged.notification_id
                async for _, event in read(kafka_bootstrap, mine, partition, start, until)]

    # when the subscriber catches up on that range
    got = asyncio.run(asyncio.wait_for(catch_up(), LIMIT_S))

    # then it gets its own committed records in it, once each, in order, and the reading ends
    # although no record at or past the range's end ever comes
    assert got == [first[2][1], second[0][1]]


def test_catching_up_on_an_empty_range_reads_nothing(kafka_bootstrap: str) -> None:
    mine = f"billing-{uuid.uuid4().hex[:8]}"
    partition = asyncio.run(receiver_partition(kafka_bootstrap, mine, None))

    async def catch_up() -> list:
        return [item async for item in read(kafka_bootstrap, mine, partition, 5, 5)]

    assert asyncio.run(asyncio.wait_for(catch_up(), LIMIT_S)) == []
