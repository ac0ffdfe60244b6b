"""(i) The pipelines of bench.pipelines measured side by side, with the raw limits of the same run.

Every variant reads the same prefilled input topic with a group and output and changelog
topics of its own, and runs as a child process, so its CPU is its own and faust has its
event loop to itself. The clock runs from the first record the child processes to the
moment the broker has acknowledged (committed, for the transactional loop) the last
output. The raw limits stand beside them: ProducerPerformance and the aiokafka copy loop,
the latter as a child measured the same way. Afterwards every output topic and changelog
is read back (read_committed): each input event must be in the outputs once, and the final
counts must add up to the events processed. Every child is stopped by its pid and every
topic and group deleted, also on failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from handoff.v1 import handoff_events_pb2, types_pb2
from kafka import KafkaAdminClient

from bench.cpu import cpu_seconds
from bench.pipelines import BATCH, PARTITIONS, VARIANTS
from bench.rawkafka import producer_performance
from common.codec import new_envelope, to_timestamp

STARTUP_ALLOWANCE_S = 60.0  # a child's start (imports, group join) before its clock runs
STOP_GRACE_S = 20.0
ROOT = Path(__file__).resolve().parent.parent


def measure_pipelines(bootstrap: str, records: int, keys: int, time_limit: float, workdir: Path, run_id: str,
                      broker_pid: int | None, results: dict, status: Callable[[str], None]) -> None:
    """Fill `results` with the raw limits and each variant's figures, variant by variant."""
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench.{run_id}.pipe"
    source, perf = f"{prefix}.input", f"{prefix}.perf"
    groups = {name: f"bench-{run_id}-{name}" for name in ("copy", *VARIANTS)}
    outputs = {name: f"{prefix}.{name}.out" for name in groups}
    changelogs = {name: f"{group}-counts-changelog" for name, group in groups.items() if name != "copy"}
    try:
        _create_topics(bootstrap, [source, perf, *outputs.values()], list(changelogs.values()))
        status(f"pre-filling {records:,} handoff events")
        results.update(records=records, keys=keys, batch=BATCH, partitions=PARTITIONS,
                       record_bytes=asyncio.run(_prefill(bootstrap, source, records, keys, run_id)))
        status("ProducerPerformance")
        results["producer_performance"] = producer_performance(bootstrap, perf, records, results["record_bytes"],
                                                               workdir)
        for name, group in groups.items():
            status(f"{name}, {records:,} records")
            figures = results[name] = _run_child(name, bootstrap, source, outputs[name], changelogs.get(name, ""),
                                                 group, records, time_limit, workdir, broker_pid)
            figures.update(_read_back(bootstrap, outputs[name], changelogs.get(name)))
        _derive(results)
    finally:
        _delete(bootstrap, [source, perf, *outputs.values(), *changelogs.values()], list(groups.values()))


def _create_topics(bootstrap: str, plain: list[str], compacted: list[str]) -> None:
    topic = {"num_partitions": PARTITIONS, "replication_factor": 1}
    with KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000) as admin:
        admin.create_topics({**{name: topic for name in plain},
                             **{name: {**topic, "configs": {"cleanup.policy": "compact"}} for name in compacted}},
                            timeout_ms=30_000)
        admin.wait_for_topics(plain + compacted, timeout_ms=30_000)


def _delete(bootstrap: str, topics: list[str], groups: list[str]) -> None:
    """Best effort: cleanup must never hide the run's own outcome."""
    try:
        with KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000) as admin:
            existing = set(admin.list_topics())
            if doomed := [name for name in topics if name in existing]:
                admin.delete_topics(doomed, timeout_ms=15_000)
            known = {group for group, *_ in admin.list_groups()}
            if doomed := [group for group in groups if group in known]:
                admin.delete_groups(doomed)
    except Exception as error:
        print(f"warning: could not delete the pipelines' topics or groups: {error}")


def created_event(number: int, keys: int, run_id: str) -> tuple[bytes, bytes]:
    """(key, value) of one HandoffEvent(created) as the handoff service writes it."""
    now = datetime.now(timezone.utc)
    customer_ref = f"bench-{run_id}-c{number % keys:05d}"
    message = handoff_events_pb2.HandoffEvent(
        envelope=new_envelope("bench", now, now), handoff_id=f"{run_id}-{number}", case_id=f"PIPE-{number}",
        customer_ref=customer_ref, department="bench-pipelines",
        created=handoff_events_pb2.HandoffCreated(priority=types_pb2.PRIORITY_NORMAL, summary="pipeline bench",
                                                  created_by="bench", created_at=to_timestamp(now)))
    return customer_ref.encode(), message.SerializeToString()


async def _prefill(bootstrap: str, topic: str, records: int, keys: int, run_id: str) -> int:
    """Write the input (keyed by customer_ref, Kafka's default partitioner); returns the mean value size."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    size = 0
    try:
        for number in range(records):
            key, value = created_event(number, keys, run_id)
            size += len(value)
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return round(size / records)


def _run_child(variant: str, bootstrap: str, source: str, output: str, changelog: str, group: str, records: int,
               time_limit: float, workdir: Path, broker_pid: int | None) -> dict:
    """Run one variant in a child process until it reports done or its time is up; stop it by pid."""
    status_file, log = workdir / f"{variant}.status", workdir / f"{variant}.log"
    status_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.pipelines", variant, "--bootstrap", bootstrap, "--input", source,
               "--output", output, "--changelog", changelog, "--group", group, "--records", str(records),
               "--time-limit", str(time_limit), "--status", str(status_file), "--workdir", str(workdir)]
    load = os.getloadavg()[0]
    with open(log, "wb") as out:
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    broker = {}
    lines: dict = {}
    try:
        # Until the first record: the start allowance; from then on: the time limit (plus a
        # second for the child's own last report).
        deadline = time.monotonic() + STARTUP_ALLOWANCE_S
        while time.monotonic() < deadline and child.poll() is None and "done" not in lines:
            time.sleep(0.1)
            lines = _status(status_file)
            if "first" in lines and "first" not in broker:
                broker["first"] = cpu_seconds(broker_pid) if broker_pid else None
                deadline = time.monotonic() + time_limit + 1.0
        if broker.get("first") is not None:  # the end of the run, or of its time limit
            broker["done"] = cpu_seconds(broker_pid)
    finally:
        _stop(child)
    # A run cut short counts up to its time limit, not the outputs that trickled in while it stopped.
    figures = _status(status_file).get("done") or {**lines.get("progress", {}), "complete": False}
    figures.update(variant=variant, exit_code=child.returncode, load_average_1m=round(load, 2),
                   load_average_1m_end=round(os.getloadavg()[0], 2))
    if None not in (broker.get("first"), broker.get("done")):
        figures["broker_cpu_seconds"] = round(broker["done"] - broker["first"], 2)
    if not figures["complete"]:
        figures["log_tail"] = log.read_text(errors="replace")[-1500:]
    return figures


def _status(path: Path) -> dict:
    """The child's status lines by kind, the last of each kind winning."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.endswith("}"):  # a line being written is not whole yet
            entry = json.loads(line)
            found[entry.pop("kind")] = entry
    return found


def _stop(child: subprocess.Popen) -> None:
    """Let the child leave on its own, then SIGTERM (faust stops cleanly on it), then SIGKILL."""
    for stop in (lambda: None, lambda: child.send_signal(signal.SIGTERM), child.kill):
        if child.poll() is not None:
            return
        stop()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def _read_back(bootstrap: str, output: str, changelog: str | None) -> dict:
    """What read_committed readers find: outputs, distinct input events among them, the counts' sum."""
    found = {"outputs_read": 0}
    ids = set()
    for _, value in _read_all(bootstrap, output):
        found["outputs_read"] += 1
        ids.add(value.rpartition(b":")[0])
    if changelog is None:
        return found
    counts = {key: int(value) for key, value in _read_all(bootstrap, changelog) if value is not None}
    return {**found, "distinct_events": len(ids), "changelog_keys": len(counts), "state_sum": sum(counts.values())}


def _read_all(bootstrap: str, topic: str):
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "enable.auto.commit": False,
                       "isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        pending = set(range(PARTITIONS))
        while pending:
            for record in reader.consume(10_000, 1.0):
                if record.error():
                    if record.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(record.error())
                    pending.discard(record.partition())
                    continue
                yield record.key(), record.value()
    finally:
        reader.close()


def _derive(results: dict) -> None:
    copy = results.get("copy", {}).get("records_per_s")
    for name in VARIANTS:
        figures = results.get(name) or {}
        if figures.get("records_per_s") and copy:
            figures["ratio_to_copy"] = round(figures["records_per_s"] / copy, 3)
        if "distinct_events" in figures:
            figures["duplicates"] = figures["outputs_read"] - figures["distinct_events"]
            # Each event once in the outputs and once in the state (for a run cut short by its
            # time limit: the same number in both, whatever it reached).
            figures["checks_pass"] = figures["duplicates"] == 0 and figures["state_sum"] == figures["distinct_events"]
