"""Tailing topics from the beginning into an in-memory read model, on every replica.

A read model assigns itself every partition of its topics (no consumer group: each
replica reads everything), seeks to the beginning and follows in a background task.
`caught_up()` waits until everything written before the call has been applied, which
gives a read after a write (on any replica) that write.

A transaction's commit becomes readable partition by partition: the coordinator writes its
commit marker on each partition on its own. A reply read on one partition therefore can
come before the events of the same transaction can be read on another, and the committed
end of that partition (its last stable offset) does not count them yet. `caught_up(
include_open=True)` waits for the end of what is written, whether committed or not (the
high watermark): the transactions under way at the call have ended, committed or aborted,
and what they committed is applied.

A feed of a topic that no consumer group reads is the only reader that can dead-letter its
bad records; given `dead_letter`, it sends each one to the topic's DLQ once: on start it
reads which records the DLQ already holds (by their dlq.* headers), since every start sees
every record again. Two replicas starting at the same instant may both send one; the
headers name the source record, so the copies are recognisable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from aiokafka.errors import KafkaError
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from google.protobuf.message import Message

from common.codec import MalformedRecord, decode
from common.dlq import DeadLetterSend, dead_letter, dead_lettered, error_line
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.metrics import READ_MODEL_FAILURES
from common.rdkafka import batches, follower_config, partition_ids, start_or_close
from common.topics import TopicSpec

log = logging.getLogger(__name__)


class Raw(NamedTuple):
    """Where a record was read, and its key."""

    partition: int
    offset: int
    key: bytes | None


# Decoded record of one of the feed's topics -> the read model.
Apply = Callable[[TopicSpec, Message], None]
# After `apply` took it: where the record was read (a Raw) and the decoded message.
Observe = Callable[[Raw, Message], None]
# A fetch returns as soon as anything is readable, and otherwise waits this long at the
# broker: an idle feed asks twice a second, and a record is applied as soon as it is readable.
FETCH_WAIT_MS = 500
# The feed's thread waits this long for the first record of a batch, then hands what it has to
# the event loop; it is also the longest `stop` waits for the thread.
POLL_WAIT_S = 0.25
MOST_PER_BATCH = 5000
# Timestamps that ListOffsets reads as "the end" and "the start" of a partition.
LATEST, EARLIEST = -1, -2
END_QUERY_TIMEOUT_S = 10.0


class TopicFeed:
    """Tails `topics` from the beginning, handing each decoded record to `apply`.

    A record that cannot be decoded, or that `apply` refuses with a ValueError or
    KeyError, is logged and skipped; with `dead_letter` it also goes to its topic's DLQ
    (once), otherwise the topic's consumer group is left to dead-letter it. A record on
    which `apply` fails in any other way (a bug) is skipped the same way, with the error
    and where it was raised as its reason: applying it again in memory would fail again,
    and the model must not stop following. Such failures count in
    `handoff_read_model_failures_total`.

    The records are fetched by librdkafka (confluent-kafka) on its own threads and handed
    over in batches by a thread of the feed; they are applied on the event loop. An idle
    feed costs the process no Python: its fetches wait at the broker (FETCH_WAIT_MS) and
    return the moment a record is readable.
    """

    def __init__(self, bootstrap: str, topics: Iterable[TopicSpec], apply: Apply, name: str = "feed",
                 observe: Observe | None = None, security: KafkaSecurity = PLAINTEXT,
                 dead_letter: DeadLetterSend | None = None) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topics = {spec.name: spec for spec in topics}
        self._apply = apply
        self._observe = observe
        self._name = name
        self._consumer: Consumer | None = None
        # Consumers that only ask where the partitions end, by isolation level; made when first
        # needed. Not the follower: a request waits behind the fetch in flight on its connection.
        self._end_readers: dict[str, Consumer] = {}
        self._end_readers_made = asyncio.Lock()
        # The follower's thread, and one for the end readers' questions (each blocks until the
        # broker answers).
        self._fetching = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-fetch")
        self._asking = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-ends")
        self._partitions: list[TopicPartition] = []
        self._read_up_to: dict[tuple[str, int], int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._dead_letter = dead_letter
        self._dead_lettered: set[tuple[str, int, int]] = set()
        for topic in self._topics:  # a series at 0 from the start, for dashboards and rates
            READ_MODEL_FAILURES.labels(name, topic)

    def _config(self, isolation_level: str) -> dict[str, object]:
        return follower_config(self._bootstrap, self._name, isolation_level, FETCH_WAIT_MS,
                               **{"auto.offset.reset": "earliest"}, **self._security.librdkafka())

    async def start(self) -> None:
        """Read every partition up to its current end, then keep following in the background. A
        start that fails (MissingTopic, say) leaves nothing open."""
        await start_or_close(self._start, self.stop)

    async def _start(self) -> None:
        self._consumer = Consumer(self._config("read_committed"))
        for topic in self._topics:
            ids = await asyncio.to_thread(partition_ids, self._consumer, topic)
            self._partitions += [TopicPartition(topic, p) for p in ids]
        if self._dead_letter is not None:
            self._dead_lettered = await dead_lettered(self._bootstrap, self._topics.values(), self._security)
        # A partition holds nothing before its first offset: the feed has read up to it (librdkafka
        # tells no position until it has fetched a record or a transaction marker).
        starts = await self._offsets("read_committed", EARLIEST)
        self._read_up_to = dict(starts)
        self._consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in self._partitions])
        self._task = asyncio.create_task(self._follow(), name=self._name)
        await self.caught_up(timeout=None)

    async def stop(self) -> None:
        """Stop following and close the consumers; safe before `start` and twice."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # The follower's thread may still wait for a batch: the consumer closes after it.
        await asyncio.to_thread(self._fetching.shutdown)
        await asyncio.to_thread(self._asking.shutdown)
        for client in (self._consumer, *self._end_readers.values()):
            if client is not None:
                await asyncio.to_thread(client.close)
        self._consumer = None
        self._end_readers = {}

    async def caught_up(self, timeout: float | None = 5.0, include_open: bool = False) -> None:
        """Wait until every record committed before this call has been applied (TimeoutError
        after `timeout`); with `include_open`, also those of the transactions under way at the
        call, once they have committed (see the module's docstring)."""
        if self._task is None:
            raise RuntimeError(f"{self._name} is not started")
        ends = await self._offsets("read_uncommitted" if include_open else "read_committed", LATEST)

        def done() -> bool:
            return all(self._read_up_to.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(done), timeout)

    async def _offsets(self, isolation_level: str, at: int) -> dict[tuple[str, int], int]:
        """Where every partition ends (LATEST: the last stable offsets with read_committed, the
        high watermarks with read_uncommitted) or starts (EARLIEST)."""
        reader = await self._end_reader(isolation_level)
        query = [TopicPartition(tp.topic, tp.partition, at) for tp in self._partitions]
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._asking, reader.offsets_for_times, query, END_QUERY_TIMEOUT_S)
        except KafkaException as error:
            where = "end" if at == LATEST else "start"
            raise TimeoutError(f"{self._name}: the broker did not tell where the partitions {where}: {error}") from error
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    async def _end_reader(self, isolation_level: str) -> Consumer:
        """A consumer that is told where the partitions end: the last stable offsets
        (read_committed) or the high watermarks (read_uncommitted). It has a connection of its
        own: asked on the follower's, the question would wait for the follower's fetch in flight
        (up to its fetch wait), the broker answering one request of a connection at a time."""
        async with self._end_readers_made:
            if isolation_level not in self._end_readers:
                self._end_readers[isolation_level] = Consumer(self._config(isolation_level))
        return self._end_readers[isolation_level]

    async def _follow(self) -> None:
        consumer = self._consumer
        async for records in batches(consumer, self._fetching, MOST_PER_BATCH, POLL_WAIT_S, self._name):
            for record in records:
                if record.error() is not None:
                    log.warning("%s: %s", self._name, record.error())
                    continue
                if (reason := self._apply_record(record)) is not None:
                    await self._send_dead_letter(record, reason)
            # Everything the consumer has handed out is applied, so its positions are ours
            # (librdkafka's position also moves past transaction markers and aborted records).
            for tp in consumer.position(self._partitions):
                if tp.offset >= 0:
                    self._read_up_to[tp.topic, tp.partition] = tp.offset
            async with self._progress:
                self._progress.notify_all()

    def _apply_record(self, record) -> str | None:
        """Apply one record; the reason it cannot be, if so."""
        topic = record.topic()
        spec = self._topics[topic]
        try:
            message = decode(spec, record.value())
            self._apply(spec, message)
        except (MalformedRecord, ValueError, KeyError) as error:
            reason = str(error) or type(error).__name__
            log.warning("%s: skipping unreadable %s record at offset %s: %s", self._name, topic, record.offset(), error)
        except Exception as error:  # a bug meeting this record: the model moves past it, loudly
            reason = error_line(error)
            log.exception("%s read model: skipping %s[%s] record at offset %s that failed to apply", self._name, topic,
                          record.partition(), record.offset())
            READ_MODEL_FAILURES.labels(self._name, topic).inc()
        else:
            if self._observe is not None:
                self._observe(Raw(record.partition(), record.offset(), record.key()), message)
            return None
        return reason

    async def _send_dead_letter(self, record, reason: str) -> None:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        source = (topic, partition, offset)
        if self._dead_letter is None or source in self._dead_lettered:
            return
        try:
            await dead_letter(self._dead_letter, self._topics[topic], record.key(), record.value(), partition,
                              offset, reason, self._name)
        except KafkaError as error:  # the next start sends it, as it is not in the DLQ yet
            log.warning("%s: could not dead-letter %s record at offset %s: %s", self._name, topic, offset, error)
            return
        self._dead_lettered.add(source)
