"""(l) The soak's load: customers' stories through the public gRPC API, started at a steady pace.

A pacer starts a story `soak_stories_per_s` times a second, whatever the stories before it
are doing (an open loop: a slow service makes stories overlap, it does not slow the load).
Four stories in turn:

- handled (twice): a contact, a leg, GetHandoff, AcknowledgeHandoff, ListHandoffs, ResolveHandoff;
- repeat: a contact 40 s ago, a leg, a contact now (a repeat within the SLA), acknowledge, resolve;
- breached: a contact 40 s ago, a leg in a department with an ack target of seconds,
  left until its breach reaches that department's Subscribe stream, then a contact (an
  avoidable repeat), GetHandoff and ResolveHandoff.

Every leg is resolved, so the open legs stay steady. The tally keeps each answered call,
each error and each breach notification, for bench.soak to window and judge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import grpc
from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import types_pb2

from bench.latency import Arrival, percentile
from bench.params import Parameters
from common.codec import to_timestamp

CALL_TIMEOUT_S = 15.0
MAX_STORIES_IN_FLIGHT = 200  # beyond this the stack is not keeping up: a tick is skipped and counted
HOLD_S = 2.0  # an acknowledged leg stays open this long before it is resolved
# A customer's earlier call: beyond the transfer grace, within the (compressed) repeat window.
TRANSFER_GRACE_S, EARLIER_CONTACT = 20, timedelta(seconds=40)


def soak_departments(run_id: str, breaching: int) -> tuple[str, list[str]]:
    """(the department of handled legs, the departments whose legs breach); the policy gives the latter
    an ack target of seconds."""
    return f"bench-{run_id}-soak", [f"bench-{run_id}-soakbreach{n}" for n in range(breaching)]


@dataclass
class Tally:
    """What the load did: each answered call, each error, each breach that reached a stream."""

    calls: list[tuple[float, str, float]] = field(default_factory=list)  # (answered at, method, ms)
    errors: dict[str, int] = field(default_factory=dict)  # "Method CODE" -> count
    arrivals: dict[str, Arrival] = field(default_factory=dict)  # handoff id -> its first breach notification
    breaching_legs: set[str] = field(default_factory=set)
    breaches_missed: int = 0
    stories: int = 0
    ticks_skipped: int = 0
    began: float = 0.0  # wall time the load began; samples are stamped in seconds since

    def arrived(self, arrival: Arrival) -> None:
        self.arrivals.setdefault(arrival.handoff_id, arrival)


class Api:
    """The handoff API as the stories call it: each call timed, a failed call counted and answered None."""

    def __init__(self, channel: grpc.aio.Channel, tally: Tally, run_id: str) -> None:
        self._stub = handoff_grpc.HandoffServiceStub(channel)
        self._tally = tally
        self.run_id = run_id

    async def call(self, method: str, request):
        started = time.perf_counter()
        try:
            response = await getattr(self._stub, method)(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            key = f"{method} {error.code().name}"
            self._tally.errors[key] = self._tally.errors.get(key, 0) + 1
            return None
        self._tally.calls.append((time.time(), method, (time.perf_counter() - started) * 1000))
        return response

    def ids(self, story: int, step: str) -> dict[str, str]:
        return {"request_id": f"soak-{self.run_id}-{story}-{step}"}

    async def contact(self, story: int, step: str, at: datetime | None = None):
        return await self.call("RecordContact", handoff_pb2.RecordContactRequest(
            **self.ids(story, step), customer_id=self.customer(story), case_id=self.case(story),
            channel=types_pb2.CONTACT_CHANNEL_CALL, reason="soak",
            contacted_at=to_timestamp(at) if at else None))

    async def create(self, story: int, department: str):
        return await self.call("CreateHandoff", handoff_pb2.CreateHandoffRequest(
            **self.ids(story, "create"), case_id=self.case(story), customer_id=self.customer(story),
            department=department, priority=types_pb2.PRIORITY_NORMAL, summary="soak"))

    async def leg_step(self, method: str, request_type, story: int, handoff_id: str) -> object:
        return await self.call(method, request_type(**self.ids(story, method), handoff_id=handoff_id))

    def customer(self, story: int) -> str:
        return f"soak-{self.run_id}-c{story}"

    def case(self, story: int) -> str:
        return f"SOAK-{self.run_id}-{story}"


def _earlier() -> datetime:
    return datetime.now(timezone.utc) - EARLIER_CONTACT


async def _handled(api: Api, story: int, department: str) -> None:
    if not await api.contact(story, "contact") or not (leg := await api.create(story, department)):
        return
    await api.call("GetHandoff", handoff_pb2.GetHandoffRequest(handoff_id=leg.handoff_id))
    await api.leg_step("AcknowledgeHandoff", handoff_pb2.AcknowledgeHandoffRequest, story, leg.handoff_id)
    await asyncio.sleep(HOLD_S)
    await api.call("ListHandoffs", handoff_pb2.ListHandoffsRequest(department=department, page_size=20))
    await api.leg_step("ResolveHandoff", handoff_pb2.ResolveHandoffRequest, story, leg.handoff_id)


async def _repeat(api: Api, story: int, department: str) -> None:
    if not await api.contact(story, "earlier", _earlier()) or not (leg := await api.create(story, department)):
        return
    await api.contact(story, "again")
    await api.leg_step("AcknowledgeHandoff", handoff_pb2.AcknowledgeHandoffRequest, story, leg.handoff_id)
    await asyncio.sleep(HOLD_S)
    await api.leg_step("ResolveHandoff", handoff_pb2.ResolveHandoffRequest, story, leg.handoff_id)


async def _breached(api: Api, tally: Tally, story: int, department: str, wait_s: float) -> None:
    if not await api.contact(story, "earlier", _earlier()) or not (leg := await api.create(story, department)):
        return
    tally.breaching_legs.add(leg.handoff_id)
    give_up = time.monotonic() + wait_s
    while leg.handoff_id not in tally.arrivals and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
    if leg.handoff_id not in tally.arrivals:
        tally.breaches_missed += 1
    await api.contact(story, "again")
    await api.call("GetHandoff", handoff_pb2.GetHandoffRequest(handoff_id=leg.handoff_id))
    await api.leg_step("ResolveHandoff", handoff_pb2.ResolveHandoffRequest, story, leg.handoff_id)


def stories(api: Api, tally: Tally, params: Parameters) -> list[Callable[[int], Awaitable[None]]]:
    """The four stories, in the order the pacer takes them in turn; each takes its story number."""
    steady, breaching = soak_departments(api.run_id, params.soak_breach_departments)
    wait_s = params.soak_breach_ack_s + params.soak_breach_grace_s
    return [
        lambda n: _handled(api, n, steady),
        lambda n: _repeat(api, n, steady),
        lambda n: _handled(api, n, steady),
        lambda n: _breached(api, tally, n, breaching[n // 4 % len(breaching)], wait_s),
    ]


async def pace(turns: list[Callable[[int], Awaitable[None]]], per_second: float, seconds: float,
                tally: Tally, finish_s: float) -> None:
    """Start a story every 1/per_second s for `seconds`, then wait up to `finish_s` for those still running."""
    running: set[asyncio.Task] = set()
    loop = asyncio.get_running_loop()
    began = loop.time()
    while (due := began + tally.stories * (1 / per_second)) < began + seconds:
        await asyncio.sleep(max(0.0, due - loop.time()))
        if len(running) >= MAX_STORIES_IN_FLIGHT:
            tally.ticks_skipped += 1
        else:
            task = asyncio.create_task(turns[tally.stories % len(turns)](tally.stories))
            running.add(task)
            task.add_done_callback(running.discard)
        tally.stories += 1
    if running:
        _, unfinished = await asyncio.wait(running, timeout=finish_s)
        for task in unfinished:
            task.cancel()


def summary(tally: Tally, params: Parameters) -> dict:
    """The load's figures: stories, calls, errors, p50 / p99 overall and per method, breaches notified."""
    latencies = [ms for _, _, ms in tally.calls]
    by_method: dict[str, list[float]] = {}
    for _, method, ms in tally.calls:
        by_method.setdefault(method, []).append(ms)
    ours = [a for a in tally.arrivals.values() if a.handoff_id in tally.breaching_legs]
    return {
        "stories": tally.stories, "ticks_skipped": tally.ticks_skipped, "calls": len(tally.calls),
        "calls_per_s": round(len(tally.calls) / params.soak_seconds, 1),
        "errors": tally.errors, "error_count": sum(tally.errors.values()),
        "api_p50_ms": percentile(latencies, 0.5) if latencies else None,
        "api_p99_ms": percentile(latencies, 0.99) if latencies else None,
        "calls_by_method": {method: {"calls": len(values), "p99_ms": round(percentile(values, 0.99), 1)}
                            for method, values in sorted(by_method.items())},
        "breaching_legs": len(tally.breaching_legs), "breaches_notified": len(ours),
        "breaches_missed": tally.breaches_missed,
        "breach_to_subscriber_p99_ms": percentile([a.late_seconds * 1000 for a in ours], 0.99) if ours else None,
    }
