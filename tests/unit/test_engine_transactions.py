"""The engine's transactions. A batch that writes nothing opens no transaction: its input
offsets wait for the next transaction, or for a second at most, and a stopping engine commits
them on its way out. A transactional call that runs out of time never holds the engine: the
batch is aborted, and a transaction that can be neither committed nor aborted makes the
engine start again from what the broker holds."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from common.streams import engine as engine_module
from common.streams.engine import EngineSettings, Sender, StreamEngine
from common.streams.store import ChangelogStore, framed
from common.topics import HANDOFF_EVENTS

TOPIC = HANDOFF_EVENTS.name


class Record:
    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self):
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def headers(self):
        return []


class Producer:
    """Records what the engine asks of its transactional producer."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.failing_commits = 0
        # produce() calls refused because the transaction failed earlier (librdkafka's _STATE).
        self.refusing_produce = 0
        # Calls that run out of time (what librdkafka says when a coordinator never answers).
        self.timing_out: set[str] = set()
        self.clock: list[float] | None = None
        self.timeouts: list[float | None] = []

    def _maybe_time_out(self, call: str, timeout) -> None:
        self.timeouts.append(timeout)
        if call in self.timing_out:
            if self.clock is not None:
                self.clock[0] += timeout
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{call} timed out", retriable=True))

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def produce(self, topic: str, **options) -> None:
        if self.refusing_produce:
            self.refusing_produce -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "Unable to produce message: Local: Erroneous state"))
        self.calls.append(("produce", topic))

    def send_offsets_to_transaction(self, offsets, metadata, timeout=None) -> None:
        self._maybe_time_out("offsets", timeout)
        self.calls.append(("offsets", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets)))

    def commit_transaction(self, timeout=None) -> None:
        self._maybe_time_out("commit", timeout)
        if self.failing_commits:
            self.failing_commits -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "the commit failed", txn_requires_abort=True))
        self.calls.append(("commit",))

    def abort_transaction(self, timeout=None) -> None:
        self._maybe_time_out("abort", timeout)
        self.calls.append(("abort",))

    def transactions(self) -> list[list[tuple]]:
        """The calls grouped by transaction (begin .. commit)."""
        groups: list[list[tuple]] = []
        for call in self.calls:
            if call[0] == "begin":
                groups.append([])
            elif call[0] == "abort":
                groups.pop()
            elif call[0] != "commit":
                groups[-1].append(call)
        return groups


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        # Each changelog partition's end (high watermark), 0 unless set; None: the broker does not answer.
        self.ends: dict[tuple[str, int], int] | None = {}
        self.asked = 0

    def get_watermark_offsets(self, tp, timeout=None) -> tuple[int, int]:
        self.asked += 1
        if self.ends is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no answer", retriable=True))
        return 0, self.ends.get((tp.topic, tp.partition), 0)

    def consumer_group_metadata(self) -> object:
        return object()

    def position(self, partitions):
        return self._offsets(partitions, getattr(self, "positions", {}))

    def committed(self, partitions, timeout=None):
        return self._offsets(partitions, getattr(self, "committed_offsets", {}))

    @staticmethod
    def _offsets(partitions, known: dict[tuple[str, int], int]):
        # librdkafka's OFFSET_INVALID (-1001) where nothing is known
        return [engine_module.TopicPartition(tp.topic, tp.partition, known.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def seek(self, tp) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


class Processor:
    """Writes a store value for records whose value is b"write", nothing for the others."""

    inputs = (HANDOFF_EVENTS,)
    keyed_inputs = ()

    def __init__(self) -> None:
        self.store = ChangelogStore("values", "values-changelog")
        self.stores = (self.store,)

    def process(self, spec, message: bytes, partition: int) -> None:
        if message == b"write":
            self.store[f"key-{partition}"] = framed(partition, b"v")

    def due(self, store, key, partition) -> None:
        raise AssertionError("no timers here")

    def now_us(self, partition: int) -> int:
        return 0

    def before_commit(self) -> None:
        pass

    def assigned(self, partitions) -> None:
        pass

    def revoked(self, partitions) -> None:
        pass

    def rolled_back(self, store, keys) -> None:
        pass


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.setattr(engine_module, "decode", lambda spec, value: value)
    now = [1_000.0]
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: now[0])
    made = StreamEngine(EngineSettings(bootstrap="127.0.0.1:1", group="g", instance="g-1"), Processor(), Sender())
    made._producer, made._consumer = Producer(), Consumer()
    made._owned = frozenset({0, 1})
    made.clock = now
    made._producer.clock = now
    made.recoveries = []
    monkeypatch.setattr(made, "_recover", lambda: made.recoveries.append(made._producer.calls[:]))
    return made


def test_a_batch_that_writes_nothing_opens_no_transaction(engine):
    # when a batch only reads past records
    engine._run_batch([Record(0, 5, b"skip"), Record(1, 9, b"skip")])
    # then nothing is sent to the broker
    assert engine._producer.calls == []


def test_held_back_offsets_go_with_the_next_transaction(engine):
    # given a batch that wrote nothing on partition 1
    engine._run_batch([Record(1, 9, b"skip")])
    # when the next batch writes on partition 0
    engine._run_batch([Record(0, 5, b"write")])
    # then one transaction carries its changelog write and both partitions' offsets
    assert engine._producer.transactions() == [
        [("produce", "values-changelog"), ("offsets", [(TOPIC, 0, 6), (TOPIC, 1, 10)])]
    ]
    # and nothing is held back any more
    engine.clock[0] += 5
    engine._run_batch([])
    assert len(engine._producer.transactions()) == 1


def test_held_back_offsets_are_committed_within_a_second(engine):
    # given a batch that wrote nothing
    engine._run_batch([Record(0, 5, b"skip")])
    engine.clock[0] += 0.5
    engine._run_batch([])
    assert engine._producer.calls == []
    # when a second has passed, an idle pass commits its offsets alone
    engine.clock[0] += 0.5
    engine._run_batch([])
    assert engine._producer.transactions() == [[("offsets", [(TOPIC, 0, 6)])]]


def test_revoked_partitions_offsets_are_dropped(engine):
    # given batches that wrote nothing on both partitions
    engine._run_batch([Record(0, 5, b"skip"), Record(1, 9, b"skip")])
    # when partition 1 goes to another worker
    engine._on_revoke(None, [engine_module.TopicPartition(TOPIC, 1)])
    engine.clock[0] += 2
    engine._run_batch([])
    # then only partition 0's offset is committed (partition 1's records wrote nothing: read again)
    assert engine._producer.transactions() == [[("offsets", [(TOPIC, 0, 6)])]]


def test_a_stopping_engine_commits_what_it_held_back(engine):
    # given a batch that wrote nothing, less than a second ago
    engine._run_batch([Record(0, 5, b"skip")])
    # when the engine stops, its last pass commits the offsets
    engine.stop()
    engine._run_batch([])
    assert engine._producer.transactions() == [[("offsets", [(TOPIC, 0, 6)])]]


def test_an_aborted_batch_leaves_its_offsets_out_of_the_held_back_ones(engine):
    # given a batch that wrote nothing on partition 1
    engine._run_batch([Record(1, 9, b"skip")])
    # when a batch writing on partition 0 fails to commit and is aborted
    engine._producer.failing_commits = 1
    engine._run_batch([Record(0, 5, b"write")])
    assert engine._consumer.seeks == [(TOPIC, 0, 5)]
    # then a later commit carries partition 1's offset only: partition 0's records are read again
    engine.clock[0] += 2
    engine._run_batch([])
    assert engine._producer.transactions() == [[("offsets", [(TOPIC, 1, 10)])]]


def test_offsets_that_cannot_be_sent_in_time_abort_the_batch(engine):
    # given a coordinator that never answers an offsets request
    engine._producer.timing_out = {"offsets"}
    # when a batch that writes is committed
    engine._run_batch([Record(0, 5, b"write")])
    # then the call was bounded, the batch aborted and its records are read again
    assert engine._producer.timeouts == [engine._txn_timeout_s, engine._txn_timeout_s]
    assert engine._producer.transactions() == []
    assert engine._consumer.seeks == [(TOPIC, 0, 5)]
    assert engine.recoveries == []


def test_a_commit_that_never_completes_makes_the_engine_start_again_from_the_broker(engine):
    # given a coordinator that never answers a commit
    engine._producer.timing_out = {"commit"}
    # when a batch that writes is committed
    engine._run_batch([Record(0, 5, b"write")])
    # then the commit was retried for the transaction timeout, then the engine recovered
    # (a new producer under the same transactional id settles the open transaction)
    assert engine.recoveries and engine.recoveries[0][-1] == ("offsets", [(TOPIC, 0, 6)])
    assert set(engine._producer.timeouts) == {engine._txn_timeout_s}
    # and the batch's writes were not taken as committed (recovering rolls them back)
    assert engine._processor.store.writes()
    assert engine._consumer.seeks == []


def test_an_abort_that_cannot_complete_makes_the_engine_start_again_from_the_broker(engine):
    # given a coordinator that answers neither offsets nor an abort
    engine._producer.timing_out = {"offsets", "abort"}
    # when a batch that writes is committed
    engine._run_batch([Record(0, 5, b"write")])
    # then the engine recovered instead of waiting or failing
    assert len(engine.recoveries) == 1
    assert engine._consumer.seeks == []


def test_a_call_that_outlives_its_bound_is_reported_stuck(engine):
    # given a commit that librdkafka does not return from within its bound
    seen: list[float] = []

    def hanging_commit(timeout=None) -> None:
        seen.append(engine.stuck())
        engine.clock[0] += timeout + engine_module.STUCK_MARGIN_S - 0.5
        seen.append(engine.stuck())
        engine.clock[0] += 1.0
        seen.append(engine.stuck())

    engine._producer.commit_transaction = hanging_commit
    # when a batch that writes is committed
    engine._run_batch([Record(0, 5, b"write")])
    # then the engine says it is stuck only past its bound and the margin, and not once the call returned
    assert seen[0] == 0.0 and seen[1] == 0.0
    assert seen[2] == pytest.approx(engine._txn_timeout_s + engine_module.STUCK_MARGIN_S + 0.5)
    assert engine.stuck() == 0.0


def test_a_transaction_that_failed_in_the_background_aborts_the_batch_instead_of_stopping_the_engine(engine):
    # given a transaction that failed in the producer's own thread (e.g. OUT_OF_ORDER_SEQUENCE_NUMBER
    # after a broker restart): librdkafka refuses every produce() until it is aborted
    engine._run_batch([Record(0, 4, b"write")])
    engine._producer.refusing_produce = 1
    # when the next batch's output is refused
    engine._run_batch([Record(0, 5, b"write")])
    # then the batch is aborted and read again, and the engine goes on
    assert ("abort",) in engine._producer.calls
    assert engine._consumer.seeks == [(TOPIC, 0, 5)]
    assert engine.recoveries == []


class OwnWork(Processor):
    """Writes work of its own at the end of a pass, which no input record carries (as the
    handoff owner applies commands its edge hands over)."""

    fenced = True

    def __init__(self) -> None:
        super().__init__()
        self.pending = 0
        self.aborts = 0

    def before_commit(self) -> None:
        if self.pending:
            self.store["own"] = framed(0, b"v")

    def committed(self) -> None:
        self.pending = 0

    def aborted(self) -> None:
        self.aborts += 1


@pytest.fixture
def fenced(engine):
    engine._processor = OwnWork()
    engine._stores = engine._processor.stores
    engine._fenced = True
    engine._aborted = engine._processor.aborted
    engine._committed = engine._processor.committed
    return engine


def test_a_transaction_of_a_fenced_processors_own_work_carries_where_it_reads_its_partitions(fenced):
    # given a member that has read partition 0 up to offset 7 and nothing of partition 1
    fenced._consumer.positions = {(TOPIC, 0): 7}
    # when a pass without records writes work of the processor's own
    fenced._processor.pending = 1
    fenced._run_batch([])
    # then its transaction carries the read position, which only the partitions' owner may commit
    assert fenced._producer.transactions() == [[("produce", "values-changelog"), ("offsets", [(TOPIC, 0, 7)])]]


def test_without_read_positions_the_fence_uses_the_committed_offsets_then_the_partitions_start(fenced):
    # given a member that has read nothing since its assignment
    fenced._consumer.committed_offsets = {(TOPIC, 1): 40}
    fenced._processor.pending = 1
    fenced._run_batch([])
    assert fenced._producer.transactions()[-1][-1] == ("offsets", [(TOPIC, 1, 40)])
    # and in a group that never committed, the first owned partition's start (what it would read from)
    fenced._consumer.committed_offsets = {}
    fenced._processor.pending = 1
    fenced._run_batch([])
    assert fenced._producer.transactions()[-1][-1] == ("offsets", [(TOPIC, 0, 0)])


def test_a_transaction_whose_fence_is_refused_is_aborted_and_the_processor_told(fenced):
    # given a coordinator that refuses the offsets (this member lost its partitions)
    fenced._consumer.positions = {(TOPIC, 0): 7}
    fenced._producer.send_offsets_to_transaction = _refused
    fenced._processor.pending = 1
    fenced._run_batch([])
    # then nothing is committed, the store is rolled back and the processor takes its work up again
    assert fenced._producer.transactions() == []
    assert "own" not in fenced._processor.store
    assert fenced._processor.aborts == 1


def test_records_offsets_are_the_fence_when_a_batch_has_them(fenced):
    fenced._consumer.positions = {(TOPIC, 0): 99}
    fenced._run_batch([Record(1, 9, b"write")])
    assert fenced._producer.transactions() == [[("produce", "values-changelog"), ("offsets", [(TOPIC, 1, 10)])]]


def test_a_processor_that_is_not_fenced_commits_its_own_work_without_offsets(engine):
    # (as sla and notify commit what their timers fire)
    engine._processor.store["timer"] = framed(0, b"v")
    engine._run_batch([])
    assert engine._producer.transactions() == [[("produce", "values-changelog")]]


def _refused(offsets, metadata, timeout=None) -> None:
    raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION, "the group has a newer generation",
                                    txn_requires_abort=True))


class Backlog:
    """A consumer with `waiting` records on partition 0; `consume` takes at most what it is asked."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        self.offset = 0

    def consume(self, most: int, timeout: float) -> list[Record]:
        taken = min(most, self.waiting)
        self.waiting -= taken
        self.offset += taken
        return [Record(0, self.offset - taken + n, b"skip") for n in range(taken)]

    def poll(self, timeout: float):
        return None

    def arrive(self, records: int) -> None:
        self.waiting += records


def test_a_backlog_starts_with_a_small_batch_and_doubles_up_to_the_most(engine):
    # given 10,000 records waiting (engine defaults: first batch 250, at most 2,000)
    engine._consumer = backlog = Backlog(10_000)
    # when the engine polls until they are taken
    sizes = []
    while backlog.waiting:
        sizes.append(len(engine._poll()))
    # then the batches grow from the first batch's size to the most, and take everything
    assert sizes == [250, 500, 1000, 2000, 2000, 2000, 2000, 250]
    # and once caught up, the next burst starts small again
    assert engine._poll() == []
    backlog.arrive(5_000)
    assert len(engine._poll()) == 250
