"""Send a command to the owner of its customer's partition and wait for the owner's reply.

Commands go to handoff.commands.v1 keyed by customer_ref; the owner answers on
handoff.replies.v1 keyed by this replica's name, and this replica reads just the
partition that key lands on. Replies are read committed: the owner writes a reply in the
transaction of its batch, and a batch that is aborted (and applied again) must never
have told a caller anything.

A command for a partition this replica's own engine owns is handed to that engine through
the CommandInbox (adapters/inbox.py) instead of the command topic; its reply comes back on
the reply topic like any other.

librdkafka (confluent-kafka) produces the commands and fetches the replies on its own
threads. A thread of the bus waits for replies and hands each batch to the event loop,
where the callers wait (as a read model's feed does); a command that could not be written
fails its caller at once.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from handoff.v1 import handoff_commands_pb2 as commands_pb2

from common.codec import MalformedRecord, decode
from common.dlq import dead_letter
from common.kafkaio import partition_for
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.rdkafka import batches, follower_config, partition_ids, start_or_close
from common.topics import HANDOFF_COMMANDS, HANDOFF_REPLIES
from handoff_svc.adapters.inbox import CommandInbox

log = logging.getLogger(__name__)
# A fetch waits up to this long for a reply, but returns as soon as one is readable: the
# broker completes it when the commit markers of the owner's transaction are written. A
# short wait would only add empty fetches when quiet.
REPLY_FETCH_WAIT_MS = 500
# The bus's thread waits this long for the first reply of a batch; it is also the longest a
# failed delivery waits to be noticed, and `stop` waits for the thread.
POLL_WAIT_S = 0.25
MOST_PER_BATCH = 1000
PRODUCE_LINGER_MS = 1


class CommandTimeout(TimeoutError):
    """No reply in time, or the command could not be written: the owner may be rebalancing, the
    broker away; retrying with the same request id is safe."""


class CommandBus:
    def __init__(self, bootstrap: str, replica: str, security: KafkaSecurity = PLAINTEXT,
                 inbox: CommandInbox | None = None) -> None:
        self.replica = replica
        self._inbox = inbox
        self._command_partitions: list[int] = []
        self._key = replica.encode()
        self._security = security
        self._bootstrap = bootstrap
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._waiting: dict[str, asyncio.Future[commands_pb2.CommandReply]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetching: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._dead_letters: set[asyncio.Task[None]] = set()  # sends under way, held until done

    async def start(self) -> None:
        """Start reading replies; a start that fails (MissingTopic, say) leaves nothing open."""
        await start_or_close(self._start, self.stop)

    async def _start(self) -> None:
        client = {"bootstrap.servers": self._bootstrap, "client.id": self.replica, **self._security.librdkafka()}
        # Keyed the way the owner's engine and Kafka's Java clients key: murmur2, so a command
        # lands on the partition of its customer's owner.
        self._producer = Producer({**client, "enable.idempotence": True, "acks": "all",
                                   "linger.ms": PRODUCE_LINGER_MS, "partitioner": "murmur2_random"})
        self._consumer = Consumer(follower_config(self._bootstrap, self.replica, "read_committed", REPLY_FETCH_WAIT_MS,
                                                  group=f"{self.replica}-replies", **self._security.librdkafka()))
        partitions = await asyncio.to_thread(partition_ids, self._consumer, HANDOFF_REPLIES.name)
        if self._inbox is not None:
            self._command_partitions = await asyncio.to_thread(partition_ids, self._consumer, HANDOFF_COMMANDS.name)
        mine = TopicPartition(HANDOFF_REPLIES.name, partition_for(self.replica, partitions))
        # From the partition's end now (its last stable offset), so no reply to a command sent
        # after start() is skipped.
        _, end = await asyncio.to_thread(self._consumer.get_watermark_offsets, mine, 30, False)
        self._consumer.assign([TopicPartition(mine.topic, mine.partition, end)])
        self._loop = asyncio.get_running_loop()
        self._fetching = ThreadPoolExecutor(1, thread_name_prefix="command-replies")
        self._task = asyncio.create_task(self._follow(), name="command-replies")

    async def stop(self) -> None:
        """Stop reading replies, deliver what is still queued, close the clients; safe twice."""
        # The follower serves the delivery reports that the dead letters under way wait for.
        await asyncio.gather(*self._dead_letters, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._fetching is not None:  # its thread may still wait for a batch: the consumer closes after it
            await asyncio.to_thread(self._fetching.shutdown)
            self._fetching = None
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 10)
            self._producer = None
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.close)
            self._consumer = None

    async def send(self, command: commands_pb2.HandoffCommand, timeout: float) -> commands_pb2.CommandReply:
        """Send `command` and return the owner's reply, or raise CommandTimeout."""
        command.reply_to = self.replica
        command_id = command.envelope.event_id
        waiting = self._loop.create_future()
        self._waiting[command_id] = waiting
        try:
            partition = self._owned_partition(command.customer_ref)
            if partition is not None:
                self._inbox.put(command, partition)
            else:
                self._producer.produce(HANDOFF_COMMANDS.name, command.SerializeToString(), command.customer_ref.encode(),
                                       on_delivery=partial(self._delivered, command_id))
            return await asyncio.wait_for(waiting, timeout)
        except asyncio.TimeoutError:
            raise CommandTimeout(f"no reply to command {command_id} within {timeout:.0f}s") from None
        except (BufferError, KafkaException) as error:
            raise CommandTimeout(f"command {command_id} could not be written: {error}") from None
        finally:
            self._waiting.pop(command_id, None)

    def _owned_partition(self, customer_ref: str) -> int | None:
        """The customer's command partition if this replica's engine owns it (so the inbox takes
        the command), else None."""
        if self._inbox is None or not self._command_partitions:
            return None
        partition = partition_for(customer_ref, self._command_partitions)
        return partition if self._inbox.owns(partition) else None

    def _delivered(self, command_id: str, error: KafkaError | None, _message) -> None:
        """A command that could not be written fails its caller now. (Delivery reports come on the
        event loop while the bus follows, on another thread while `stop` flushes.)"""
        if error is not None:
            self._loop.call_soon_threadsafe(self._not_written, command_id, error)

    def _not_written(self, command_id: str, error: KafkaError) -> None:
        waiting = self._waiting.get(command_id)
        if waiting is not None and not waiting.done():
            waiting.set_exception(CommandTimeout(f"command {command_id} could not be written: {error.str()}"))

    async def _follow(self) -> None:
        """Hand each batch of replies to their callers, and serve the producer's delivery reports."""
        async for records in batches(self._consumer, self._fetching, MOST_PER_BATCH, POLL_WAIT_S, "reading replies"):
            self._producer.poll(0)
            replies = [record for record in records if record.error() is None and record.key() == self._key]
            if replies:
                self._answer(replies)

    def _answer(self, records: list) -> None:
        for record in records:
            try:
                reply = decode(HANDOFF_REPLIES, record.value())
            except MalformedRecord as error:
                log.warning("unreadable reply at offset %s: %s", record.offset(), error)
                sending = asyncio.create_task(dead_letter(
                    self._send_dead_letter, HANDOFF_REPLIES, record.key(), record.value(), record.partition(),
                    record.offset(), str(error), self.replica))
                self._dead_letters.add(sending)
                sending.add_done_callback(self._dead_letters.discard)
                continue
            waiting = self._waiting.get(reply.command_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(reply)

    async def _send_dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                                headers: list[tuple[str, bytes]]) -> None:
        written = self._loop.create_future()

        def delivered(error: KafkaError | None, _message) -> None:
            self._loop.call_soon_threadsafe(_settle, written, error)

        self._producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
        await written


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(error))
