"""(b) How many handoff events per second the sla service turns into clock_started events.

The burst bypasses the handoff gRPC service on purpose: it writes valid HandoffEvent
(created) records straight to handoff.events.v1, as the handoff codec would, so the figure
is the sla service's own throughput (decode, policy, table write, send) and not gRPC's.
The department's ack target is long, so no breach work interferes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2
from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc

from common.grpcclient import aio_channel
from devstack.stack import ADMIN_TOKEN

from common.codec import new_envelope, to_timestamp
from common.kafkaio import topic_partitions
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


async def end_offsets(consumer: AIOKafkaConsumer, bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    return await consumer.end_offsets(partitions)


async def _collect(consumer: AIOKafkaConsumer, wanted: set[str], n: int, arrivals: list[float],
                   deadline: float) -> None:
    """Append the arrival time of each first clock_started of a wanted leg, until n or deadline."""
    seen: set[str] = set()
    while len(seen) < n and time.perf_counter() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        now = time.perf_counter()
        for batch in batches.values():
            for record in batch:
                event = sla_events_pb2.SlaEvent.FromString(record.value)
                is_start = event.WhichOneof("change") == "clock_started"
                if is_start and event.handoff_id in wanted and event.handoff_id not in seen:
                    seen.add(event.handoff_id)
                    arrivals.append(now)


async def burst(bootstrap: str, department: str, n: int, run_id: str, time_limit: float) -> dict:
    """Write n created legs, time until n clock_started events for them are on sla.events.v1."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        ends = await end_offsets(consumer, bootstrap, SLA_EVENTS.name)
        dlq_before = sum((await end_offsets(consumer, bootstrap, HANDOFF_EVENTS.dlq)).values())
        consumer.assign(list(ends))
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        wanted: set[str] = set()
        arrivals: list[float] = []
        started = time.perf_counter()
        collector = asyncio.create_task(_collect(consumer, wanted, n, arrivals, started + time_limit))
        handoff_id = ""
        for number in range(n):
            key, value, handoff_id = created_event(department, number, run_id)
            wanted.add(handoff_id)
            await producer.send(HANDOFF_EVENTS.name, value, key=key)
        await producer.flush()
        produced = time.perf_counter() - started
        await collector
        dlq_after = sum((await end_offsets(consumer, bootstrap, HANDOFF_EVENTS.dlq)).values())
    finally:
        await producer.stop()
        await consumer.stop()
    return {**_summary(n, started, produced, arrivals, dlq_after - dlq_before), "last_handoff_id": handoff_id}


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
