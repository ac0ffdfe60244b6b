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

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import Message

from common.codec import MalformedRecord, decode
from common.dlq import DeadLetterSend, dead_letter, dead_lettered, error_line
from common.kafkaio import topic_partitions
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.metrics import READ_MODEL_FAILURES
from common.topics import TopicSpec

log = logging.getLogger(__name__)
# Decoded record of one of the feed's topics -> the read model.
Apply = Callable[[TopicSpec, Message], None]
# After `apply` took it: the raw record (partition, offset, key) and the decoded message.
Observe = Callable[[object, Message], None]
FETCH_WAIT_MS = 10
FETCH_MIN_BYTES = 32 * 1024
# A quiet topic's feed (written now and then, by people): a fetch returns as soon as anything
# is readable and otherwise waits this long, instead of asking again every FETCH_WAIT_MS.
QUIET_FETCH_WAIT_MS = 500


class TopicFeed:
    """Tails `topics` from the beginning, handing each decoded record to `apply`.

    A record that cannot be decoded, or that `apply` refuses with a ValueError or
    KeyError, is logged and skipped; with `dead_letter` it also goes to its topic's DLQ
    (once), otherwise the topic's consumer group is left to dead-letter it. A record on
    which `apply` fails in any other way (a bug) is skipped the same way, with the error
    and where it was raised as its reason: applying it again in memory would fail again,
    and the model must not stop following. Such failures count in
    `handoff_read_model_failures_total`.

    `quiet`: the topics are written seldom (silences, say), so fetches are not made to
    gather a burst's records (FETCH_MIN_BYTES), and an idle feed asks the broker twice a
    second, not a hundred times.
    """

    def __init__(self, bootstrap: str, topics: Iterable[TopicSpec], apply: Apply, name: str = "feed",
                 observe: Observe | None = None, security: KafkaSecurity = PLAINTEXT,
                 dead_letter: DeadLetterSend | None = None, quiet: bool = False) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topics = {spec.name: spec for spec in topics}
        self._apply = apply
        self._observe = observe
        self._name = name
        self._consumer: AIOKafkaConsumer | None = None
        # Consumers that only ask where the partitions end, by isolation level; made when first
        # needed. Not the follower: a request waits behind the fetch in flight on its connection.
        self._end_readers: dict[str, AIOKafkaConsumer] = {}
        self._end_readers_made = asyncio.Lock()
        self._partitions: list[TopicPartition] = []
        self._read_up_to: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._dead_letter = dead_letter
        self._dead_lettered: set[tuple[str, int, int]] = set()
        self._fetch = {"fetch_max_wait_ms": QUIET_FETCH_WAIT_MS, "fetch_min_bytes": 1} if quiet else \
            {"fetch_max_wait_ms": FETCH_WAIT_MS, "fetch_min_bytes": FETCH_MIN_BYTES}
        for topic in self._topics:  # a series at 0 from the start, for dashboards and rates
            READ_MODEL_FAILURES.labels(name, topic)

    async def start(self) -> None:
        """Read every partition up to its current end, then keep following in the background."""
        for topic in self._topics:
            self._partitions += [TopicPartition(topic, p) for p in await topic_partitions(self._bootstrap, topic, self._security)]
        if self._dead_letter is not None:
            self._dead_lettered = await dead_lettered(self._bootstrap, self._topics.values(), self._security)
        # Kafka clients bind to the running loop, so they are made here, not in __init__.
        # A busy feed's fetch waits up to FETCH_WAIT_MS for FETCH_MIN_BYTES: under a burst each
        # brings many records, not one or two per request (the requests, not the records, were
        # most of a feed's CPU); between bursts, a record waits that long more.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", **self._fetch, **self._security.aiokafka(),
        )
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._follow(), name=self._name)
        await self.caught_up(timeout=None)

    async def stop(self) -> None:
        """Stop following and close the consumer; safe before `start` and twice."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for client in (self._consumer, *self._end_readers.values()):
            if client:
                await client.stop()
        self._consumer = None
        self._end_readers = {}

    async def caught_up(self, timeout: float | None = 5.0, include_open: bool = False) -> None:
        """Wait until every record committed before this call has been applied (TimeoutError
        after `timeout`); with `include_open`, also those of the transactions under way at the
        call, once they have committed (see the module's docstring)."""
        if self._consumer is None:
            raise RuntimeError(f"{self._name} is not started")
        reader = await self._end_reader("read_uncommitted" if include_open else "read_committed")
        ends = await reader.end_offsets(self._partitions)

        def done() -> bool:
            return all(self._read_up_to.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(done), timeout)

    async def _end_reader(self, isolation_level: str) -> AIOKafkaConsumer:
        """A consumer that is told where the partitions end: the last stable offsets
        (read_committed) or the high watermarks (read_uncommitted). It has a connection of its
        own: asked on the follower's, the question would wait for the follower's fetch in flight
        (up to its fetch wait), the broker answering one request of a connection at a time."""
        async with self._end_readers_made:
            if isolation_level not in self._end_readers:
                reader = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                          isolation_level=isolation_level, **self._security.aiokafka())
                await reader.start()
                self._end_readers[isolation_level] = reader
        return self._end_readers[isolation_level]

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if (reason := self._apply_record(tp.topic, record)) is not None:
                        await self._send_dead_letter(tp.topic, record, reason)
            # Everything the consumer has handed out is applied, so its positions are ours.
            for tp in self._partitions:
                self._read_up_to[tp] = await self._consumer.position(tp)
            async with self._progress:
                self._progress.notify_all()

    def _apply_record(self, topic: str, record) -> str | None:
        """Apply one record; the reason it cannot be, if so."""
        spec = self._topics[topic]
        try:
            message = decode(spec, record.value)
            self._apply(spec, message)
        except (MalformedRecord, ValueError, KeyError) as error:
            reason = str(error) or type(error).__name__
            log.warning("%s: skipping unreadable %s record at offset %s: %s", self._name, topic, record.offset, error)
        except Exception as error:  # a bug meeting this record: the model moves past it, loudly
            reason = error_line(error)
            log.exception("%s read model: skipping %s[%s] record at offset %s that failed to apply", self._name, topic,
                          record.partition, record.offset)
            READ_MODEL_FAILURES.labels(self._name, topic).inc()
        else:
            if self._observe is not None:
                self._observe(record, message)
            return None
        return reason

    async def _send_dead_letter(self, topic: str, record, reason: str) -> None:
        source = (topic, record.partition, record.offset)
        if self._dead_letter is None or source in self._dead_lettered:
            return
        try:
            await dead_letter(self._dead_letter, self._topics[topic], record.key, record.value, record.partition,
                              record.offset, reason, self._name)
        except KafkaError as error:  # the next start sends it, as it is not in the DLQ yet
            log.warning("%s: could not dead-letter %s record at offset %s: %s", self._name, topic, record.offset, error)
            return
        self._dead_lettered.add(source)
