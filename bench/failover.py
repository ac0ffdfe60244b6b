"""(k) Failover: how long the legs of a killed sla worker wait before a worker serves them again.

Two ways back, each after a kill -9 while legs keep arriving (one every 50 ms):
- restart: the same worker (same INSTANCE, so the same static group membership and
  transactional id) is started again at once, as a supervisor does;
- takeover: a second worker already runs beside it and takes the killed worker's
  partitions once the group notices (session timeout) and the killed worker's open
  transaction, if any, is aborted (transaction timeout).
Measured from the kill to the first clock_started, read by a read_committed consumer, of
a leg that lies in the killed worker's partitions and was written after the kill.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from handoff.v1 import sla_events_pb2

from bench.slaburst import created_event
from common.kafkaio import partition_for
from common.topics import HANDOFF_EVENTS, SLA_EVENTS
from devstack.stack import Stack

PARTITIONS = [0, 1, 2, 3]
LEG_INTERVAL_S = 0.05
ASSIGNED = re.compile(r"assigned partitions \[([0-9, ]*)\]")


def _sla_events_reader(bootstrap: str) -> Consumer:
    """A read_committed reader of sla.events.v1 placed at its ends: what the run wrote before
    is not read (after the other phases, millions of records)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-failover-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    metadata = consumer.list_topics(SLA_EVENTS.name, timeout=10).topics[SLA_EVENTS.name]
    consumer.assign([TopicPartition(SLA_EVENTS.name, p, consumer.get_watermark_offsets(
        TopicPartition(SLA_EVENTS.name, p), timeout=10)[1]) for p in metadata.partitions])
    return consumer


def _first_start_after(consumer: Consumer, written: dict[str, float], killed: float,
                       time_limit: float) -> float | None:
    """Seconds from `killed` to the first clock_started of a leg in `written` (None: not in time)."""
    try:
        while time.perf_counter() - killed < time_limit:
            for message in consumer.consume(1000, 0.1):
                if message.error():
                    continue
                event = sla_events_pb2.SlaEvent.FromString(message.value())
                if event.WhichOneof("change") == "clock_started" and event.handoff_id in written:
                    return time.perf_counter() - killed
    finally:
        consumer.close()
    return None


def _kill_and_time(stack: Stack, victim: str, partitions: set[int], department: str, run_id: str,
                   restart: bool, time_limit: float) -> dict:
    """Kill `victim` (-9), optionally start it again, and time the first output for its partitions."""
    bootstrap = stack.bootstrap
    written: dict[str, float] = {}
    stop = threading.Event()

    def write() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                             "partitioner": "murmur2_random"})
        number = 0
        while not stop.is_set():
            key, value, handoff_id = created_event(department, number, f"{run_id}-{uuid.uuid4().hex[:4]}")
            number += 1
            if partition_for(key.decode(), PARTITIONS) in partitions:
                written[handoff_id] = time.perf_counter()
            producer.produce(HANDOFF_EVENTS.name, key=key, value=value)
            producer.poll(0)
            time.sleep(LEG_INTERVAL_S)
        producer.flush(30)

    process = stack.services.pop(victim)
    os.kill(process.pid, signal.SIGKILL)
    process.process.wait()
    killed = time.perf_counter()
    # Placed before any leg is written: every output for one of them lies past these ends.
    reader = _sla_events_reader(bootstrap)
    writer = threading.Thread(target=write, name="failover-writer")
    writer.start()
    ready: dict[str, float] = {}
    starter = None
    if restart:
        def start() -> None:
            stack.start_service(victim)
            ready["seconds"] = time.perf_counter() - killed
        starter = threading.Thread(target=start, name="failover-restart")
        starter.start()
    try:
        back = _first_start_after(reader, written, killed, time_limit)
    finally:
        stop.set()
        writer.join()
        if starter:
            starter.join()
    return {"seconds_to_first_output": back, "seconds_to_ready_line": ready.get("seconds")}


def _last_assignment(log: Path) -> set[int]:
    """The partitions a worker last said it owns (its log's "assigned partitions [..]" line)."""
    found: set[int] = set()
    for line in log.read_text(errors="replace").splitlines():
        if match := ASSIGNED.search(line):
            found = {int(p) for p in match.group(1).split(",") if p.strip()}
    return found


def measure_failover(stack: Stack, department: str, run_id: str, time_limit: float = 90.0) -> dict:
    """(k) restart of a killed worker, then takeover by a second worker; `stack` runs one sla worker."""
    result = {"restart": _kill_and_time(stack, "sla", set(PARTITIONS), department, run_id, True, time_limit)}
    second = "sla-2"
    # A worker like the first: with the SlaService read model (SLA_ROLE=all) it would not be
    # ready before it had read every topic of the run from the beginning.
    stack.start_service("sla", instance=second, env={"SLA_ROLE": "worker"})
    owned = _last_assignment(stack.services["sla"].log_path)
    waited = time.perf_counter()
    while len(owned) == len(PARTITIONS) and time.perf_counter() - waited < time_limit:
        time.sleep(0.5)  # until the group has split the partitions between the two
        owned = _last_assignment(stack.services["sla"].log_path)
    time.sleep(2.0)  # and the second worker has restored its share
    result["takeover"] = _kill_and_time(stack, "sla", owned, department, run_id, False, time_limit)
    result["takeover"]["partitions_moved"] = sorted(owned)
    stack.services.pop(second).stop()
    stack.start_service("sla")
    return result
