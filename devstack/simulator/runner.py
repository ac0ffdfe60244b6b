"""Plays a plan against the real services on event time.

Every call carries its simulated instant (`occurred_at`, `contacted_at`), made by whoever
makes it in a centre: agents create handoffs and record contacts, each department works
its own legs with its own token. A case's steps run one after another (a step needs the
leg its predecessor opened); contacts run on their own. As simulated time moves, a
heartbeat on every partition of handoff.events.v1 tells sla and notify how far event time
has come — never past a call that is still due or in flight, so no event arrives behind
a heartbeat that promised it would not.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
from aiokafka import AIOKafkaProducer
from handoff.v1 import handoff_service_pb2 as pb
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import types_pb2

from common.codec import to_timestamp
from common.grpcclient import aio_channel
from common.ticks import send_heartbeats
from devstack.simulator.plan import ACKNOWLEDGE, CREATE, RESOLVE, STATUS, TRANSFER, Case, Contact, Plan

SOURCE = "simulator"
HEARTBEAT_EVERY = 0.5  # real seconds
RETRIES = 5
# How close simulated time may come to the real present (event time may not lie ahead).
PRESENT_MARGIN = timedelta(seconds=5)
AGENT_TOKEN = "dev-token-agent"


def department_token(department: str) -> str:
    """The development token of a department's team (config/tokens.example.yaml)."""
    return f"dev-token-{department}"


class SimClock:
    """Simulated time: `start` plus real time elapsed while running, times `speed`."""

    def __init__(self, start: datetime, speed: float, end: datetime, zone: ZoneInfo = ZoneInfo("UTC"),
                 real: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] | None = None) -> None:
        self.start, self.end, self.speed, self.zone = start, end, speed, zone
        self._real = real
        self._wall = wall or (lambda: datetime.now(timezone.utc))
        self._base_sim, self._base_real = start, real()
        self.paused = False

    def now(self) -> datetime:
        """The simulated instant; it stops at the run's end and short of the real present."""
        elapsed = 0.0 if self.paused else self._real() - self._base_real
        at = self._base_sim + timedelta(seconds=elapsed * self.speed)
        return min(at, self.end, self._wall() - PRESENT_MARGIN)

    def _rebase(self) -> None:
        self._base_sim, self._base_real = self.now(), self._real()

    def set_speed(self, speed: float) -> None:
        self._rebase()
        self.speed = max(1.0, min(speed, 100_000.0))

    def toggle_pause(self) -> None:
        self._rebase()
        self.paused = not self.paused

    @property
    def finished(self) -> bool:
        return self.now() >= self.end


@dataclass
class OpenLeg:
    handoff_id: str
    case_id: str
    department: str
    opened_at: datetime


@dataclass
class Progress:
    """What the run has done so far, for the live view."""

    open_legs: dict[str, OpenLeg] = field(default_factory=dict)
    calls: int = 0
    failed_calls: int = 0
    contacts: int = 0
    callbacks: int = 0
    # (instant, line): the simulator's own recent doings (callbacks, transfers).
    recent: list[tuple[datetime, str, str]] = field(default_factory=list)
    last_error: str = ""
    heartbeat_at: datetime | None = None

    def note(self, at: datetime, kind: str, text: str) -> None:
        self.recent.append((at, kind, text))
        del self.recent[:-200]


Job = Callable[[], Awaitable[None]]


class Simulation:
    """Runs `plan` on `clock` against handoff at `handoff_address`; heartbeats through `bootstrap`."""

    def __init__(self, plan: Plan, clock: SimClock, handoff_address: str, bootstrap: str,
                 concurrency: int = 24) -> None:
        self.plan, self.clock = plan, clock
        self.progress = Progress()
        self._address, self._bootstrap = handoff_address, bootstrap
        self._due: list[tuple[datetime, int, Job]] = []
        self._in_flight: dict[asyncio.Task[None], datetime] = {}
        self._order = itertools.count()
        self._slots = asyncio.Semaphore(concurrency)
        self._stubs: dict[str, handoff_grpc.HandoffServiceStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def _schedule(self, at: datetime, job: Job) -> None:
        heapq.heappush(self._due, (at, next(self._order), job))

    def _stub(self, token: str) -> handoff_grpc.HandoffServiceStub:
        if token not in self._stubs:
            channel = aio_channel(self._address, token)
            self._channels.append(channel)
            self._stubs[token] = handoff_grpc.HandoffServiceStub(channel)
        return self._stubs[token]

    def low_water(self) -> datetime:
        """The earliest instant a call may still carry: nothing earlier will be sent."""
        candidates = [self.clock.now(), *self._in_flight.values()]
        if self._due:
            candidates.append(self._due[0][0])
        return min(candidates)

    async def run(self) -> None:
        """Play the plan until cancelled (or the run's end, after which it only keeps time)."""
        for contact in self.plan.contacts:
            self._schedule(contact.at, self._contact_job(contact))
        for case in self.plan.cases:
            self._schedule(case.steps[0].at, self._step_job(case, 0, ""))
        beats = asyncio.create_task(self._heartbeats())
        try:
            while True:
                now = self.clock.now()
                while self._due and self._due[0][0] <= now:
                    at, _, job = heapq.heappop(self._due)
                    task = asyncio.create_task(self._run_job(job))
                    self._in_flight[task] = at
                    task.add_done_callback(self._in_flight.pop)
                await asyncio.sleep(0.02)
        finally:
            beats.cancel()
            pending = [beats, *self._in_flight]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for channel in self._channels:
                await channel.close()

    async def _run_job(self, job: Job) -> None:
        async with self._slots:
            await job()

    async def _heartbeats(self) -> None:
        last: datetime | None = None
        # One producer for the run (a heartbeat goes out twice a second); stopped however the run ends.
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True)
        try:
            await producer.start()
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY)
                at = self.low_water() - timedelta(seconds=1)
                if last is None or at > last:
                    await send_heartbeats(self._bootstrap, at, SOURCE, datetime.now(timezone.utc), producer=producer)
                    last = self.progress.heartbeat_at = at
        finally:
            await producer.stop()

    async def _call(self, method: str, token: str, request) -> object | None:
        """One call with retries on UNAVAILABLE (same request id); None when it is refused."""
        self.progress.calls += 1
        for attempt in range(RETRIES):
            try:
                return await getattr(self._stub(token), method)(request, timeout=15)
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        and attempt < RETRIES - 1:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                self.progress.failed_calls += 1
                self.progress.last_error = f"{method}: {error.code().name}: {error.details()}"
                return None
        return None

    def _contact_job(self, contact: Contact) -> Job:
        async def job() -> None:
            request = pb.RecordContactRequest(
                request_id=f"sim-contact-{contact.case_id}-{int(contact.at.timestamp())}",
                customer_ref=contact.customer_ref, case_id=contact.case_id,
                channel=types_pb2.ContactChannel.Value(f"CONTACT_CHANNEL_{contact.channel.upper()}"),
                contacted_at=to_timestamp(contact.at), reason=contact.reason.replace("_", " "))
            if await self._call("RecordContact", AGENT_TOKEN, request) is not None:
                self.progress.contacts += 1
                if contact.department:
                    self.progress.callbacks += 1
                    self.progress.note(contact.at, "callback",
                                       f"{contact.case_id} customer calls again ({contact.department} holds it)")
        return job

    def _step_job(self, case: Case, index: int, handoff_id: str) -> Job:
        async def job() -> None:
            next_id = await self._perform(case, index, handoff_id)
            if next_id and index + 1 < len(case.steps):
                self._schedule(case.steps[index + 1].at, self._step_job(case, index + 1, next_id))
        return job

    async def _perform(self, case: Case, index: int, handoff_id: str) -> str:
        """Make step `index` of `case`; the leg the case is on afterwards ("" when the call failed)."""
        step = case.steps[index]
        request_id = f"sim-{case.case_id}-{index}"
        at = to_timestamp(step.at)
        token = department_token(step.department)
        legs = self.progress.open_legs
        if step.action == CREATE:
            leg = await self._call("CreateHandoff", AGENT_TOKEN, pb.CreateHandoffRequest(
                request_id=request_id, case_id=case.case_id, customer_ref=case.customer_ref,
                department=step.department, priority=types_pb2.Priority.Value(f"PRIORITY_{case.priority}"),
                summary=f"{case.channel} contact handed to {step.department}", occurred_at=at))
            if leg is None:
                return ""
            legs[leg.handoff_id] = OpenLeg(leg.handoff_id, case.case_id, step.department, step.at)
            return leg.handoff_id
        if step.action == ACKNOWLEDGE:
            done = await self._call("AcknowledgeHandoff", token, pb.AcknowledgeHandoffRequest(
                request_id=request_id, handoff_id=handoff_id, occurred_at=at))
        elif step.action == STATUS:
            done = await self._call("UpdateHandoffStatus", token, pb.UpdateHandoffStatusRequest(
                request_id=request_id, handoff_id=handoff_id, occurred_at=at,
                status=types_pb2.LegStatus.Value(f"LEG_STATUS_{step.status}")))
        elif step.action == TRANSFER:
            moved = await self._call("TransferHandoff", token, pb.TransferHandoffRequest(
                request_id=request_id, handoff_id=handoff_id, to_department=step.to,
                reason=f"needs {step.to}", occurred_at=at))
            if moved is None:
                return ""
            legs.pop(handoff_id, None)
            legs[moved.opened.handoff_id] = OpenLeg(moved.opened.handoff_id, case.case_id, step.to, step.at)
            self.progress.note(step.at, "transfer", f"{case.case_id} {step.department} -> {step.to}")
            return moved.opened.handoff_id
        elif step.action == RESOLVE:
            done = await self._call("ResolveHandoff", token, pb.ResolveHandoffRequest(
                request_id=request_id, handoff_id=handoff_id, resolution="done", occurred_at=at))
            if done is not None:
                legs.pop(handoff_id, None)
        else:
            raise ValueError(f"unknown step {step.action}")
        return handoff_id if done is not None else ""
