"""(i) One minimal pipeline built four ways, to choose the stream engine by measurement.

The pipeline: consume a HandoffEvent (created), decode it, count events per customer_ref
with the state change on a compacted changelog topic, produce one output record. Built as
(a) a faust agent, per record (table, at_least_once); (b) faust with `Stream.take`
batches, whose table uses the producer's partitioner (use_partitioner=True), because
faust refuses a table write outside a stream's per-event context (faust-streaming#497);
the batch's counts are written to the table once per key; (c) a batched aiokafka loop
(getmany, counts in a dict, one changelog write per key per batch, outputs, offsets
committed once every send is acknowledged); (d) a transactional confluent-kafka loop (the
same batch, then send_offsets_to_transaction and commit_transaction; read_committed).

Each runs as a child process (`python -m bench.pipelines VARIANT ...`, started by
bench.pipelinebench) and reports, as JSON lines in a status file, its first record, its
progress every second and, once the broker holds the last output, its figures: the time
since the first record and the CPU the process spent meanwhile (all threads, from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from handoff.v1 import handoff_events_pb2

from bench.cpu import cpu_seconds
from bench.rawkafka import copy_loop
from common.codec import decode
from common.topics import HANDOFF_EVENTS

PARTITIONS = 4
BATCH = 2_000  # records per poll, as the stream engine's default (EngineSettings.max_batch)
VARIANTS = ("faust_agent", "faust_take", "aiokafka_batch", "confluent_transactions")


class Progress:
    """The child's reports, JSON lines in a status file: first record, every second, done."""

    def __init__(self, path: Path, target: int, time_limit: float) -> None:
        self._file = open(path, "a", buffering=1)
        self._target, self._time_limit = target, time_limit
        self.on_done: Callable[[], None] = lambda: None
        self.outputs = 0
        self._started: tuple[float, float] | None = None
        self._reported = 0.0
        self._done = False

    def started(self) -> None:
        """A record is being processed: the clock starts at the first."""
        if self._started is None:
            self._started = (time.perf_counter(), cpu_seconds(os.getpid()))
            self._write("first", time=time.time())

    def acknowledged(self, count: int) -> None:
        """`count` more outputs are on the broker (committed, in a transaction)."""
        self.outputs += count
        now = time.perf_counter()
        if self.outputs >= self._target and not self._done:
            self._done = True
            self._write("done", **self._figures(now), complete=True)
            self.on_done()
        elif now - self._reported >= 1.0:
            self._reported = now
            self._write("progress", **self._figures(now))

    def finished(self) -> bool:
        """Every output is on the broker, or the time limit has passed."""
        if self.outputs >= self._target:
            return True
        return self._started is not None and time.perf_counter() - self._started[0] > self._time_limit

    def report(self, records: int, seconds: float, cpu: float) -> None:
        """Figures measured elsewhere (the copy loop times itself)."""
        self._write("done", outputs=records, seconds=round(seconds, 3), cpu_seconds=round(cpu, 2),
                    records_per_s=round(records / seconds), us_cpu_per_record=round(cpu / records * 1e6, 1),
                    complete=records >= self._target)

    def _figures(self, now: float) -> dict:
        seconds, cpu = now - self._started[0], cpu_seconds(os.getpid()) - self._started[1]
        return {"outputs": self.outputs, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 2),
                "records_per_s": round(self.outputs / seconds) if seconds else None,
                "us_cpu_per_record": round(cpu / self.outputs * 1e6, 1) if self.outputs else None}

    def _write(self, kind: str, **entry) -> None:
        self._file.write(json.dumps({"kind": kind, **entry}) + "\n")


def output_value(event: handoff_events_pb2.HandoffEvent, count: int) -> bytes:
    """The one output per input: the event's id and the customer's count after it."""
    return f"{event.envelope.event_id}:{count}".encode()


def run_copy(args: argparse.Namespace, progress: Progress) -> None:
    """The raw limit: bench.rawkafka's copy loop, in a process of its own like the pipelines."""
    progress.started()
    result = asyncio.run(copy_loop(args.bootstrap, args.input, args.output, args.records, args.time_limit))
    progress.report(result["records"], result["seconds"], result["cpu_seconds"])


def run_faust(args: argparse.Namespace, progress: Progress, take: bool) -> None:
    """(a) an agent per record, or (b) `Stream.take` batches, with a faust table."""
    import faust

    app = faust.App(args.group, broker=f"kafka://{args.bootstrap}", store="memory://",
                    datadir=str(Path(args.workdir) / args.group), processing_guarantee="at_least_once",
                    topic_partitions=PARTITIONS, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
                    web_enabled=False, autodiscover=False, producer_acks=-1,
                    producer_linger=0.005)  # the loops' linger; the services run with faust's 0
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": PARTITIONS}
    source, sink = app.topic(args.input, **raw), app.topic(args.output, **raw)
    # The changelog is f"{app id}-counts-changelog", which the bench created (compacted).
    counts = app.Table("counts", partitions=PARTITIONS, use_partitioner=take)

    def delivered(_future) -> None:
        progress.acknowledged(1)

    async def per_record(stream):
        async for key, value in stream.items():
            progress.started()
            event = decode(HANDOFF_EVENTS, value)
            count = counts[event.customer_ref] = counts.get(event.customer_ref, 0) + 1
            await sink.send(key=key, value=output_value(event, count), callback=delivered)

    async def batched(stream):
        async for values in stream.take(BATCH, within=0.1):
            progress.started()
            batch: dict[str, int] = {}
            for value in values:
                event = decode(HANDOFF_EVENTS, value)
                count = batch[event.customer_ref] = batch.get(event.customer_ref, counts.get(event.customer_ref, 0)) + 1
                await sink.send(key=event.customer_ref.encode(), value=output_value(event, count), callback=delivered)
            for customer, count in batch.items():
                counts[customer] = count  # needs use_partitioner: take gives no per-event context

    app.agent(source, name="count")(batched if take else per_record)
    # Done: stop the worker as SIGTERM would, so the process leaves on its own.
    progress.on_done = lambda: os.kill(os.getpid(), signal.SIGTERM)
    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


async def run_aiokafka(args: argparse.Namespace, progress: Progress) -> None:
    """(c) getmany batches; offsets committed once outputs and changelog are acknowledged."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(args.input, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    counts: dict[str, int] = {}
    try:
        while not progress.finished():
            batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            if not batches:
                continue
            progress.started()
            sends, touched, offsets, outputs = [], {}, {}, 0
            for tp, records in batches.items():
                for record in records:
                    event = decode(HANDOFF_EVENTS, record.value)
                    count = counts[event.customer_ref] = counts.get(event.customer_ref, 0) + 1
                    touched[event.customer_ref] = tp.partition
                    sends.append(await producer.send(args.output, output_value(event, count), key=record.key,
                                                     partition=tp.partition))
                offsets[tp] = records[-1].offset + 1
                outputs += len(records)
            for customer, partition in touched.items():
                sends.append(await producer.send(args.changelog, str(counts[customer]).encode(),
                                                 key=customer.encode(), partition=partition))
            await asyncio.gather(*sends)  # outputs and state on the broker before the offsets move
            await consumer.commit(offsets)
            progress.acknowledged(outputs)
    finally:
        await producer.stop()
        await consumer.stop()


def run_confluent(args: argparse.Namespace, progress: Progress) -> None:
    """(d) one transaction per batch: outputs, changelog writes and input offsets together."""
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 50})
    # The stream engine's producer settings.
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": f"{args.group}-0",
                         "partitioner": "murmur2_random", "linger.ms": 2, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    producer.init_transactions(60)
    consumer.subscribe([args.input])
    counts: dict[str, int] = {}
    try:
        while not progress.finished():
            records = consumer.consume(BATCH, 0.1)
            if not records:
                continue
            progress.started()
            producer.begin_transaction()
            touched, offsets = {}, {}
            for record in records:
                if record.error():
                    raise KafkaException(record.error())
                event = decode(HANDOFF_EVENTS, record.value())
                count = counts[event.customer_ref] = counts.get(event.customer_ref, 0) + 1
                touched[event.customer_ref] = record.partition()
                producer.produce(args.output, value=output_value(event, count), key=record.key(),
                                 partition=record.partition())
                offsets[record.partition()] = record.offset() + 1
            for customer, partition in touched.items():
                producer.produce(args.changelog, value=str(counts[customer]).encode(), key=customer.encode(),
                                 partition=partition)
            producer.send_offsets_to_transaction([TopicPartition(args.input, p, o) for p, o in offsets.items()],
                                                 consumer.consumer_group_metadata())
            producer.commit_transaction()  # outputs, changelog and offsets together, or none of them
            progress.acknowledged(len(records))
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipelines", description="One pipeline variant (a child).")
    parser.add_argument("variant", choices=("copy", *VARIANTS))
    for option in ("bootstrap", "input", "output", "changelog", "group", "status", "workdir"):
        parser.add_argument(f"--{option}", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--time-limit", type=float, required=True)
    args = parser.parse_args(argv)
    progress = Progress(Path(args.status), args.records, args.time_limit)
    run = {"copy": lambda: run_copy(args, progress),
           "faust_agent": lambda: run_faust(args, progress, take=False),
           "faust_take": lambda: run_faust(args, progress, take=True),
           "aiokafka_batch": lambda: asyncio.run(run_aiokafka(args, progress)),
           "confluent_transactions": lambda: run_confluent(args, progress)}
    run[args.variant]()


if __name__ == "__main__":
    main()
