"""(a) What this machine's Kafka can do without our services: the ceiling they are measured against.

Two figures: Kafka's own Java ProducerPerformance (the broker's and the JVM client's limit)
and a plain aiokafka consume -> produce copy loop, which is the honest ceiling for any
Python stream processor here: faust is built on aiokafka, so a service cannot beat it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient

from common.kafkaio import topic_partitions
from common.localkafka import ensure_jars

_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
    r"(?:, (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th)?"
)
_QUIET_LOG4J = "rootLogger.level = WARN\nrootLogger.appenderRef.console.ref = console\n" \
    "appender.console.type = Console\nappender.console.name = console\n" \
    "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %p %m%n\n"


def create_bench_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    """Topics of the bench's own, made explicitly (the project's brokers never auto-create)."""
    with KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1} for name in names},
                            timeout_ms=30_000)
        admin.wait_for_topics(names, timeout_ms=30_000)


def delete_bench_topics(bootstrap: str, names: list[str]) -> None:
    """Best effort: matters on a shared KAFKA_BOOTSTRAP broker, a local one is thrown away."""
    try:
        with KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000) as admin:
            existing = set(admin.list_topics())
            if doomed := [name for name in names if name in existing]:
                admin.delete_topics(doomed, timeout_ms=15_000)
    except Exception as error:  # cleanup must never hide the run's own outcome
        print(f"warning: could not delete bench topics {names}: {error}")


def producer_performance(bootstrap: str, topic: str, records: int, record_size: int, workdir: Path,
                         timeout: float = 120) -> dict:
    """Run org.apache.kafka.tools.ProducerPerformance and parse its final summary line."""
    log4j = workdir / "perf-log4j2.properties"
    log4j.write_text(_QUIET_LOG4J)
    command = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{ensure_jars()}/*",
               "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
               "--record-size", str(record_size), "--throughput", "-1", "--producer-props",
               f"bootstrap.servers={bootstrap}", "acks=1", "linger.ms=5"]
    # Its own session, so only we stop it (and always do, even on Ctrl-C).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    matches = list(_SUMMARY.finditer(output))
    if process.returncode != 0 or not matches:
        raise RuntimeError(f"ProducerPerformance failed ({process.returncode}):\n{output[-2000:]}")
    final = matches[-1]
    result = {"records": int(final["records"]), "records_per_s": float(final["rps"]),
              "mb_per_s": float(final["mbps"]), "avg_latency_ms": float(final["avg"]),
              "max_latency_ms": float(final["max"])}
    if final["p99"]:
        result.update(p50_latency_ms=int(final["p50"]), p99_latency_ms=int(final["p99"]))
    return result


async def prefill(bootstrap: str, topic: str, records: int, record_size: int) -> dict:
    """Write `records` values of `record_size` bytes with aiokafka (acks=1), timed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        for number in range(records):
            value = os.urandom(8) + number.to_bytes(8, "big") + b"x" * (record_size - 16)
            await producer.send(topic, value, key=str(number % 5000).encode())
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed}


async def copy_loop(bootstrap: str, source: str, sink: str, records: int, time_limit: float) -> dict:
    """Copy `source` to `sink` with AIOKafkaConsumer.getmany -> AIOKafkaProducer.send (acks=1).

    The clock runs from the first fetch to the broker acknowledging the last copied record.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(source, p) for p in await topic_partitions(bootstrap, source)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        copied = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        while copied < records and time.perf_counter() - started < time_limit:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, batch in batches.items():
                for record in batch:
                    await producer.send(sink, record.value, key=record.key, partition=tp.partition)
                copied += len(batch)
        await producer.flush()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await producer.stop()
        await consumer.stop()
    return {"records": copied, "expected": records, "complete": copied >= records, "seconds": elapsed,
            "records_per_s": copied / elapsed if elapsed else 0.0, "cpu_seconds": cpu,
            "records_per_cpu_s": copied / cpu if cpu else None}
