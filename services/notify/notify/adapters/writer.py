"""The API's Kafka producer: silences and acknowledgements, written and awaited one by one."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import TopicSpec


class RecordWriter:
    """Sends a record and returns once the broker has it (acks=all, idempotent)."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Kafka clients bind to the running loop, so the producer is made here.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True, **self._security.aiokafka()
        )
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and close; safe before `start` and twice."""
        if self._producer:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: TopicSpec, key: str, value: bytes) -> None:
        if self._producer is None:
            raise RuntimeError("the writer is not started")
        await self._producer.send_and_wait(topic.name, key=key.encode(), value=value)

    async def send_dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                               headers: list[tuple[str, bytes]]) -> None:
        """A common.dlq DeadLetterSend: the original key and value, as they were, with the error headers."""
        if self._producer is None:
            raise RuntimeError("the writer is not started")
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)
