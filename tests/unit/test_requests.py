"""API requests -> domain commands: every bad field is an InvalidField naming it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.codec import to_timestamp
from common.validation import InvalidField
from handoff_svc.domain.legs import AcknowledgeHandoff, CreateHandoff, Priority
from handoff_svc.entrypoints.requests import acknowledge_command, create_command, occurred_at
from tests.unit.conftest import T0

GOOD = dict(
    request_id="req-1",
    case_id="case-1",
    customer_ref="cust-1",
    department="billing",
    priority=types_pb2.PRIORITY_HIGH,
    category="refund",
    summary="Refund not received",
)


def request(**changes) -> api_pb2.CreateHandoffRequest:
    return api_pb2.CreateHandoffRequest(**{**GOOD, **changes})


def test_a_good_request_becomes_a_create_command_by_the_actor():
    command = create_command(request(), "agent-7")

    assert command == CreateHandoff(
        handoff_id=command.handoff_id,
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        priority=Priority.HIGH,
        category="refund",
        summary="Refund not received",
        created_by="agent-7",
    )
    assert command.handoff_id


def test_category_is_optional():
    assert create_command(request(category=""), "agent-7").category == ""


@pytest.mark.parametrize(
    "field, value",
    [
        ("request_id", ""),
        ("request_id", "has space"),
        ("case_id", ""),
        ("case_id", "case/1"),
        ("customer_ref", ""),
        ("customer_ref", "jane doe@example.com"),
        ("department", ""),
        ("department", "Billing"),
        ("priority", 42),
        ("category", "Refund Request"),
        ("summary", "x" * 501),
    ],
    ids=[
        "request_id-missing",
        "request_id-malformed",
        "case_id-missing",
        "case_id-malformed",
        "customer_ref-missing",
        "customer_ref-malformed",
        "department-missing",
        "department-upper-case",
        "priority-unknown",
        "category-malformed",
        "summary-too-long",
    ],
)
def test_create_command_refuses_a_bad_field_naming_it(field, value):
    with pytest.raises(InvalidField) as raised:
        create_command(request(**{field: value}), "agent-7")

    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_an_unset_priority_means_normal():
    assert create_command(request(priority=types_pb2.PRIORITY_UNSPECIFIED), "agent-7").priority == Priority.NORMAL


def test_a_summary_of_exactly_500_characters_is_accepted():
    assert len(create_command(request(summary="x" * 500), "agent-7").summary) == 500


def test_the_handoff_id_derives_from_the_request_id_so_a_retry_gets_the_same_one():
    first = create_command(request(request_id="req-1"), "agent-7")
    retry = create_command(request(request_id="req-1", summary="edited on retry"), "agent-8")
    other = create_command(request(request_id="req-2"), "agent-7")

    assert first.handoff_id == retry.handoff_id
    assert first.handoff_id != other.handoff_id
    assert first.handoff_id != "req-1"


def test_an_acknowledge_request_becomes_a_command_by_the_actor():
    command = acknowledge_command(
        api_pb2.AcknowledgeHandoffRequest(request_id="req-2", handoff_id="h-1"), "billing-3"
    )

    assert command == AcknowledgeHandoff(handoff_id="h-1", acknowledged_by="billing-3")


@pytest.mark.parametrize(
    "changes, field",
    [({"request_id": ""}, "request_id"), ({"handoff_id": ""}, "handoff_id"), ({"handoff_id": "h 1"}, "handoff_id")],
)
def test_acknowledge_command_refuses_a_bad_field_naming_it(changes, field):
    fields = {"request_id": "req-2", "handoff_id": "h-1", **changes}

    with pytest.raises(InvalidField) as raised:
        acknowledge_command(api_pb2.AcknowledgeHandoffRequest(**fields), "billing-3")

    assert raised.value.field == field


@pytest.mark.parametrize(
    "stamp, expected",
    [(None, T0), (T0 - timedelta(days=30), T0 - timedelta(days=30))],
    ids=["unset-is-now", "import-in-the-past"],
)
def test_occurred_at_is_the_requests_event_time_or_now(stamp, expected):
    req = request() if stamp is None else request(occurred_at=to_timestamp(stamp))

    assert occurred_at(req, T0) == expected


def test_occurred_at_in_the_future_is_refused_naming_the_field():
    with pytest.raises(InvalidField) as raised:
        occurred_at(request(occurred_at=to_timestamp(T0 + timedelta(hours=1))), T0)

    assert raised.value.field == "occurred_at"
