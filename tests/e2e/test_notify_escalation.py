"""Escalation end to end, on a compressed timeline (lead after 4 s, head after 8 s, duty
manager after 16 s): real broker, services, gateways and an HTTP receiver checking the HMAC."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.test_notify_helpers import (
    acknowledge_leg, counter, create_leg, notification_events, notify_stack,
)
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with notify_stack(tmp_path_factory.mktemp("notify-escalation")) as env:
        yield env


def breach_of(hooks, handoff_id: str) -> dict | None:
    return next((r for r in hooks.at("billing", handoff_id) if r["kind"] == "breach"), None)


def escalations_of(stack, notification_id: str, until=lambda found: False, timeout: float = 5) -> list:
    return notification_events(stack, "escalated", until, timeout,
                               match=lambda e: e.escalated.notification_id == notification_id)


def test_a_breach_escalates_level_by_level_until_the_leg_is_acknowledged(env) -> None:
    stack, hooks = env
    # given a billing leg nobody acknowledges (ack target 3 s)
    leg = create_leg(stack, "billing")
    # then the team hears of the breach, on its webhook
    assert wait_for(lambda: breach_of(hooks, leg.handoff_id), timeout=30)
    breach = breach_of(hooks, leg.handoff_id)
    # and, unacknowledged, the lead after 4 s and the head after 8 s (by webhook, e-mail and log)
    assert wait_for(lambda: hooks.at("billing-lead", leg.handoff_id), timeout=15)
    assert wait_for(lambda: hooks.at("billing-head", leg.handoff_id), timeout=15)
    lead, head = hooks.at("billing-lead", leg.handoff_id)[0], hooks.at("billing-head", leg.handoff_id)[0]
    assert (lead["kind"], lead["escalation_level"]) == ("escalation", 1)
    assert (head["kind"], head["escalation_level"]) == ("escalation", 2)
    # when the department acknowledges the leg
    acknowledge_leg(stack, leg.handoff_id)
    # then the breach is acknowledged as such, and the duty manager (due after 16 s) never hears
    acknowledged = notification_events(
        stack, "acknowledged", lambda found: bool(found), timeout=20,
        match=lambda e: e.acknowledged.notification_id == breach["notification_id"])
    assert acknowledged[0].acknowledged.acknowledged_by == "leg acknowledged"
    time.sleep(12)
    assert hooks.at("duty-manager", leg.handoff_id) == []
    steps = escalations_of(stack, breach["notification_id"])
    assert sorted((e.escalated.level, e.escalated.to_receiver) for e in steps) == [
        (1, "billing-lead"), (2, "billing-head")]
    # and every delivery reached its receiver once
    assert hooks.repeated_deliveries() == {}
    assert hooks.bad_signatures == 0
    # and the metrics count the steps and the deliveries
    assert counter(stack, "notify", "handoff_escalations", level="2") >= 1
    assert counter(stack, "notify", "handoff_notifications", channel="webhook", outcome="delivered") >= 3
    assert counter(stack, "notify", "handoff_notifications", channel="subscription", outcome="delivered") >= 1


def test_notify_restarted_mid_escalation_loses_and_repeats_no_step(env) -> None:
    stack, hooks = env
    # given a breach that has escalated to the lead
    leg = create_leg(stack, "billing")
    assert wait_for(lambda: hooks.at("billing-lead", leg.handoff_id), timeout=40)
    breach = breach_of(hooks, leg.handoff_id)
    # when notify stops cleanly and comes back after the head's step fell due
    assert stack.services["notify"].stop(timeout=30) == 0
    time.sleep(6)
    stack.start_service("notify")
    # then the head and the duty manager are told, once each
    assert wait_for(lambda: hooks.at("duty-manager", leg.handoff_id), timeout=40)
    time.sleep(3)
    assert [r["escalation_level"] for r in hooks.at("billing-lead", leg.handoff_id)] == [1]
    assert [r["escalation_level"] for r in hooks.at("billing-head", leg.handoff_id)] == [2]
    assert [r["escalation_level"] for r in hooks.at("duty-manager", leg.handoff_id)] == [3]
    # and notifications.v1 holds each step once: none lost, none written twice
    steps = escalations_of(stack, breach["notification_id"], lambda found: len(found) >= 3)
    assert sorted(e.escalated.level for e in steps) == [1, 2, 3]
    assert max(Counter(e.envelope.event_id for e in steps).values()) == 1
    assert hooks.repeated_deliveries() == {}
