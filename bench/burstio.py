"""Writing a burst and watching what comes out, with as little of the machine as it takes.

The throughput phases share two cores with the services they measure, so the bench's own
work is taken out of their way: a burst's records are built, and its producer connected,
before its clock starts; the records are written with librdkafka (about a microsecond of
Python per record, against tens with a Python client); the output topic is read on a thread
of its own with librdkafka, whose fetches are parsed outside the interpreter. Only the
decoding that tells which record is which stays in Python.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

# A record as written: (key, value).
Record = tuple[bytes, bytes]


class BurstWriter:
    """Writes a burst to `topic` (acks=all, idempotent) with a producer made ready before the
    clock starts: connected, the topic's metadata known and its producer id given, so the
    time a burst takes is the writing, not the client's start-up."""

    SETTLE_S = 0.2  # after the metadata: the producer id is asked for once a broker is connected

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._failures: list[str] = []
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                                   "batch.size": 256 * 1024, "queue.buffering.max.messages": 1_000_000,
                                   "enable.idempotence": True,
                                   # Kafka's own default (murmur2), as the services and Java clients place keys.
                                   "partitioner": "murmur2_random"})
        self._producer.list_topics(topic, timeout=30)
        time.sleep(self.SETTLE_S)

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def write(self, records: Iterable[Record]) -> None:
        """Write `records` and wait until the broker has every one; raise on a failed write."""
        producer = self._producer
        for key, value in records:
            while True:
                try:
                    producer.produce(self._topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60) > 0:
            raise RuntimeError(f"{self._topic}: records still unwritten after 60 s")
        if self._failures:
            raise RuntimeError(f"{self._topic}: {len(self._failures)} records failed, first: {self._failures[0]}")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of `topic`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    finally:
        consumer.close()


class Watcher:
    """Reads `topic` from `offsets` on a thread, handing each value and the instant its fetch
    arrived (time.perf_counter) to `handle`, until `done()` says so or `deadline` passes."""

    def __init__(self, bootstrap: str, topic: str, offsets: dict[int, int], handle: Callable[[bytes, float], None],
                 done: Callable[[], bool], deadline: float) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 20})
        self._consumer.list_topics(topic, timeout=30)  # connected before the clock starts
        self._consumer.assign([TopicPartition(topic, p, offset) for p, offset in offsets.items()])
        self._handle, self._done, self._deadline = handle, done, deadline
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done() and time.perf_counter() < self._deadline:
                records = self._consumer.consume(5000, 0.1)
                now = time.perf_counter()
                for record in records:
                    if record.error():
                        raise KafkaException(record.error())
                    self._handle(record.value(), now)
        except BaseException as error:  # reported by join(), in the bench's own thread
            self.failure = error
        finally:
            self._consumer.close()

    def join(self) -> None:
        """Wait for the watch to end; raise what ended it early."""
        self._thread.join()
        if self.failure is not None:
            raise self.failure
