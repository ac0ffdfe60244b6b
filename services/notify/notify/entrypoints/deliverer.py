"""Delivery through the channel gateways: a deadline per call, retries with backoff and
jitter, then a `failed` event and the DLQ.

Runs beside the stage-2 agent and never writes tables (a faust timer cannot): jobs wait in
an in-memory queue, rebuilt from the `pending` table after a restart or a rebalance, and
every outcome is an event on notifications.v1 that the agent reads back into the
`deliveries` table. A job whose delivery id is recorded there is never sent again; the
gateways also drop a repeated delivery id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.gateways import Gateways
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import Job
from notify.domain.delivery import call_deadline, jitter_source, next_attempt
from common.dueindex import DueIndex

log = logging.getLogger(__name__)
Send = Callable[[str, bytes], Awaitable[None]]
DeadLetter = Callable[[Job, bytes, str], Awaitable[None]]
MIN_CALL_SECONDS = 0.05


class Deliverer:
    def __init__(self, gateways: Gateways, routing: RoutingConfig, recorded: Mapping[str, str], send: Send,
                 dead_letter: DeadLetter, clock: Clock, concurrency: int = 64) -> None:
        self._gateways = gateways
        self._routing = routing
        self._recorded = recorded
        self._send = send
        self._dead_letter = dead_letter
        self._clock = clock
        self._queue = DueIndex()
        self._jobs: dict[str, Job] = {}
        self._finished: set[str] = set()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self._jobs)

    def schedule(self, job: Job, at: datetime | None = None) -> None:
        """Deliver `job` at `at` (now by default), unless it is already under way."""
        if job.delivery_id in self._jobs or job.delivery_id in self._finished:
            return
        self._jobs[job.delivery_id] = job
        self._queue.add(at or self._clock.now(), job.delivery_id)

    def recorded(self, delivery_id: str) -> None:
        """The agent read back this delivery's outcome: the job is done on every replica."""
        self._jobs.pop(delivery_id, None)
        self._finished.discard(delivery_id)

    def clear(self) -> None:
        self._queue.clear()
        self._jobs.clear()
        self._finished.clear()

    def tick(self, owned: frozenset[int]) -> None:
        """Start every attempt that has fallen due on a partition this worker owns."""
        for delivery_id in self._queue.pop_due(self._clock.now()):
            job = self._jobs.get(delivery_id)
            if job is None or delivery_id in self._in_flight:
                continue
            if job.partition not in owned or self._recorded.get(delivery_id):
                self._jobs.pop(delivery_id, None)
                continue
            task = asyncio.create_task(self._attempt(job), name=f"deliver-{delivery_id}")
            self._in_flight[delivery_id] = task
            task.add_done_callback(lambda _t, key=delivery_id: self._in_flight.pop(key, None))

    async def _attempt(self, job: Job) -> None:
        receiver = self._routing.receivers.get(job.notification.receiver)
        channel = next((c for c in receiver.channels if c.name == job.channel), None) if receiver else None
        if channel is None:
            await self._fail(job, "", f"receiver {job.notification.receiver!r} has no channel {job.channel!r}")
            return
        if not self._gateways.configured(channel.kind):
            if channel.kind not in self._warned:
                self._warned.add(channel.kind)
                log.warning("no %s gateway configured: %s deliveries fail", channel.kind, channel.kind)
            await self._fail(job, channel.kind, f"no {channel.kind} gateway is configured")
            return
        async with self._slots:
            now = self._clock.now()
            timeout = (call_deadline(self._routing.retry, job.first_attempt_at, now) - now).total_seconds()
            outcome = await self._gateways.deliver(job.delivery_id, channel.kind, channel.target, job.notification,
                                                   max(timeout, MIN_CALL_SECONDS))
        job.attempts += 1
        now = self._clock.now()
        if outcome.delivered:
            await self._send(job.notification.receiver, codec.encode_delivered(
                job.delivery_id, job.notification, job.channel, job.attempts, now, carry=False))
            self._finished.add(job.delivery_id)
            metrics.NOTIFICATIONS.labels(channel.kind, "delivered").inc()
            metrics.DELIVERY_LATENCY.labels(channel.kind).observe(
                max((now - job.notification.occurred_at).total_seconds(), 0.0))
            return
        retry_at = next_attempt(self._routing.retry, job.attempts, job.first_attempt_at, now,
                                jitter_source(job.delivery_id, job.attempts)) if outcome.retryable else None
        if retry_at is None:
            await self._fail(job, channel.kind, outcome.reason)
            return
        metrics.RETRIES.labels(channel.kind).inc()
        log.info("delivery %s on %s failed (%s); attempt %d at %s", job.delivery_id, channel.kind, outcome.reason,
                 job.attempts + 1, retry_at.isoformat())
        self._queue.add(retry_at, job.delivery_id)

    async def _fail(self, job: Job, kind: str, reason: str) -> None:
        """The retry budget is spent (or retrying cannot help): a `failed` event and the DLQ."""
        now = self._clock.now()
        await self._send(job.notification.receiver, codec.encode_failed(
            job.delivery_id, job.notification, job.channel, reason, job.attempts, now))
        await self._dead_letter(job, codec.encode_requested(job.notification, [job.channel], now), reason)
        self._finished.add(job.delivery_id)
        metrics.NOTIFICATIONS.labels(kind or "unknown", "failed").inc()

    async def settle(self) -> None:
        """Wait for the attempts under way (tests, and a clean stop)."""
        await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._gateways.close()
