"""Dead letters: a record a consumer cannot read goes to `<topic>.dlq`, untouched, with why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from common.metrics import DLQ_RECORDS
from common.topics import TopicSpec

DeadLetterSend = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]


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
