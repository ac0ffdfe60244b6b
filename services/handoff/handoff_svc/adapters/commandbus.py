"""Send a command to the owner of its customer's partition and wait for the owner's reply.

Commands go to handoff.commands.v1 keyed by customer_ref; the owner answers on
handoff.replies.v1 keyed by this replica's name, and this replica reads just the
partition that key lands on. Replies are read committed: the owner writes a reply in the
transaction of its batch, and a batch that is aborted (and applied again) must never
have told a caller anything.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff.v1 import handoff_commands_pb2 as commands_pb2

from common.codec import MalformedRecord, decode
from common.dlq import dead_letter
from common.kafkaio import partition_for, topic_partitions
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import HANDOFF_COMMANDS, HANDOFF_REPLIES

log = logging.getLogger(__name__)
REPLY_FETCH_WAIT_MS = 500


class CommandTimeout(TimeoutError):
    """No reply in time: the owner may be rebalancing; retrying with the same request id is safe."""


class CommandBus:
    def __init__(self, bootstrap: str, replica: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.replica = replica
        self._security = security
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._waiting: dict[str, asyncio.Future[commands_pb2.CommandReply]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        partitions = await topic_partitions(self._bootstrap, HANDOFF_REPLIES.name, self._security)
        mine = TopicPartition(HANDOFF_REPLIES.name, partition_for(self.replica, partitions))
        # Kafka clients bind to the running loop, so they are made here, not in __init__.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, client_id=self.replica, acks="all", enable_idempotence=True,
            linger_ms=1, **self._security.aiokafka(),
        )
        # A fetch waits up to REPLY_FETCH_WAIT_MS for a reply, but returns as soon as one is
        # readable: the broker completes it when the commit markers of the owner's
        # transaction are written. A short wait would only add empty fetches when quiet.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, fetch_max_wait_ms=REPLY_FETCH_WAIT_MS,
            isolation_level="read_committed", **self._security.aiokafka(),
        )
        await self._producer.start()
        await self._consumer.start()
        self._consumer.assign([mine])
        await self._consumer.seek_to_end(mine)
        # Resolve the position now, so no reply produced after start() is skipped.
        await self._consumer.position(mine)
        self._task = asyncio.create_task(self._read_replies(), name="command-replies")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def send(self, command: commands_pb2.HandoffCommand, timeout: float) -> commands_pb2.CommandReply:
        """Send `command` and return the owner's reply, or raise CommandTimeout."""
        command.reply_to = self.replica
        command_id = command.envelope.event_id
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = waiting
        try:
            await self._producer.send_and_wait(
                HANDOFF_COMMANDS.name, command.SerializeToString(), key=command.customer_ref.encode()
            )
            return await asyncio.wait_for(waiting, timeout)
        except asyncio.TimeoutError:
            raise CommandTimeout(f"no reply to command {command_id} within {timeout:.0f}s") from None
        finally:
            self._waiting.pop(command_id, None)

    async def _send_dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                                headers: list[tuple[str, bytes]]) -> None:
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)

    async def _read_replies(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.key != self.replica.encode():
                        continue
                    try:
                        reply = decode(HANDOFF_REPLIES, record.value)
                    except MalformedRecord as error:
                        log.warning("unreadable reply at offset %s: %s", record.offset, error)
                        await dead_letter(self._send_dead_letter, HANDOFF_REPLIES, record.key, record.value,
                                          record.partition, record.offset, str(error), self.replica)
                        continue
                    waiting = self._waiting.get(reply.command_id)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(reply)
