"""Writing a burst and watching what comes out, with as little of the machine as it takes.

The throughput phases share two cores with the services they measure, so the bench's own
work is taken out of their way: a burst's records are built before its clock starts and
written with librdkafka (about a microsecond of Python per record, against tens with a
Python client), and the output topic is read on a thread of its own with librdkafka, whose
fetches are parsed outside the interpreter. Only the decoding that tells which record is
which stays in Python.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

# A record as written: (key, value).
Record = tuple[bytes, bytes]


def write_burst(bootstrap: str, topic: str, records: Iterable[Record]) -> None:
    """Write `records` to `topic` (acks=all) and wait until the broker has every one; raise on a failed write."""
    failures: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "batch.size": 256 * 1024, "queue.buffering.max.messages": 1_000_000,
                         "enable.idempotence": True,
                         # Kafka's own default (murmur2), as the services and Java clients place keys.
                         "partitioner": "murmur2_random"})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60) > 0:
        raise RuntimeError(f"{topic}: records still unwritten after 60 s")
    if failures:
        raise RuntimeError(f"{topic}: {len(failures)} records failed, first: {failures[0]}")


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
