"""Dead letters: a record a consumer cannot read goes to `<topic>.dlq`, untouched, with why."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.kafkaio import topic_partitions
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.metrics import DLQ_RECORDS
from common.topics import TopicSpec

DeadLetterSend = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]


def error_line(error: BaseException) -> str:
    """The error and where it was raised, in one line, for the DLQ header."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def dead_letter_headers(topic: TopicSpec, partition: int, offset: int, reason: str, consumer: str) -> list[tuple[str, bytes]]:
    """Headers that tell an operator where the record came from and what was wrong."""
    return [
        ("dlq.error", reason.encode()[:2000]),
        ("dlq.topic", topic.name.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
        ("dlq.consumer", consumer.encode()),
    ]


async def dead_letter(
    send: DeadLetterSend,
    topic: TopicSpec,
    key: bytes | None,
    value: bytes | None,
    partition: int,
    offset: int,
    reason: str,
    consumer: str,
) -> None:
    """Send the original key and value to the topic's DLQ and count it."""
    await send(topic.dlq, key, value, dead_letter_headers(topic, partition, offset, reason, consumer))
    DLQ_RECORDS.labels(topic.name).inc()


async def dead_lettered(bootstrap: str, topics: Iterable[TopicSpec], security: KafkaSecurity = PLAINTEXT,
                        time_limit: float = 30.0) -> set[tuple[str, int, int]]:
    """(topic, partition, offset) of every record of `topics` already in their DLQs, read from
    the dlq.* headers: what a reader that sees every record again on each start has sent before.

    Reading stops after `time_limit` (a transaction left open on a DLQ holds read_committed
    readers back); what it has not reached by then may be sent a second time."""
    specs = list(topics)
    partitions = [TopicPartition(spec.dlq, p) for spec in specs
                  for p in await topic_partitions(bootstrap, spec.dlq, security)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", **security.aiokafka())
    await consumer.start()
    found: set[tuple[str, int, int]] = set()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        give_up = time.monotonic() + time_limit
        while any([await consumer.position(tp) < end for tp, end in ends.items()]) and time.monotonic() < give_up:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
                    if {"dlq.topic", "dlq.partition", "dlq.offset"} <= headers.keys():
                        found.add((headers["dlq.topic"], int(headers["dlq.partition"]), int(headers["dlq.offset"])))
    finally:
        await consumer.stop()
    return found
