"""Delivery through a gateway: deadline per call, retries with backoff, then `failed` and the DLQ."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from handoff.v1 import notifications_pb2

from notify.adapters.gateways import Outcome
from notify.adapters.state import Job, job_value
from notify.domain.notifications import BREACH, Notification
from notify.entrypoints.deliverer import Deliverer
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import Clock, routing_of, run_now

ROUTING = """
receivers:
  - name: billing
    channels: [{type: webhook, name: team-chat, url: "http://127.0.0.1:9/hooks/b"}, {type: email, to: [a@example.org]}]
route: {receiver: billing}
delivery: {call_timeout: 2s, initial_backoff: 1s, max_backoff: 4s, jitter: 0, max_attempts: 3, max_elapsed: 1h}
"""
UNAVAILABLE = Outcome(False, retryable=True, reason="UNAVAILABLE: connection refused")


class ScriptedGateways:
    def __init__(self, *outcomes: Outcome, configured: bool = True) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple] = []
        self.batches: list[list[str]] = []
        self._configured = configured

    def configured(self, kind: str) -> bool:
        return self._configured

    async def deliver(self, kind, deliveries, timeout) -> list[Outcome]:
        self.batches.append([d.delivery_id for d in deliveries])
        self.calls.extend((d.delivery_id, kind, d.target, timeout) for d in deliveries)
        return [self.outcomes.pop(0) for _ in deliveries]

    async def close(self) -> None:
        pass


NOTE = Notification("n-1", "breach:h-1:ack", BREACH, "billing", "billing", "HIGH", "h-1", "case-1", "cust-1",
                    "ack", "t", "b", T0)


@pytest.fixture
def run(tmp_path: Path):
    routing = routing_of(tmp_path, ROUTING)

    def deliver(gateways: ScriptedGateways, ticks: list[timedelta], recorded: dict | None = None):
        clock, sent, dead = Clock(), [], []

        def send(key, value):
            sent.append(notifications_pb2.NotificationEvent.FromString(value))

        def dead_letter(job, value, reason):
            dead.append((job.delivery_id, reason, notifications_pb2.NotificationEvent.FromString(value)))

        job = Job("d-1", NOTE, "team-chat", 0, 7, T0)
        pending = {"d-1": job_value(job)}
        deliverer = Deliverer(gateways, routing, recorded or {}, pending, send, dead_letter, clock, run_now)
        deliverer.schedule(job)
        deliverer.seal()  # the batch that decided it is committed
        for offset in ticks:
            clock.at = T0 + offset
            deliverer.tick(frozenset({0}))  # starts what is due
            deliverer.tick(frozenset({0}))  # records its outcome
        return sent, dead

    return deliver


def test_a_delivery_is_one_gateway_call_with_the_delivery_id_target_and_deadline(run) -> None:
    gateways = ScriptedGateways(Outcome(True, receipt="202"))
    sent, dead = run(gateways, [timedelta(0)])
    assert gateways.calls == [("d-1", "webhook", "http://127.0.0.1:9/hooks/b", 2.0)]
    [event] = sent
    assert (event.delivered.delivery_id, event.delivered.channel, event.delivered.attempts) == ("d-1", "team-chat", 1)
    assert not event.delivered.HasField("notification") and dead == []


def test_a_retryable_failure_is_tried_again_after_the_backoff(run) -> None:
    gateways = ScriptedGateways(UNAVAILABLE, UNAVAILABLE, Outcome(True))
    # backoff 1 s, then 2 s: nothing is due at 0.5 s or 2.5 s
    sent, _ = run(gateways, [timedelta(0), timedelta(seconds=0.5), timedelta(seconds=1), timedelta(seconds=2.5),
                             timedelta(seconds=3)])
    assert len(gateways.calls) == 3
    assert [e.delivered.attempts for e in sent] == [3]


def test_the_spent_retry_budget_gives_a_failed_event_and_a_dlq_record(run) -> None:
    gateways = ScriptedGateways(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    sent, dead = run(gateways, [timedelta(seconds=s) for s in (0, 1, 3, 10)])
    [event] = sent
    assert (event.failed.delivery_id, event.failed.attempts) == ("d-1", 3)
    assert event.failed.reason.startswith("UNAVAILABLE")
    [(delivery, reason, record)] = dead
    assert delivery == "d-1" and record.requested.notification.notification_id == "n-1"


def test_a_permanent_failure_is_not_retried(run) -> None:
    gateways = ScriptedGateways(Outcome(False, retryable=False, reason="FAILED_PRECONDITION: HTTP 404"))
    sent, dead = run(gateways, [timedelta(seconds=s) for s in (0, 5, 10)])
    assert len(gateways.calls) == 1
    assert [e.failed.reason for e in sent] == ["FAILED_PRECONDITION: HTTP 404"] and len(dead) == 1


def test_a_channel_without_a_configured_gateway_fails_with_that_reason(run) -> None:
    sent, dead = run(ScriptedGateways(configured=False), [timedelta(0)])
    assert [e.failed.reason for e in sent] == ["no webhook gateway is configured"] and len(dead) == 1


def test_a_delivery_recorded_as_done_is_not_made_again(run) -> None:
    gateways = ScriptedGateways(Outcome(True))
    sent, _ = run(gateways, [timedelta(0)], recorded={"d-1": "delivered"})
    assert gateways.calls == [] and sent == []


def test_a_delivery_is_attempted_only_once_the_batch_that_decided_it_is_committed(tmp_path: Path) -> None:
    routing = routing_of(tmp_path, ROUTING)
    gateways = ScriptedGateways(Outcome(True))
    job = Job("d-1", NOTE, "team-chat", 0, 7, T0)
    deliverer = Deliverer(gateways, routing, {}, {"d-1": job_value(job)}, lambda key, value: None,
                          lambda *_: None, Clock(), run_now)
    deliverer.schedule(job)
    deliverer.tick(frozenset({0}))  # the batch deciding it has not committed yet
    assert gateways.calls == []
    deliverer.seal()
    deliverer.tick(frozenset({0}))
    assert [call[0] for call in gateways.calls] == ["d-1"]


def test_an_outcome_is_recorded_in_the_tables_and_a_restart_resumes_the_backoff(tmp_path: Path) -> None:
    routing = routing_of(tmp_path, ROUTING)
    clock, done, job = Clock(), {}, Job("d-1", NOTE, "team-chat", 0, 7, T0)
    pending = {"d-1": job_value(job)}
    deliverer = Deliverer(ScriptedGateways(UNAVAILABLE), routing, done, pending, lambda key, value: None,
                          lambda *_: None, clock, run_now)
    deliverer.restore(frozenset({0}))
    deliverer.tick(frozenset({0}))
    deliverer.tick(frozenset({0}))
    assert pending["d-1"]["attempts"] == 1 and pending["d-1"]["next"] == (T0 + timedelta(seconds=1)).isoformat()
    # a restarted worker takes the pending entry as committed: nothing before its next attempt
    gateways = ScriptedGateways(Outcome(True))
    restarted = Deliverer(gateways, routing, done, pending, lambda key, value: None, lambda *_: None, clock, run_now)
    restarted.restore(frozenset({0}))
    restarted.tick(frozenset({0}))
    assert gateways.calls == []
    clock.at = T0 + timedelta(seconds=1)
    restarted.tick(frozenset({0}))
    restarted.tick(frozenset({0}))
    assert len(gateways.calls) == 1 and done == {"d-1": "delivered"} and pending == {}


def test_deliveries_due_together_go_out_in_batches_within_the_in_flight_limit(tmp_path: Path) -> None:
    routing = routing_of(tmp_path, ROUTING)
    started = []
    gateways = ScriptedGateways(*[Outcome(True)] * 10)
    jobs = [Job(f"d-{n}", NOTE, "team-chat", 0, 7, T0) for n in range(10)]
    deliverer = Deliverer(gateways, routing, {}, {job.delivery_id: job_value(job) for job in jobs},
                          lambda key, value: None, lambda *_: None, Clock(), started.append, concurrency=7, batch=3)
    for job in jobs:
        deliverer.schedule(job)
    deliverer.seal()
    deliverer.tick(frozenset({0}))
    # seven in flight, in calls of at most three; the other three wait for room
    assert len(started) == 3
    for call in started:
        run_now(call)
    assert gateways.batches == [["d-0", "d-1", "d-2"], ["d-3", "d-4", "d-5"], ["d-6"]]
    deliverer.tick(frozenset({0}))  # records the seven outcomes, then starts the rest
    for call in started[3:]:
        run_now(call)
    assert gateways.batches[3:] == [["d-7", "d-8", "d-9"]]
    deliverer.tick(frozenset({0}))
    assert len(deliverer) == 0 and len(gateways.calls) == 10


def test_a_delivery_whose_budget_cuts_its_deadline_goes_in_a_call_of_its_own(tmp_path: Path) -> None:
    routing = routing_of(tmp_path, ROUTING)
    started = []
    gateways = ScriptedGateways(*[Outcome(True)] * 3)
    # max_elapsed is 1 h: the last job has half a second of it left, the others the whole call_timeout
    jobs = [Job("d-0", NOTE, "team-chat", 0, 7, T0), Job("d-1", NOTE, "team-chat", 0, 8, T0),
            Job("d-late", NOTE, "team-chat", 0, 9, T0 - timedelta(hours=1) + timedelta(seconds=0.5))]
    deliverer = Deliverer(gateways, routing, {}, {job.delivery_id: job_value(job) for job in jobs},
                          lambda key, value: None, lambda *_: None, Clock(), started.append)
    for job in jobs:
        deliverer.schedule(job)
    deliverer.seal()
    deliverer.tick(frozenset({0}))
    for call in started:
        run_now(call)
    assert sorted(gateways.batches) == [["d-0", "d-1"], ["d-late"]]
    assert sorted({(call[0], call[3]) for call in gateways.calls}) == [("d-0", 2.0), ("d-1", 2.0), ("d-late", 0.5)]
