"""A breach becomes one notification for the department holding the leg, with a stable id."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.conftest import T0
from notify.domain.notifications import BREACH
from notify.domain.requests import Leg, addressed, breach_notice

BREACH_OF_ACK = {"handoff_id": "h-1", "department": "billing", "clock": "ack", "deadline": T0}


def notify_breach(handoff_id: str, department: str, clock: str, deadline):
    """The notification the department holding the leg gets when its clock breaches."""
    leg = Leg(handoff_id, "case-1", "cust-1", department, "HIGH", "refund")
    return addressed(breach_notice(leg, clock, deadline), department)


def test_the_same_breach_read_twice_gives_the_same_notification():
    assert notify_breach(**BREACH_OF_ACK) == notify_breach(**dict(BREACH_OF_ACK))


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
    other = {**BREACH_OF_ACK, **change}

    assert notify_breach(**other).notification_id != notify_breach(**BREACH_OF_ACK).notification_id


def test_a_breach_notification_goes_to_the_department_and_says_what_breached():
    notification = notify_breach(**BREACH_OF_ACK)

    assert notification.kind == BREACH
    assert notification.receiver == "billing"
    assert notification.key == f"breach:h-1:ack:{T0.isoformat()}"
    assert notification.occurred_at == T0
    assert (notification.handoff_id, notification.case_id, notification.customer_ref) == ("h-1", "case-1", "cust-1")
    assert (notification.priority, notification.clock) == ("HIGH", "ack")
    assert "h-1" in notification.title and "ack" in notification.title
    assert "case-1" in notification.body and T0.isoformat() in notification.body
