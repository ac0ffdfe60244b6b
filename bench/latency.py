"""(c) How late a breach reaches a department: notification arrival minus the deadline.

The path measured is the whole product path: CreateHandoff over gRPC, the sla timer
noticing the deadline, sla.events.v1, notify, notifications.v1 and the Subscribe stream.
Legs are never acknowledged, so every one must breach once; a notification carries
occurred_at = deadline, so arrival wall time - occurred_at is the delay a user feels.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import types_pb2

from common.grpcclient import aio_channel
from devstack.stack import ADMIN_TOKEN


@dataclass(frozen=True)
class Arrival:
    stream: int
    department: str
    handoff_id: str
    notification_id: str
    deadline: float
    late_seconds: float


async def subscribe(stub: notify_grpc.NotificationServiceStub, stream: int, department: str,
                    arrived: Callable[[Arrival], None]) -> None:
    """Read `department`'s Subscribe stream from now on, handing each notification to `arrived`."""
    async for response in stub.Subscribe(notify_pb2.SubscribeRequest(department=department)):
        received = time.time()
        note = response.notification
        deadline = note.occurred_at.seconds + note.occurred_at.nanos / 1e9
        arrived(Arrival(stream, department, note.handoff_id, note.notification_id, deadline, received - deadline))


async def warm_up(handoffs: handoff_grpc.HandoffServiceStub, department: str, run_id: str,
                  time_limit: float = 60.0) -> float:
    """Seconds until a first CreateHandoff succeeds: the service's ready line can come before
    it serves writes. One request id, retried, so at most one warm-up leg is created."""
    request = handoff_pb2.CreateHandoffRequest(
        request_id=f"bench-{run_id}-warm-up", case_id=f"BENCH-{run_id}-W", customer_id=f"bench-{run_id}-w",
        department=department, priority=types_pb2.PRIORITY_NORMAL, summary="bench warm-up")
    started = time.monotonic()
    while True:
        try:
            await handoffs.CreateHandoff(request, timeout=5)
            return time.monotonic() - started
        except grpc.aio.AioRpcError as error:
            retriable = error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
            if not retriable or time.monotonic() - started > time_limit:
                raise
        await asyncio.sleep(0.5)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (non-empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


async def breach_latency(handoff_address: str, notify_address: str, departments: list[str],
                         streams_per_department: int, legs: int, ack_seconds: float, spread_seconds: float,
                         grace_seconds: float, run_id: str, warm_up_department: str, settle_seconds: float = 3.0,
                         count_subscribers: Callable[[], float | None] | None = None) -> dict:
    """Open the streams, create `legs` legs over `spread_seconds`, wait for every breach.

    `count_subscribers`, if given, reads how many streams the notify replica holds once
    they settled (blocking; run in a thread)."""
    arrivals: list[Arrival] = []
    created: dict[str, tuple[str, float]] = {}  # handoff id -> (department, created_at)
    async with aio_channel(notify_address, ADMIN_TOKEN) as notify_channel, \
            aio_channel(handoff_address, ADMIN_TOKEN) as handoff_channel:
        notify = notify_grpc.NotificationServiceStub(notify_channel)
        streams = [asyncio.create_task(subscribe(notify, number, department, arrivals.append))
                   for number, (department, _) in enumerate(
                       (d, s) for d in departments for s in range(streams_per_department))]
        try:
            handoffs = handoff_grpc.HandoffServiceStub(handoff_channel)
            ready_after = await warm_up(handoffs, warm_up_department, run_id)
            # Subscribe reads "from now on": give each stream's consumer time to find its end.
            await asyncio.sleep(settle_seconds)
            subscribers = await asyncio.to_thread(count_subscribers) if count_subscribers else None
            create_ms: list[float] = []
            for number in range(legs):
                department = departments[number % len(departments)]
                call_started = time.perf_counter()
                leg = await handoffs.CreateHandoff(handoff_pb2.CreateHandoffRequest(
                    request_id=f"bench-{run_id}-{uuid.uuid4()}", case_id=f"BENCH-{run_id}-L{number}",
                    customer_id=f"bench-{run_id}-lat{number}", department=department,
                    priority=types_pb2.PRIORITY_NORMAL, summary="bench latency"), timeout=10)
                create_ms.append((time.perf_counter() - call_started) * 1000)
                created[leg.handoff_id] = (department, leg.created_at.seconds + leg.created_at.nanos / 1e9)
                await asyncio.sleep(spread_seconds / legs)
            expected = legs * streams_per_department
            give_up = time.monotonic() + ack_seconds + grace_seconds
            while time.monotonic() < give_up and len(_ours(arrivals, created)) < expected:
                failed = [task for task in streams if task.done()]
                if failed:
                    raise RuntimeError(f"a Subscribe stream ended: {failed[0].exception()!r}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # late duplicates would show up now
        finally:
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
    return {**_summary(_ours(arrivals, created), created, legs, streams_per_department, ack_seconds),
            "handoff_writes_after_s": ready_after, "subscribers_connected": subscribers,
            "create_handoff_p50_ms": percentile(create_ms, 0.5), "create_handoff_max_ms": max(create_ms)}


def _ours(arrivals: list[Arrival], created: dict[str, tuple[str, float]]) -> list[Arrival]:
    return [a for a in arrivals if a.handoff_id in created]


def _summary(arrivals: list[Arrival], created: dict[str, tuple[str, float]], legs: int,
             streams_per_department: int, ack_seconds: float) -> dict:
    firsts: dict[tuple[int, str], Arrival] = {}
    for arrival in arrivals:
        firsts.setdefault((arrival.stream, arrival.handoff_id), arrival)
    wrong_department = sum(1 for a in arrivals if created[a.handoff_id][0] != a.department)
    late_ms = [a.late_seconds * 1000 for a in firsts.values()]
    # The deadline a notification names should be created_at + the ack target (24x7 calendar).
    deadline_error = [abs(a.deadline - created[a.handoff_id][1] - ack_seconds) for a in firsts.values()]
    notified = {handoff_id for _, handoff_id in firsts}
    result = {
        "legs": legs, "expected": legs * streams_per_department, "received": len(firsts),
        "duplicates": len(arrivals) - len(firsts), "wrong_department": wrong_department,
        "legs_never_notified": sum(1 for handoff_id in created if handoff_id not in notified),
        "max_deadline_error_ms": max(deadline_error, default=0.0) * 1000,
    }
    if late_ms:
        result.update(p50_ms=percentile(late_ms, 0.50), p99_ms=percentile(late_ms, 0.99), max_ms=max(late_ms),
                      min_ms=min(late_ms))
    return result
