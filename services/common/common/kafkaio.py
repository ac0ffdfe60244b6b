"""Small Kafka helpers shared by the services' adapters."""

from __future__ import annotations

import functools

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from common.kafkasecurity import PLAINTEXT, KafkaSecurity


class MissingTopic(RuntimeError):
    """A topic the project needs does not exist; topics are created by the project, never by the broker."""


async def topic_partitions(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> list[int]:
    """The partition ids of `topic`, or MissingTopic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security.aiokafka())
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            raise MissingTopic(f"topic {topic} does not exist; create the project's topics first")
    finally:
        await consumer.stop()
    # The producer's metadata call is the public way to learn a topic's partitions.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **security.aiokafka())
    await producer.start()
    try:
        return sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()


_known: dict[tuple[str, str], list[int]] = {}


async def known_partitions(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> list[int]:
    """`topic_partitions`, asked once per process: the project never changes a topic's
    partition count while it runs (keyed records would change partition)."""
    if (bootstrap, topic) not in _known:
        _known[bootstrap, topic] = await topic_partitions(bootstrap, topic, security)
    return _known[bootstrap, topic]


def partition_for(key: str, partitions: list[int]) -> int:
    """The partition a record with `key` lands on among `partitions` (sorted by id): Kafka's
    default (murmur2) partitioner."""
    return partitions[key_partition(key.encode(), len(partitions))]


# Looked up for every keyed record a stream engine reads (and murmur2 is pure Python, about
# 3 µs a key): the keys of a worker's customers and receivers repeat, their partitions are kept.
@functools.lru_cache(maxsize=65_536)
def key_partition(key: bytes, count: int) -> int:
    """The partition of `key` among `count` partitions, as Kafka's default partitioner places it."""
    return (murmur2(key) & 0x7FFFFFFF) % count
