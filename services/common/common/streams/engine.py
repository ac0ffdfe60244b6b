"""The stream engine: batches in, state and outputs out, committed in one Kafka transaction.

One engine runs one consumer group member. Each pass it takes a batch of records from one
poll, hands each decoded record to the service's processor (a pure-ish handler that reads
and writes its stores and sends outputs), fires the timers that have come due, writes every
key the batch touched once to its store's changelog and commits the outputs, the changelog
writes and the input offsets in one transaction (EOS v2: `send_offsets_to_transaction`
with the consumer's group metadata). Readers use `isolation.level=read_committed`, so a
worker killed at any instant leaves either the whole batch or none of it: the restarted
worker rebuilds its stores from the changelogs as of the last commit and processes the rest
of the input again. A batch that writes nothing (a service reading its own outputs back)
opens no transaction: its offsets go with the next one, or at the latest after a second.

A batch that fails is aborted: the stores roll back to the last commit and the consumer
goes back to the batch's first offsets. A record whose handling raises anything but a
data error is tried `max_attempts` times and then dead-lettered, so one poison record never
stops a partition. Data errors (a record that cannot be decoded or makes no sense) go to the
topic's DLQ at once.

Partitions are assigned with the range assignor, so partition p of every input topic lands
on the same worker, and with static membership (`group.instance.id`), so a worker that
restarts within the session timeout gets its partitions back without a rebalance. The range
assignor rebalances eagerly: every member gives up all its partitions and gets its share
back. A partition given up that way keeps its state until the new assignment; when it comes
back and no one has written to its changelogs meanwhile (their ends have not moved), the
state is current and is kept, so only the partitions that really moved are restored. The
engine runs on a thread of its own; the service's asyncio loop (gRPC, metrics) stays free.

Every call into the transaction is bounded by the transaction timeout. A call that runs
out of time aborts the batch; a transaction that can be neither committed nor aborted in that
time makes the engine start again from what the broker holds. librdkafka does not always
keep that bound: after a broker restart, `send_offsets_to_transaction` can wait without end
for a group coordinator it never looks up again (librdkafka issue 5511, open in 2.16).
`stuck()` says so once a call has run STUCK_MARGIN_S past its bound; the service then exits
(EXIT_STUCK) and its supervisor starts it again, which is as safe as a kill -9.
"""

from __future__ import annotations

import gc
import heapq
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from google.protobuf.message import Message

from common import metrics
from common.codec import MalformedRecord, decode
from common.dlq import dead_letter_headers, error_line
from common.kafkaio import key_partition
from common.rdkafka import QUEUE_BACKOFF_MS, available, partition_ids
from common.streams.store import ChangelogStore, due_of, partition_of
from common.topics import TopicSpec

log = logging.getLogger(__name__)
# Errors in the data, not in the code or the broker: the record goes to the DLQ at once.
DATA_ERRORS = (MalformedRecord, ValueError, LookupError, TypeError)
LAG_INTERVAL_S = 5.0
DEFERRED_OFFSETS_S = 1.0
# A restore reads the changelogs in batches of up to this many records, waiting at most this long.
RESTORE_BATCH = 50_000
RESTORE_WAIT_S = 0.5
# How long a rebalance waits to learn the changelogs' ends (state kept or restored, see _unpark).
CHANGELOG_ENDS_TIMEOUT_S = 2.0
# How long the producer holds a batch's records before it sends them. Nothing is readable
# before the transaction commits, and committing sends at once whatever still waits, so a
# long linger costs no latency: it only makes fewer, fuller produce requests while a batch is
# being processed. With 2 ms, the broker took 43-70 µs of request-handling CPU per created
# leg in an sla burst (about 110 produce requests per transaction); with 100 ms, 26-38 µs.
PRODUCE_LINGER_MS = 100
# How long past its own timeout a transactional call may run before the engine counts as stuck.
STUCK_MARGIN_S = 5.0
# How long a stopping engine waits for its producer to close (see _close_producer).
PRODUCER_CLOSE_S = 10.0
# Python's cyclic collector runs a full collection, which walks every object not frozen, once
# the middle generation has been collected 10 times and a quarter of the heap is new: a
# worker filling its stores meets that again and again (sla paused 6 to 8 times for about
# 100 ms each during a burst of 100,000 legs). At most one full collection per 100 of the
# middle generation's (the quarter rule still holds): about one such pause per burst.
GC_THRESHOLDS = (700, 10, 100)
# The exit code of a service whose engine is stuck (sysexits' EX_TEMPFAIL: start it again).
EXIT_STUCK = 75


@dataclass(frozen=True)
class EngineSettings:
    """How one engine member connects and batches; `client` carries security options."""

    bootstrap: str
    group: str
    instance: str
    max_batch: int = 2_000
    # A backlog's first batch takes at most this many records, each next one up to twice as
    # many as the last, up to max_batch: a burst's first outputs are committed after a few
    # milliseconds of work instead of a whole batch's, and a running backlog still goes in
    # full batches.
    first_batch: int = 250
    # How long a pass waits for records when no timer is due sooner.
    max_wait_s: float = 0.1
    max_attempts: int = 3
    session_timeout_ms: int = 6_000
    # Below the session timeout, so a dead worker's open transaction is aborted by the time
    # its partitions move (a batch commits in well under a second).
    transaction_timeout_ms: int = 5_000
    client: dict[str, Any] = field(default_factory=dict)


class Processor(Protocol):
    """What a service plugs into the engine. `keyed_inputs` are inputs that other systems
    write: the engine checks that each record sits on its key's partition (Kafka's murmur2)
    and forwards one that does not to the right one, where the key's other records are."""

    inputs: tuple[TopicSpec, ...]
    keyed_inputs: tuple[TopicSpec, ...]
    stores: tuple[ChangelogStore, ...]

    def process(self, spec: TopicSpec, message: Message, partition: int) -> None:
        """Handle one decoded record: read and write stores, send outputs."""

    def due(self, store: ChangelogStore, key: str, partition: int) -> None:
        """A value's due instant (its header) has come by `now_us(partition)`."""

    def now_us(self, partition: int) -> int:
        """The processor's clock for `partition`'s timers, in microseconds since the epoch."""

    def before_commit(self) -> None:
        """The batch is done: write whatever else belongs with it (watermarks, gauges)."""

    def assigned(self, partitions: frozenset[int]) -> None:
        """The stores hold `partitions` now (restored from the changelogs)."""

    def revoked(self, partitions: frozenset[int]) -> None:
        """`partitions` went to another worker; their keys are already gone from the stores."""

    def rolled_back(self, store: ChangelogStore, keys: list[str]) -> None:
        """An aborted batch put `keys` of `store` back as they were."""

    # Optional: a processor may also define
    #   committed() -> None: the batch's transaction is committed (start what had to wait for it);
    #   aborted() -> None: the batch's transaction was thrown away (take its own work up again);
    #   wake_s() -> float | None: how soon it wants a pass without new records (work of its own);
    #   fenced: bool = True: it writes work of its own that no input record carries (see
    #     _fence), so every transaction must prove that this member still owns its partitions.


class Abort(Exception):
    """The batch must be aborted and run again (a retriable broker failure or a bad record)."""


class Sender:
    """What a processor sends with; bound to an engine's transaction once it runs."""

    def __init__(self) -> None:
        self._engine: StreamEngine | None = None

    def __call__(self, topic: str, key: str | bytes | None, value: bytes,
                 headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        if self._engine is None:
            raise RuntimeError("the engine is not running")
        self._engine.produce(topic, key, value, headers, partition)


class StreamEngine:
    def __init__(self, settings: EngineSettings, processor: Processor, sender: Sender) -> None:
        self._settings = settings
        self._processor = processor
        self._inputs = {spec.name: spec for spec in processor.inputs}
        self._committed = getattr(processor, "committed", None)
        self._wake_s = getattr(processor, "wake_s", None)
        self._aborted = getattr(processor, "aborted", None)
        self._fenced = getattr(processor, "fenced", False)
        self._stores = processor.stores
        sender._engine = self
        common = {"bootstrap.servers": settings.bootstrap, **settings.client}
        self._consumer_config = {
            **common,
            "group.id": settings.group,
            "group.instance.id": settings.instance,
            "client.id": settings.instance,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": settings.session_timeout_ms,
            # Heartbeats are how a member learns of a rebalance: often, so a survivor takes a
            # dead member's partitions soon after the session timeout.
            "heartbeat.interval.ms": max(settings.session_timeout_ms // 12, 500),
            "max.poll.interval.ms": 300_000,
            "fetch.wait.max.ms": 50,
            "queued.max.messages.kbytes": 32_768,
        }
        self._producer_config = {
            **common,
            "client.id": settings.instance,
            "transactional.id": transactional_id(settings),
            "transaction.timeout.ms": settings.transaction_timeout_ms,
            # Keyed records land where every other client of ours (and Kafka's Java clients)
            # puts them: murmur2, not librdkafka's default CRC32, so topics stay co-partitioned.
            "partitioner": "murmur2_random",
            "linger.ms": PRODUCE_LINGER_MS,
            # A transaction's partitions and offsets cannot join it while the coordinator still
            # writes the previous one's markers (CONCURRENT_TRANSACTIONS): librdkafka asks again
            # after this backoff, 100 ms by default, which was the p90 of send_offsets and so of
            # a command's reply under steady load. (Doubled on each further retry, up to
            # retry.backoff.max.ms, so a broker that is down is not asked any harder.)
            "retry.backoff.ms": 10,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
        self._consumer = Consumer(self._consumer_config)
        self._producer = Producer(self._producer_config)
        self._client = common
        self._in_transaction = False
        self._batch_limit = min(settings.first_batch, settings.max_batch)
        self._txn_timeout_s = settings.transaction_timeout_ms / 1000
        self._call_since: float | None = None  # when the transactional call under way began
        # Input positions of batches that wrote nothing, not yet committed (see _commit).
        self._deferred: dict[tuple[str, int], int] = {}
        self._deferred_since = time.monotonic()
        self._owned: frozenset[int] = frozenset()
        # Partitions given up in an eager rebalance, state still held: for each, its changelogs'
        # ends at that moment and its timers, until the next assignment says what comes back.
        self._parked: dict[int, tuple[dict[str, int], list[tuple[int, str, str]]]] = {}
        # A consumer being closed gives its partitions up for good: nothing to park then.
        self._closing = False
        # Per partition: a min-heap of (due instant in µs, store name, key), lazily deleted.
        self._timers: dict[int, list[tuple[int, str, str]]] = {}
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._last_error: dict[tuple[str, int, int], str] = {}
        self._partition_counts: dict[str, int] = {}
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self._lag_at = 0.0

    # --- the transaction ---------------------------------------------------------------

    def _begin(self) -> None:
        if not self._in_transaction:
            self._producer.begin_transaction()
            self._in_transaction = True

    def _bounded(self, call: Callable[..., None], *args: Any) -> None:
        """A call into the transaction, watched by `stuck()`."""
        self._call_since = time.monotonic()
        try:
            call(*args, self._txn_timeout_s)
        finally:
            self._call_since = None

    def stuck(self) -> float:
        """Seconds the engine has been waiting in one transactional call, once that is
        STUCK_MARGIN_S past the call's own timeout (0.0 until then): librdkafka will not
        return from it, and only a new process will go on."""
        since = self._call_since
        if since is None:
            return 0.0
        waited = time.monotonic() - since
        return waited if waited > self._txn_timeout_s + STUCK_MARGIN_S else 0.0

    def produce(self, topic: str, key: str | bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        """Send one record inside the running batch's transaction."""
        self._begin()
        options: dict[str, Any] = {"key": key, "value": value}
        if headers:
            options["headers"] = headers
        if partition is not None:
            options["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **options)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _commit(self, positions: dict[tuple[str, int], int]) -> None:
        writes = {store: store.writes() for store in self._stores}
        for store, written in writes.items():
            for partition, key, value in written:
                self.produce(store.changelog, key, value, partition=partition)
        # Held back only once the batch is known to write nothing: an aborted batch's
        # positions must not ride with a later transaction.
        offsets = {**self._deferred, **positions}
        if not self._in_transaction and not self._offsets_due(offsets):
            # The batch wrote nothing (records only read past, e.g. a service's own outputs
            # read back): running it again after a crash writes nothing either, so its
            # offsets wait for the next transaction instead of costing one of their own.
            self._deferred = offsets
            if self._committed is not None:
                self._committed()
            return
        if self._in_transaction and not offsets and self._fenced:
            offsets = self._fence()
        if offsets:
            self._begin()
            self._bounded(self._producer.send_offsets_to_transaction,
                          [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()],
                          self._consumer.consumer_group_metadata())
        if self._in_transaction:
            started = time.perf_counter()
            self._commit_transaction()
            metrics.ENGINE_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._deferred = {}
        self._deferred_since = time.monotonic()
        for store, written in writes.items():
            store.commit()
            self._schedule(store, ((key, value) for _, key, value in written if value is not None))
        if self._committed is not None:
            self._committed()

    def _fence(self) -> dict[tuple[str, int], int]:
        """Offsets for a transaction that no input record started (a fenced processor's own
        work): where this member reads its owned partitions now. Committing them changes
        nothing, but the group coordinator takes them only from the current owner of the
        partitions (the consumer's group metadata names its generation): a member that lost its
        partitions without knowing it yet sees its transaction refused and the batch aborted,
        instead of writing beside their new owner. The read positions if it has read there,
        else the committed offsets, else (a group that never committed) the partition's start."""
        owned = [TopicPartition(topic, partition) for topic in self._inputs for partition in sorted(self._owned)]
        if not owned:
            return {}
        for find in (self._consumer.position, self._committed_offsets, self._starts):
            offsets = {(tp.topic, tp.partition): tp.offset for tp in find(owned) if tp.offset >= 0}
            if offsets:
                return offsets
        raise Abort("no offset of the owned partitions is known to fence the transaction with")

    def _committed_offsets(self, owned: list[TopicPartition]) -> list[TopicPartition]:
        return self._consumer.committed(owned, timeout=self._txn_timeout_s)

    def _starts(self, owned: list[TopicPartition]) -> list[TopicPartition]:
        first = owned[0]
        low, _ = self._consumer.get_watermark_offsets(first, timeout=self._txn_timeout_s)
        return [TopicPartition(first.topic, first.partition, low)]

    def _offsets_due(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Offsets held back from batches that wrote nothing are committed at the latest
        after DEFERRED_OFFSETS_S (and on stop), so a group's committed lag stays current."""
        if not offsets:
            return False
        return self._stop.is_set() or time.monotonic() - self._deferred_since >= DEFERRED_OFFSETS_S

    def _commit_transaction(self) -> None:
        """Commit, retrying what may be retried within the transaction timeout; past it the
        outcome is unknown here and only the broker can tell (StuckTransaction)."""
        deadline = time.monotonic() + self._txn_timeout_s
        while True:
            try:
                self._bounded(self._producer.commit_transaction)
                self._in_transaction = False
                return
            except KafkaException as error:
                failure = error.args[0]
                if failure.txn_requires_abort():
                    raise Abort(str(failure)) from error
                if failure.retriable():
                    if time.monotonic() < deadline:
                        log.warning("retrying the commit: %s", failure)
                        continue
                    raise StuckTransaction(f"the commit did not complete: {failure}") from error
                raise

    def _recover(self) -> None:
        """Start again from what the broker holds: both clients closed and made anew. The new
        producer, under the same transactional id, aborts whatever the old one left open;
        the new consumer rejoins under the same static identity, and its assignment restores
        the partitions' state from the changelogs and reads the inputs again from their
        committed offsets. Used when a client cannot go on (fenced, fatal)."""
        metrics.ENGINE_ABORTS.labels(self._settings.group).inc()
        self._in_transaction = False
        self._closing = True
        _quietly(self._consumer.close)
        _close_producer(self._producer)
        self._closing = False
        lost = self._owned
        for store in self._stores:
            store.rollback()
            store.drop(lost | frozenset(self._parked))
        if self._aborted is not None:
            self._aborted()
        self._timers.clear()
        self._parked.clear()
        self._deferred.clear()
        self._owned = frozenset()
        if lost:
            self._processor.revoked(lost)
        metrics.ASSIGNED_PARTITIONS.labels(self._settings.group).set(0)
        self._producer = Producer(self._producer_config)
        self._consumer = Consumer(self._consumer_config)
        self._start_clients()

    def _start_clients(self) -> None:
        self._producer.init_transactions(60)
        self._consumer.subscribe(list(self._inputs), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    def _abort(self, started: dict[tuple[str, int], int]) -> None:
        """Throw the batch away: abort, roll the stores back, read its records again."""
        if self._in_transaction:
            try:
                self._bounded(self._producer.abort_transaction)
            except KafkaException as error:
                # Fenced, fatal or out of time: a new producer under the same transactional
                # id aborts what this one left open.
                log.warning("aborting failed, recovering from the broker: %s", error.args[0])
                self._recover()
                return
            self._in_transaction = False
        metrics.ENGINE_ABORTS.labels(self._settings.group).inc()
        if self._aborted is not None:
            self._aborted()
        for store in self._stores:
            keys = store.rollback()
            self._schedule(store, ((key, store[key]) for key in keys if key in store))
            self._processor.rolled_back(store, keys)
        for (topic, partition), offset in started.items():
            if partition in self._owned:
                self._consumer.seek(TopicPartition(topic, partition, offset))

    # --- timers ------------------------------------------------------------------------

    def _schedule(self, store: ChangelogStore, entries: Iterable[tuple[str, bytes]]) -> None:
        for key, value in entries:
            due = due_of(value)
            if due:
                heapq.heappush(self._timers.setdefault(partition_of(value), []), (due, store.name, key))

    def _fire_due(self) -> None:
        stores = {store.name: store for store in self._stores}
        for partition, heap in self._timers.items():
            if not heap:
                continue
            now = self._processor.now_us(partition)
            due: list[tuple[int, str, str]] = []
            # A bounded number per pass keeps each transaction short; the rest come next pass.
            while heap and heap[0][0] <= now and len(due) < self._settings.max_batch:
                due.append(heapq.heappop(heap))
            for instant, name, key in due:
                store = stores[name]
                value = store.get(key)
                # Lazy deletion: an entry counts only while the value still asks for that instant.
                if value is not None and due_of(value) == instant:
                    self._processor.due(store, key, partition)

    def _wait_s(self) -> float:
        """How long the next poll may wait: until the earliest timer or the processor's own
        wake-up, at most max_wait_s."""
        wait = self._settings.max_wait_s
        wanted = self._wake_s() if self._wake_s is not None else None
        if wanted is not None:
            wait = min(wait, max(wanted, 0.0))
        for partition, heap in self._timers.items():
            if heap:
                wait = min(wait, max((heap[0][0] - self._processor.now_us(partition)) / 1e6, 0.0))
        return wait

    # --- records -----------------------------------------------------------------------

    def _handle(self, record) -> None:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        spec = self._inputs[topic]
        attempt = (topic, partition, offset)
        if spec in self._processor.keyed_inputs and self._misplaced(record):
            return
        try:
            if self._attempts.get(attempt, 0) >= self._settings.max_attempts:
                raise _Poison(self._attempts.pop(attempt), self._last_error.pop(attempt, ""))
            self._processor.process(spec, decode(spec, record.value()), partition)
        except DATA_ERRORS as error:
            reason = str(error) if isinstance(error, MalformedRecord) else f"{type(error).__name__}: {error}"
            self._dead_letter(spec, record, reason)
        except _Poison as poison:
            self._dead_letter(spec, record, f"failed {poison.attempts} times: {poison.reason}")
        except KafkaException:
            raise  # the broker's failure, not the record's
        except Exception as error:
            self._attempts[attempt] = self._attempts.get(attempt, 0) + 1
            self._last_error[attempt] = error_line(error)
            log.exception("handling %s[%s]@%s failed (attempt %s of %s)", topic, partition, offset,
                          self._attempts[attempt], self._settings.max_attempts)
            raise Abort(f"{topic}[{partition}]@{offset}: {error}") from error

    def _misplaced(self, record) -> bool:
        """Forward a record on another partition than its key's; True when it was."""
        key, topic = record.key(), record.topic()
        if not key:
            return False
        if topic not in self._partition_counts:
            self._partition_counts[topic] = len(partition_ids(self._consumer, topic))
        right = key_partition(key, self._partition_counts[topic])
        if right == record.partition():
            return False
        headers = [*(record.headers() or []), ("forwarded.from.partition", str(record.partition()).encode())]
        self.produce(topic, key, record.value(), headers, partition=right)
        metrics.MISPLACED_RECORDS.labels(topic).inc()
        return True

    def _dead_letter(self, spec: TopicSpec, record, reason: str) -> None:
        log.warning("dead-lettering %s[%s]@%s: %s", spec.name, record.partition(), record.offset(), reason)
        headers = dead_letter_headers(spec, record.partition(), record.offset(), reason, self._settings.group)
        self.produce(spec.dlq, record.key(), record.value(), headers)
        metrics.DLQ_RECORDS.labels(spec.name).inc()

    def _run_batch(self, records: list) -> None:
        started: dict[tuple[str, int], int] = {}
        positions: dict[tuple[str, int], int] = {}
        try:
            for record in records:
                if record.error():
                    if record.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(record.error())
                    continue
                where = (record.topic(), record.partition())
                started.setdefault(where, record.offset())
                positions[where] = record.offset() + 1
                self._handle(record)
            self._fire_due()
            self._processor.before_commit()
            self._commit(positions)
        except Abort as reason:
            log.warning("batch aborted, running it again: %s", reason)
            self._abort(started)
            return
        except StuckTransaction as reason:
            log.warning("%s; recovering from the broker", reason)
            self._recover()
            return
        except KafkaException as error:
            failure = error.args[0]
            if _is_fatal(failure):
                # Fenced (the coordinator aborted a transaction that outlived its timeout, e.g.
                # across a broker restart) or worse: what was committed is unknown here, so
                # start again from what the broker holds.
                log.warning("a Kafka client failed for good, recovering from the broker: %s", failure)
                self._recover()
                return
            # _STATE inside a transaction: an earlier abortable error (reported by the producer's
            # own thread, e.g. OUT_OF_ORDER_SEQUENCE_NUMBER after a broker restart) refuses every
            # call until the transaction is aborted.
            unusable = failure.code() == KafkaError._STATE and self._in_transaction
            if not (failure.retriable() or failure.txn_requires_abort() or unusable):
                raise
            log.warning("batch aborted, running it again: %s", failure)
            self._abort(started)
            return
        if records:
            metrics.ENGINE_BATCH_RECORDS.observe(len(records))

    # --- assignment --------------------------------------------------------------------

    def _partitions(self, assignment: list[TopicPartition]) -> frozenset[int]:
        return frozenset(tp.partition for tp in assignment if tp.topic in self._inputs)

    def _on_assign(self, consumer: Consumer, assignment: list[TopicPartition]) -> None:
        gained = self._partitions(assignment) - self._owned
        started = time.perf_counter()
        kept = self._unpark(gained)
        restored = self._restore(gained - kept) if gained - kept else 0
        self._owned |= gained
        self._processor.assigned(self._owned)
        # What the worker holds from now on lives long (the stores, their timers, the caches):
        # moved out of the collector's generations, a full collection no longer walks it all,
        # which with a million clocks held took a pass of hundreds of milliseconds.
        gc.freeze()
        seconds = time.perf_counter() - started
        metrics.ENGINE_RESTORE_SECONDS.labels(self._settings.group).set(seconds)
        metrics.ASSIGNED_PARTITIONS.labels(self._settings.group).set(len(self._owned))
        log.info("assigned partitions %s; %s state records restored in %.1fs%s", sorted(self._owned), restored,
                 seconds, f" (the state of {sorted(kept)} kept: unchanged since the rebalance began)" if kept else "")
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, assignment: list[TopicPartition]) -> None:
        """An eager rebalance: the partitions are given up, their state is parked (see _unpark)."""
        self._give_up(self._partitions(assignment) & self._owned, park=not self._closing)

    def _on_lost(self, consumer: Consumer, assignment: list[TopicPartition]) -> None:
        """The group went on without this member: another may hold the partitions already."""
        self._give_up(self._partitions(assignment) & self._owned, park=False)

    def _give_up(self, lost: frozenset[int], park: bool) -> None:
        if not lost:
            return
        ends = self._changelog_ends(lost) if park else None
        if ends is None:
            for store in self._stores:
                store.drop(lost)
            for partition in lost:
                self._timers.pop(partition, None)
        else:
            for partition in lost:
                self._parked[partition] = (ends[partition], self._timers.pop(partition, []))
        # Their records wrote nothing: the next owner may read them again.
        self._deferred = {where: offset for where, offset in self._deferred.items() if where[1] not in lost}
        self._owned -= lost
        metrics.ASSIGNED_PARTITIONS.labels(self._settings.group).set(len(self._owned))
        self._processor.revoked(lost)
        log.info("revoked partitions %s", sorted(lost))

    def _unpark(self, gained: frozenset[int]) -> frozenset[int]:
        """Of the parked partitions, those `gained` again whose changelogs no one has written
        since they were parked: their state is current and stays. The others are dropped."""
        parked, self._parked = self._parked, {}
        candidates = frozenset(parked) & gained
        ends = self._changelog_ends(candidates) if candidates else {}
        kept = frozenset(p for p in candidates if ends is not None and ends[p] == parked[p][0])
        stale = frozenset(parked) - kept
        if stale:
            for store in self._stores:
                store.drop(stale)
        for partition in kept:
            self._timers[partition] = parked[partition][1]
        return kept

    def _changelog_ends(self, partitions: frozenset[int]) -> dict[int, dict[str, int]] | None:
        """Each partition's changelog ends (high watermarks), by changelog; None when the
        broker cannot say in time (the state is then treated as stale)."""
        try:
            return {partition: {store.changelog: self._consumer.get_watermark_offsets(
                        TopicPartition(store.changelog, partition), timeout=CHANGELOG_ENDS_TIMEOUT_S)[1]
                        for store in self._stores}
                    for partition in partitions}
        except KafkaException as error:
            log.warning("the changelogs' ends are unknown (%s): the state of %s is restored, not kept",
                        error, sorted(partitions))
            return None

    def _restore(self, partitions: frozenset[int]) -> int:
        """Read the stores' changelogs of `partitions` up to their committed end."""
        reader = Consumer({
            **self._client, "group.id": f"{self._settings.group}-restore", "enable.auto.commit": False,
            "isolation.level": "read_committed", "enable.partition.eof": True, "auto.offset.reset": "earliest",
            # A partition's end is known from a fetch that finds nothing more, which the broker
            # holds for this long first (librdkafka's default: 500 ms).
            "fetch.wait.max.ms": 10,
            # A restore takes records faster than they are fetched (see QUEUE_BACKOFF_MS).
            "fetch.queue.backoff.ms": QUEUE_BACKOFF_MS,
        })
        by_topic = {store.changelog: store for store in self._stores}
        wanted = [TopicPartition(topic, p, OFFSET_BEGINNING) for topic in by_topic for p in sorted(partitions)]
        pending = {(tp.topic, tp.partition) for tp in wanted if _holds_records(reader, tp)}
        restored = 0
        try:
            reader.assign(wanted)
            while pending and not self._stop.is_set():
                for record in available(reader, RESTORE_BATCH, RESTORE_WAIT_S):
                    if record.error():
                        if record.error().code() == KafkaError._PARTITION_EOF:
                            pending.discard((record.topic(), record.partition()))
                            continue
                        raise KafkaException(record.error())
                    store = by_topic[record.topic()]
                    key, value = record.key().decode(), record.value()
                    store.restore(key, value)
                    restored += 1
        finally:
            reader.close()
        for store in self._stores:
            self._schedule(store, ((key, value) for key, value in store.items() if partition_of(value) in partitions))
        return restored

    # --- running -----------------------------------------------------------------------

    def run(self) -> None:
        """Process until `stop()`; a failure is kept in `failure` and ends the run."""
        try:
            gc.set_threshold(*GC_THRESHOLDS)
            self._start_clients()
            while not self._stop.is_set():
                try:
                    records = self._poll()
                except KafkaException as error:
                    if not _is_fatal(error.args[0]):
                        raise
                    log.warning("the consumer failed for good, recovering from the broker: %s", error.args[0])
                    self._recover()
                    continue
                self._run_batch(records)
                self._measure_lag()
            if self._deferred:
                self._run_batch([])  # a last pass commits the offsets held back
        except BaseException as error:  # the service stops on it: a supervisor restarts the process
            self.failure = error
            log.error("the stream engine failed: %s", "".join(traceback.format_exception(error)).strip())
        finally:
            self._close()

    def _poll(self) -> list:
        """The next batch (see available), at most twice the last one (EngineSettings.first_batch)."""
        settings = self._settings
        records = available(self._consumer, self._batch_limit, self._wait_s())
        self._batch_limit = min(settings.max_batch, max(settings.first_batch, 2 * len(records)))
        return records

    def _close(self) -> None:
        try:
            if self._in_transaction:
                self._bounded(self._producer.abort_transaction)
            self._producer.flush(10)
        except KafkaException as error:
            log.warning("closing the producer: %s", error)
        finally:
            self._closing = True
            self._consumer.close()
            _close_producer(self._producer)

    def stop(self) -> None:
        """Finish the batch under way (it commits), then leave."""
        self._stop.set()

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL_S:
            return
        self._lag_at = now
        behind: dict[str, int] = {topic: 0 for topic in self._inputs}
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    behind[tp.topic] += max(high - tp.offset, 0)
        except KafkaException:
            return
        for topic, records in behind.items():
            metrics.CONSUMER_LAG.labels(self._settings.group, topic).set(records)
        metrics.ENGINE_TIMERS.labels(self._settings.group).set(sum(len(heap) for heap in self._timers.values()))


class StuckTransaction(Exception):
    """A commit that neither completed nor failed within the transaction timeout."""


class _Poison(Exception):
    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__(reason)
        self.attempts = attempts
        self.reason = reason


def _is_fatal(failure: KafkaError) -> bool:
    """A producer that cannot go on (fenced: the coordinator aborted its transaction and moved on)."""
    return failure.fatal() or failure.code() in (KafkaError._FATAL, KafkaError._FENCED)


def _quietly(close) -> None:
    """Close a client that may already be broken; what it says on the way out is only logged."""
    try:
        close()
    except (KafkaException, RuntimeError) as error:
        log.warning("closing a failed client: %s", error)


def _close_producer(producer: Producer) -> None:
    """Close a producer now, so its threads and connections end with the engine rather than
    when the collector finds it. What it still holds after the flush (only when the broker is
    gone) could not be delivered: it is purged first, since librdkafka's close waits for every
    queued record. Bounded: a close that does not return is left to the process's exit."""

    def close() -> None:
        _quietly(producer.purge)
        _quietly(producer.close)

    closer = threading.Thread(target=close, name="producer-close", daemon=True)
    closer.start()
    closer.join(PRODUCER_CLOSE_S)
    if closer.is_alive():
        log.warning("the producer did not close within %s s; it ends with the process", PRODUCER_CLOSE_S)


def transactional_id(settings: EngineSettings) -> str:
    """The worker's transactional id: its group and instance (the ACLs grant the group's prefix)."""
    return f"{settings.group}-{settings.instance}"


def start_engine(engine: StreamEngine, name: str) -> threading.Thread:
    """Run `engine` on a thread of its own."""
    thread = threading.Thread(target=engine.run, name=name, daemon=True)
    thread.start()
    return thread


def _holds_records(reader: Consumer, tp: TopicPartition) -> bool:
    low, high = reader.get_watermark_offsets(tp, timeout=30)
    return high > low
