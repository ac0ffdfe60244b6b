"""(b) How many handoff events per second the sla service turns into clock_started events.

The burst bypasses the handoff gRPC service on purpose: it writes valid HandoffEvent
(created) records straight to handoff.events.v1, as the handoff codec would, so the figure
is the sla service's own throughput (decode, policy, table write, send) and not gRPC's.
The department's ack target is long, so no breach work interferes.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from bench.burstio import BurstWriter, Watcher, end_offsets
from bench.probes import KafkaProbe
from common.codec import new_envelope, to_timestamp
from common.topics import HANDOFF_EVENTS, SLA_EVENTS


def created_event(department: str, number: int, run_id: str, customers: int = 5000) -> tuple[bytes, bytes, str]:
    """(key, value, handoff_id) of one HandoffEvent(created), event time now, for one of `customers`."""
    now = datetime.now(timezone.utc)
    handoff_id = str(uuid.uuid4())
    customer_ref = f"bench-{run_id}-c{number % customers:04d}"
    message = handoff_events_pb2.HandoffEvent(
        envelope=new_envelope("bench", now, now, event_id=str(uuid.uuid4())),
        handoff_id=handoff_id,
        case_id=f"BENCH-{run_id}-{number}",
        customer_ref=customer_ref,
        department=department,
        created=handoff_events_pb2.HandoffCreated(
            priority=types_pb2.PRIORITY_NORMAL, summary="bench burst", created_by="bench",
            created_at=to_timestamp(now),
        ),
    )
    return customer_ref.encode(), message.SerializeToString(), handoff_id


def burst(bootstrap: str, department: str, n: int, run_id: str, time_limit: float) -> dict:
    """Write n created legs, time until n clock_started events for them are on sla.events.v1.

    The legs are built, and the producer connected, before the clock starts, and
    sla.events.v1 is watched on a thread of its own (bench.burstio): the bench's own work
    stays out of sla's way."""
    built = [created_event(department, number, run_id) for number in range(n)]
    wanted = {handoff_id for _, _, handoff_id in built}
    seen: set[str] = set()
    arrivals: list[float] = []

    def handle(value: bytes, now: float) -> None:
        event = sla_events_pb2.SlaEvent.FromString(value)
        if event.WhichOneof("change") == "clock_started" and event.handoff_id in wanted and event.handoff_id not in seen:
            seen.add(event.handoff_id)
            arrivals.append(now)

    with KafkaProbe(bootstrap) as probe:
        dlq_before = probe.records(HANDOFF_EVENTS.dlq)
    writer = BurstWriter(bootstrap, HANDOFF_EVENTS.name)
    watcher = Watcher(bootstrap, SLA_EVENTS.name, end_offsets(bootstrap, SLA_EVENTS.name), handle,
                      lambda: len(seen) >= n, time.perf_counter() + time_limit)
    started = time.perf_counter()
    writer.write((key, value) for key, value, _ in built)
    produced = time.perf_counter() - started
    watcher.join()
    with KafkaProbe(bootstrap) as probe:
        dlq_after = probe.records(HANDOFF_EVENTS.dlq)
    return {**_summary(n, started, produced, arrivals, dlq_after - dlq_before), "last_handoff_id": built[-1][2]}


def _summary(n: int, started: float, produced: float, arrivals: list[float], dead_lettered: int) -> dict:
    received = len(arrivals)
    elapsed = (arrivals[-1] - started) if arrivals else 0.0
    result = {
        "legs": n, "clock_started_received": received, "complete": received >= n,
        "produce_seconds": produced, "produce_records_per_s": n / produced,
        "seconds_to_last": elapsed, "events_per_s": received / elapsed if elapsed else 0.0,
        "first_arrival_seconds": (arrivals[0] - started) if arrivals else None,
        "dead_lettered": dead_lettered,
    }
    if received >= 10:  # the middle 80 %: the sla service's pace once its batches are flowing
        low, high = arrivals[received // 10], arrivals[received * 9 // 10]
        result["steady_events_per_s"] = (received * 9 // 10 - received // 10) / (high - low) if high > low else None
    return result
