"""A leg's lifecycle: create opens it, acknowledge moves it on, apply folds events into legs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.conftest import T0
from handoff_svc.domain.legs import (
    AcknowledgeHandoff,
    CreateHandoff,
    HandoffAcknowledged,
    InvalidTransition,
    Leg,
    Priority,
    Status,
    acknowledge,
    apply,
    create,
)

CREATE = CreateHandoff(
    handoff_id="h-1",
    case_id="case-1",
    customer_ref="cust-1",
    department="billing",
    priority=Priority.HIGH,
    category="refund",
    summary="Refund not received",
    created_by="agent-7",
)
ACK = AcknowledgeHandoff(handoff_id="h-1", acknowledged_by="billing-3")


def open_leg() -> Leg:
    return create(CREATE, T0).leg


def test_create_opens_a_leg_with_the_commands_fields_at_the_given_instant():
    # when
    event = create(CREATE, T0)

    # then
    assert event.handoff_id == "h-1"
    assert event.leg == Leg(
        handoff_id="h-1",
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        priority=Priority.HIGH,
        category="refund",
        summary="Refund not received",
        status=Status.OPEN,
        created_at=T0,
        created_by="agent-7",
        acknowledged_at=None,
        updated_at=T0,
    )


ACKNOWLEDGEABLE = {Status.OPEN, Status.REOPENED}


@pytest.mark.parametrize("status", sorted(ACKNOWLEDGEABLE))
def test_acknowledge_records_who_and_when_for_an_open_or_reopened_leg(status):
    # given
    leg = replace(open_leg(), status=status)
    at = T0 + timedelta(minutes=20)

    # when
    event = acknowledge(leg, ACK, at)

    # then
    assert event == HandoffAcknowledged(
        handoff_id="h-1",
        customer_ref="cust-1",
        case_id="case-1",
        department="billing",
        acknowledged_by="billing-3",
        acknowledged_at=at,
    )


@pytest.mark.parametrize("status", sorted(set(Status) - ACKNOWLEDGEABLE))
def test_acknowledge_refuses_a_leg_in_any_other_state_and_names_that_state(status):
    # given
    leg = replace(open_leg(), status=status)

    # when
    with pytest.raises(InvalidTransition) as raised:
        acknowledge(leg, ACK, T0 + timedelta(minutes=20))

    # then
    assert raised.value.current is status
    assert status.value in str(raised.value)
    assert "h-1" in str(raised.value)


def test_apply_created_yields_the_new_leg_even_without_a_prior_leg():
    event = create(CREATE, T0)

    assert apply(None, event) == event.leg


def test_apply_acknowledged_marks_the_leg_acknowledged_at_that_instant():
    # given
    leg = open_leg()
    at = T0 + timedelta(minutes=20)

    # when
    after = apply(leg, acknowledge(leg, ACK, at))

    # then
    assert after.status is Status.ACKNOWLEDGED
    assert after.acknowledged_at == at
    assert after.updated_at == at
    assert replace(after, status=leg.status, acknowledged_at=None, updated_at=leg.updated_at) == leg


def test_apply_acknowledged_for_an_unknown_leg_raises_naming_the_handoff():
    event = acknowledge(open_leg(), ACK, T0)

    with pytest.raises(ValueError, match="h-1"):
        apply(None, event)


def test_replaying_create_then_acknowledge_rebuilds_the_leg():
    # given
    created = create(CREATE, T0)
    acknowledged = acknowledge(created.leg, ACK, T0 + timedelta(hours=1))

    # when
    leg = None
    for event in (created, acknowledged):
        leg = apply(leg, event)

    # then
    assert leg.status is Status.ACKNOWLEDGED
    assert leg.created_at == T0
    assert leg.acknowledged_at == T0 + timedelta(hours=1)
