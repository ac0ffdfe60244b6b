"""Delivery through the channel gateways: a deadline per call, retries with backoff and
jitter, then a `failed` event and the DLQ.

A gateway call is I/O that no Kafka transaction can take back, so deliveries happen
between transactions, never inside one:

1. the batch that decides a delivery writes it to the `pending` table; it is attempted only
   once that batch is committed (`seal` at the end of the batch, promoted at the next);
2. attempts run on the delivery loop (`run`), off the engine's thread, the deliveries that
   fall due together sent to each gateway in batches (one DeliverBatch call per up to
   BATCH deliveries); their outcomes wait in a queue;
3. the next batch takes the outcomes (`tick`) and records each in its transaction: a
   `delivered` or `failed` event, the `deliveries` table, the `pending` entry removed or
   moved to its next attempt.

A worker killed between 2 and 3 finds the delivery still pending after its restart and
calls the gateway again with the same delivery id: gateways deduplicate by that id (and
remember it across their own restarts), so the receiver hears it once. Nothing is read
back from notifications.v1.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Coroutine, MutableMapping
from datetime import datetime
from typing import Any

from common.clock import Clock
from common.dueindex import DueIndex
from notify import metrics
from notify.adapters import codec
from notify.adapters.gateways import Delivery, Gateways, Outcome
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import Job, job_from, job_value
from notify.adapters.stores import Place
from notify.domain.delivery import call_deadline, jitter_source, next_attempt

log = logging.getLogger(__name__)
Send = Callable[[str, bytes], None]
DeadLetter = Callable[[Job, bytes, str], None]
# Starts a coroutine on the delivery loop; what it returns comes back through the queue.
Run = Callable[[Coroutine[Any, Any, None]], None]
MIN_CALL_SECONDS = 0.05
# Deliveries in flight at once, and per gateway call: under load the queue fills while calls
# are under way, so each call carries up to BATCH of what fell due. Attempts start, and their
# outcomes are recorded, only between the engine's batches, and a delivery holds its place
# until its outcome is recorded: so the limit is what one batch (the engine's max_batch,
# 2,000 records) may decide. At 256, a burst's deliveries went out at 256 per batch while
# stage 1 worked through it. The gateways bound what they send downstream at once (webhook:
# 100 connections; e-mail: SMTP_CONNECTIONS); the rest wait their turn within their call's
# deadline.
IN_FLIGHT = 2048
BATCH = 64
# While gateway calls are under way, the engine comes back this often to record their outcomes.
OUTCOME_POLL_S = 0.01


class Deliverer:
    def __init__(self, gateways: Gateways, routing: RoutingConfig, done: MutableMapping[str, str],
                 pending: MutableMapping[str, dict], send: Send, dead_letter: DeadLetter, clock: Clock,
                 run: Run, concurrency: int = IN_FLIGHT, batch: int = BATCH, place: Place | None = None) -> None:
        self._gateways = gateways
        self._routing = routing
        self._done = done
        self._pending = pending
        self._send = send
        self._dead_letter = dead_letter
        self._clock = clock
        self._run = run
        self._concurrency = concurrency
        self._batch = batch
        self._place = place or Place()
        self._queue = DueIndex()
        # The jobs decided since the last restore, so an attempt need not parse its `pending`
        # entry back (the entry stays the record a restart or an abort starts from).
        self._jobs: dict[str, Job] = {}
        self._fresh: list[Job] = []      # decided by the batch under way
        self._sealed: list[Job] = []     # decided by the batch being committed
        self._in_flight: set[str] = set()
        self._outcomes: deque[tuple[Job, str, Outcome]] = deque()
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self._fresh) + len(self._sealed) + len(self._queue)

    def schedule(self, job: Job) -> None:
        """A delivery the batch under way decided: attempted once that batch is committed."""
        self._fresh.append(job)
        self._jobs[job.delivery_id] = job

    def seal(self) -> None:
        """The batch is about to commit: what it decided may be attempted from the next batch on."""
        self._sealed.extend(self._fresh)
        self._fresh.clear()

    def restore(self, owned: frozenset[int]) -> None:
        """Forget everything in memory and take the committed `pending` entries of `owned` again."""
        self._queue.clear()
        self._jobs.clear()
        self._fresh.clear()
        self._sealed.clear()
        for key, value in list(self._pending.items()):
            if value["partition"] in owned and not self._done.get(key):
                job = job_from(key, value)
                self._queue.add(job.next_attempt_at or job.first_attempt_at, key)

    def committed(self, owned: frozenset[int]) -> None:
        """The batch that decided the sealed deliveries is committed: attempt them now."""
        self._start_due(owned)

    def wake_s(self) -> float | None:
        """How soon a pass is wanted: outcomes to record, calls under way, or the next attempt."""
        if self._outcomes:
            return 0.0
        if self._in_flight:
            return OUTCOME_POLL_S
        if self._sealed:
            return 0.0
        earliest = self._queue.next_deadline()
        return None if earliest is None else (earliest - self._clock.now()).total_seconds()

    def tick(self, owned: frozenset[int]) -> None:
        """Record the outcomes that came back, then start the attempts that have fallen due (in
        the room those outcomes made)."""
        self._record_outcomes(owned)
        self._start_due(owned)

    def _start_due(self, owned: frozenset[int]) -> None:
        for job in self._sealed:
            self._queue.add(job.first_attempt_at, job.delivery_id)
        self._sealed.clear()
        now = self._clock.now()
        # One call per gateway kind and deadline: a delivery near the end of its retry budget
        # goes on its own rather than cut the deadline of the others.
        calls: dict[tuple[str, float], list[tuple[Job, str]]] = {}
        # Only what there is room for leaves the queue: the rest wait in their places, not
        # popped and put back on every pass while a burst is under way.
        while (room := self._concurrency - len(self._in_flight)) > 0:
            due = self._queue.pop_due(now, room)
            if not due:
                break
            for delivery_id in due:
                if delivery_id in self._in_flight:
                    continue
                job = self._job(delivery_id)
                if job is None or job.partition not in owned or self._done.get(delivery_id):
                    continue
                self._place.partition = job.partition
                if route := self._route(job, now):
                    kind, target, timeout = route
                    self._in_flight.add(job.delivery_id)
                    calls.setdefault((kind, timeout), []).append((job, target))
        for (kind, timeout), starts in calls.items():
            for first in range(0, len(starts), self._batch):
                self._run(self._attempt(kind, starts[first:first + self._batch], timeout))

    def _job(self, delivery_id: str) -> Job | None:
        """The pending delivery: as decided in memory, else read from its `pending` entry."""
        if delivery_id not in self._pending:
            self._jobs.pop(delivery_id, None)
            return None
        job = self._jobs.get(delivery_id)
        if job is None:
            job = self._jobs[delivery_id] = job_from(delivery_id, self._pending[delivery_id])
        return job

    def _record_outcomes(self, owned: frozenset[int]) -> None:
        while self._outcomes:
            job, kind, outcome = self._outcomes.popleft()
            self._in_flight.discard(job.delivery_id)
            if job.partition in owned and job.delivery_id in self._pending:
                self._place.partition = job.partition
                self._record(job, kind, outcome)

    def _route(self, job: Job, now: datetime) -> tuple[str, str, float] | None:
        """The gateway kind, target and call deadline of the job's channel; None (and the job
        failed) when it has none."""
        receiver = self._routing.receivers.get(job.notification.receiver)
        channel = next((c for c in receiver.channels if c.name == job.channel), None) if receiver else None
        if channel is None:
            self._fail(job, "", f"receiver {job.notification.receiver!r} has no channel {job.channel!r}")
            return None
        if not self._gateways.configured(channel.kind):
            if channel.kind not in self._warned:
                self._warned.add(channel.kind)
                log.warning("no %s gateway configured: %s deliveries fail", channel.kind, channel.kind)
            self._fail(job, channel.kind, f"no {channel.kind} gateway is configured")
            return None
        timeout = max((call_deadline(self._routing.retry, job.first_attempt_at, now) - now).total_seconds(),
                      MIN_CALL_SECONDS)
        return channel.kind, channel.target, timeout

    async def _attempt(self, kind: str, starts: list[tuple[Job, str]], timeout: float) -> None:
        """One gateway call for `starts`; each outcome to the queue."""
        jobs = [job for job, _ in starts]
        try:
            outcomes = await self._gateways.deliver(
                kind, [Delivery(job.delivery_id, target, job.encoded) for job, target in starts], timeout)
        except Exception as error:  # noqa: BLE001 - whatever breaks, the engine hears of it and retries
            outcomes = [Outcome(False, retryable=True, reason=f"{type(error).__name__}: {error}")] * len(jobs)
        self._outcomes.extend(zip(jobs, [kind] * len(jobs), outcomes))

    def _record(self, job: Job, kind: str, outcome: Outcome) -> None:
        job.attempts += 1
        now = self._clock.now()
        if outcome.delivered:
            self._send(job.notification.receiver, codec.encode_delivered(
                job.delivery_id, job.notification, job.channel, job.attempts, now, carry=False))
            self._finish(job, "delivered")
            metrics.notifications(kind, "delivered").inc()
            metrics.delivery_latency(kind).observe(max((now - job.notification.occurred_at).total_seconds(), 0.0))
            return
        retry_at = next_attempt(self._routing.retry, job.attempts, job.first_attempt_at, now,
                                jitter_source(job.delivery_id, job.attempts)) if outcome.retryable else None
        if retry_at is None:
            self._fail(job, kind, outcome.reason)
            return
        metrics.RETRIES.labels(kind).inc()
        log.info("delivery %s on %s failed (%s); attempt %d at %s", job.delivery_id, kind, outcome.reason,
                 job.attempts + 1, retry_at.isoformat())
        job.next_attempt_at = retry_at
        self._pending[job.delivery_id] = job_value(job)
        self._queue.add(retry_at, job.delivery_id)

    def _fail(self, job: Job, kind: str, reason: str) -> None:
        """The retry budget is spent (or retrying cannot help): a `failed` event and the DLQ."""
        now = self._clock.now()
        self._send(job.notification.receiver, codec.encode_failed(
            job.delivery_id, job.notification, job.channel, reason, job.attempts, now))
        self._dead_letter(job, codec.encode_requested(job.notification, [job.channel], now), reason)
        self._finish(job, "failed")
        metrics.notifications(kind or "unknown", "failed").inc()

    def _finish(self, job: Job, outcome: str) -> None:
        self._done[job.delivery_id] = outcome
        self._jobs.pop(job.delivery_id, None)
        if job.delivery_id in self._pending:
            del self._pending[job.delivery_id]
