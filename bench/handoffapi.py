"""(d) The handoff API under load: CreateHandoff calls/s and latency at several concurrencies.

Each level runs `concurrency` workers that issue CreateHandoff calls back to back for a
bounded count and time, spread round-robin over the replicas given. Latency is the client's
view of one call: validation, the command to the partition owner over Kafka, the owner's
events and its reply.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc

from common.grpcclient import aio_channel
from devstack.stack import AGENT_TOKEN


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def create_load(addresses: list[str], concurrency: int, calls: int, time_limit_s: float,
                      department: str) -> dict:
    """Run the load; returns calls/s, p50/p99/max in ms and the error count."""
    channels = [aio_channel(address, AGENT_TOKEN) for address in addresses]
    stubs = [handoff_grpc.HandoffServiceStub(channel) for channel in channels]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.monotonic() + time_limit_s

    async def worker(number: int) -> None:
        nonlocal issued
        stub = stubs[number % len(stubs)]
        while issued < calls and time.monotonic() < deadline:
            issued += 1
            request = handoff_pb2.CreateHandoffRequest(
                request_id=str(uuid.uuid4()), case_id=f"bench-{issued}", customer_id=f"cust-{uuid.uuid4().hex[:12]}",
                department=department,
            )
            started = time.perf_counter()
            try:
                await stub.CreateHandoff(request, timeout=15)
                latencies.append((time.perf_counter() - started) * 1000)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    finally:
        for channel in channels:
            await channel.close()
    elapsed = time.perf_counter() - began
    return {
        "replicas": len(addresses), "concurrency": concurrency, "calls": len(latencies), "seconds": round(elapsed, 2),
        "calls_per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
        "p50_ms": _percentile(latencies, 0.50), "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies, default=None), "errors": errors,
    }


async def warm_up(address: str, department: str, time_limit_s: float = 60.0) -> None:
    """Retry one call until the owner answers (a new replica waits for its rebalance)."""
    deadline = time.monotonic() + time_limit_s
    request_id = str(uuid.uuid4())
    async with aio_channel(address, AGENT_TOKEN) as channel:
        stub = handoff_grpc.HandoffServiceStub(channel)
        while True:
            try:
                await stub.CreateHandoff(handoff_pb2.CreateHandoffRequest(
                    request_id=request_id, case_id="warm-up", customer_id="cust-warm-up", department=department,
                ), timeout=15)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
