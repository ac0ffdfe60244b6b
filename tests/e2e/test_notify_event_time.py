"""Escalation on event time, end to end: a day of history imported with `handoffctl import`,
sla and notify on event time (SLA_CLOCK=event, NOTIFY_CLOCK=event), real gateways and an
HTTP receiver. The timeline is the one the day had: steps fall due at their instants of the
day, whenever the replay reaches them, and an acknowledgement stops what came after it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.codec import from_timestamp
from notify.domain.notifications import RESOLVED_AFTER_BREACH
from tests.e2e.test_notify_helpers import counter, notification_events, notify_stack
from tests.support import around_the_clock, unique, wait_for

pytestmark = pytest.mark.e2e

POLICIES = around_the_clock("1h", "3d")
# Billing's breaches escalate to the lead after 30 minutes, the head after 2 hours and the
# duty manager after 8 hours; no reminders within the day.
ROUTING = """
receivers:
  - name: ops
    channels: [{{type: log, stream: ops}}]
  - name: billing
    channels: [{{type: subscription}}, {{type: webhook, url: "{hook}/billing"}}]
    escalation:
      when: [kind=breach]
      levels:
        - {{after: 30m, receiver: billing-lead}}
        - {{after: 2h, receiver: billing-head}}
        - {{after: 8h, receiver: duty-manager}}
  - name: billing-lead
    channels: [{{type: webhook, url: "{hook}/billing-lead"}}]
  - name: billing-head
    channels: [{{type: webhook, url: "{hook}/billing-head"}}, {{type: email, to: [head@example.org]}}]
  - name: duty-manager
    channels: [{{type: webhook, url: "{hook}/duty-manager"}}]
route:
  receiver: ops
  group_wait: 0s
  repeat_interval: 24h
  routes:
    - {{matchers: [department=billing], receiver: billing}}
"""
DAY = datetime(2025, 3, 3, tzinfo=timezone.utc)
COLUMNS = ("handoff_id,case_id,customer_ref,department,priority,category,summary,created_at,acknowledged_at,"
           "resolved_at,cancelled_at,transferred_to,next_handoff_id,previous_handoff_id")


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def row(handoff_id: str, created: float, acknowledged: float | None = None, resolved: float | None = None) -> str:
    times = [at(created).isoformat()] + ["" if t is None else at(t).isoformat() for t in (acknowledged, resolved)]
    return f"{handoff_id},case-{handoff_id},{unique('cust')},billing,normal,refund,,{','.join(times)},,,,"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    workdir = tmp_path_factory.mktemp("notify-event-time")
    ignored, stopped, late = unique("et-ignored"), unique("et-stopped"), unique("et-late")
    handoffs = workdir / "handoffs.csv"
    handoffs.write_text("\n".join([
        COLUMNS,
        row(ignored, 9),            # nobody acknowledges it: breached at 10:00
        row(stopped, 9, 11, 13),    # breached at 10:00, acknowledged at 11:00, resolved at 13:00
        row(late, 19.5, 19.75),     # acknowledged in time; the day's last instant, 19:45
    ]) + "\n")
    env = {"SLA_CLOCK": "event", "NOTIFY_CLOCK": "event"}
    with notify_stack(workdir, ROUTING, policies=POLICIES, env=env) as (stack, hooks):
        imported = subprocess.run(
            [sys.executable, "-m", "handoffctl.main", "import", "--handoffs", str(handoffs), "--quiet"],
            env={**os.environ, "KAFKA_BOOTSTRAP": stack.bootstrap}, capture_output=True, text=True, timeout=120)
        assert imported.returncode == 0, imported.stderr
        yield stack, hooks, ignored, stopped


def breach_of(hooks, handoff_id: str) -> dict:
    assert wait_for(lambda: any(r["kind"] == "breach" for r in hooks.at("billing", handoff_id)), timeout=60)
    return next(r for r in hooks.at("billing", handoff_id) if r["kind"] == "breach")


def steps_of(stack, notification_id: str, count: int) -> list:
    return notification_events(stack, "escalated", lambda found: len(found) >= count, timeout=30,
                               match=lambda e: e.escalated.notification_id == notification_id)


def test_an_unacknowledged_breach_escalates_at_the_instants_of_the_day(replayed) -> None:
    stack, hooks, ignored, _ = replayed
    started = datetime.now(timezone.utc)
    breach = breach_of(hooks, ignored)
    # then the lead, the head and the duty manager are told, each once, by webhook
    for hook, level in (("billing-lead", 1), ("billing-head", 2), ("duty-manager", 3)):
        assert wait_for(lambda: hooks.at(hook, ignored), timeout=60), hook
        assert [r["escalation_level"] for r in hooks.at(hook, ignored)] == [level]
    # and each step is on notifications.v1 once, stamped with the instant of the day it fell due
    steps = steps_of(stack, breach["notification_id"], 3)
    assert max(Counter(e.envelope.event_id for e in steps).values()) == 1
    assert sorted((e.escalated.level, from_timestamp(e.envelope.occurred_at)) for e in steps) == [
        (1, at(10.5)), (2, at(12)), (3, at(18))]
    # while recorded now, by the replay
    assert all(from_timestamp(e.envelope.recorded_at) > started - timedelta(minutes=10) for e in steps)


def test_acknowledging_the_leg_stops_what_would_have_come_after_it(replayed) -> None:
    stack, hooks, _, stopped = replayed
    breach = breach_of(hooks, stopped)
    # then the lead was told (10:30, before the acknowledgement at 11:00) and nobody after
    assert wait_for(lambda: hooks.at("billing-lead", stopped), timeout=60)
    steps = steps_of(stack, breach["notification_id"], 1)
    assert [(e.escalated.level, from_timestamp(e.envelope.occurred_at)) for e in steps] == [(1, at(10.5))]
    acknowledged = notification_events(
        stack, "acknowledged", lambda found: bool(found), timeout=30,
        match=lambda e: e.acknowledged.notification_id == breach["notification_id"])
    acknowledgement = [e for e in notification_events(
        stack, "requested", lambda found: bool(found), timeout=30,
        match=lambda e: e.requested.notification.notification_id == breach["notification_id"])]
    # (acknowledged at 11:00: by its own event, or carried by the request if that came late)
    carried = [from_timestamp(e.requested.acknowledged_at) for e in acknowledgement
               if e.requested.HasField("acknowledged_at")]
    assert carried == [at(11)] or [from_timestamp(e.envelope.occurred_at) for e in acknowledged] == [at(11)]
    # and the resolution of the breached leg is told to the department
    assert wait_for(lambda: any(r["kind"] == RESOLVED_AFTER_BREACH for r in hooks.at("billing", stopped)),
                    timeout=60)
    # when the replay's clock has passed every later step of the day (the ignored leg's duty
    # manager step at 18:00 is the last), the head and the duty manager still never heard of it
    assert wait_for(lambda: hooks.at("duty-manager"), timeout=60)
    assert hooks.at("billing-head", stopped) == [] and hooks.at("duty-manager", stopped) == []
    assert hooks.repeated_deliveries() == {}
    assert counter(stack, "notify", "handoff_escalations", level="3") >= 1
