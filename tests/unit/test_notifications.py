"""A breach becomes one notification for the department holding the leg, with a stable id."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.conftest import T0
from notify.domain.notifications import BREACH, Breach, notify_breach

BREACH_OF_ACK = Breach(
    sla_event_id="sla-1",
    handoff_id="h-1",
    case_id="case-1",
    customer_ref="cust-1",
    department="billing",
    priority="HIGH",
    category="refund",
    clock="ack",
    deadline=T0,
)


def test_the_same_breach_read_twice_gives_the_same_notification():
    assert notify_breach(BREACH_OF_ACK) == notify_breach(replace(BREACH_OF_ACK))


def test_the_same_breach_redelivered_under_another_sla_event_id_keeps_its_notification_id():
    # The id depends on what the breach is about, not on which record carried it.
    again = replace(BREACH_OF_ACK, sla_event_id="sla-2")

    assert notify_breach(again).notification_id == notify_breach(BREACH_OF_ACK).notification_id


@pytest.mark.parametrize(
    "change",
    [
        {"handoff_id": "h-2"},
        {"clock": "resolve"},
        {"deadline": T0 + timedelta(seconds=1)},
        {"department": "claims"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_different_breach_gives_a_different_notification_id(change):
    other = replace(BREACH_OF_ACK, **change)

    assert notify_breach(other).notification_id != notify_breach(BREACH_OF_ACK).notification_id


def test_a_breach_notification_goes_to_the_department_and_says_what_breached():
    notification = notify_breach(BREACH_OF_ACK)

    assert notification.kind == BREACH
    assert notification.receiver == "billing"
    assert notification.key == f"breach:h-1:ack:{T0.isoformat()}"
    assert notification.occurred_at == T0
    assert (notification.handoff_id, notification.case_id, notification.customer_ref) == ("h-1", "case-1", "cust-1")
    assert (notification.priority, notification.clock) == ("HIGH", "ack")
    assert "h-1" in notification.title and "ack" in notification.title
    assert "case-1" in notification.body and T0.isoformat() in notification.body
