"""Create and RecordContact requests -> domain commands: every bad field is an InvalidField naming it.

The requests on an existing leg are in test_leg_requests.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.codec import to_timestamp
from common.departments import Department, Departments
from common.validation import InvalidField
from handoff_svc.domain.contacts import Channel, RecordContact
from handoff_svc.domain.legs import CreateHandoff, Priority
from handoff_svc.entrypoints.requests import create_command, known_department, occurred_at, record_contact_command
from tests.unit.conftest import T0

REF, OTHER_REF = "c-0123456789abcdef0123456789abcdef", "c-" + "9" * 32

GOOD = dict(
    request_id="req-1",
    case_id="case-1",
    customer_ref=REF,
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
        customer_ref=REF,
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
        ("customer_ref", "cust-1"),
        ("customer_ref", "c-0123456789ABCDEF0123456789ABCDEF"),
        ("customer_ref", "c-" + "0" * 31),
        ("customer_ref", "447700900123"),
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
        "customer_ref-not-a-pseudonym",
        "customer_ref-upper-case",
        "customer_ref-short",
        "customer_ref-phone-number",
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


def test_the_handoff_id_derives_from_caller_and_request_id_so_a_retry_gets_the_same_one():
    first = create_command(request(request_id="req-1"), "agent-7")
    retry = create_command(request(request_id="req-1", summary="edited on retry"), "agent-7")
    other = create_command(request(request_id="req-2"), "agent-7")
    another_caller = create_command(request(request_id="req-1"), "agent-8")

    assert first.handoff_id == retry.handoff_id
    assert first.handoff_id != other.handoff_id
    assert first.handoff_id != another_caller.handoff_id
    assert first.handoff_id != "req-1"


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


def test_customer_ref_given_by_the_edge_overrides_the_requests():
    # The edge resolves a raw customer_id to a customer_ref and passes it in.
    command = create_command(request(customer_ref=""), "agent-7", customer_ref=OTHER_REF)

    assert command.customer_ref == OTHER_REF


# RecordContact -------------------------------------------------------------------------

CONTACT = dict(
    request_id="req-5",
    customer_ref=REF,
    case_id="case-1",
    channel=types_pb2.CONTACT_CHANNEL_CHAT,
    reason="where is my refund",
)


def contact_request(**changes) -> api_pb2.RecordContactRequest:
    return api_pb2.RecordContactRequest(**{**CONTACT, **changes})


def test_a_good_contact_request_becomes_a_record_contact_command():
    command = record_contact_command(contact_request(), "agent-7")

    assert command == RecordContact(
        contact_id=command.contact_id,
        customer_ref=REF,
        case_id="case-1",
        channel=Channel.CHAT,
        reason="where is my refund",
    )


@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_every_channel_is_read(channel):
    request_ = contact_request(channel=types_pb2.ContactChannel.Value(f"CONTACT_CHANNEL_{channel.value}"))

    assert record_contact_command(request_, "agent-7").channel is channel


def test_the_contact_id_derives_from_the_request_id_so_a_retry_gets_the_same_one():
    first = record_contact_command(contact_request(request_id="req-5"), "agent-7")
    retry = record_contact_command(contact_request(request_id="req-5", reason="asked again"), "agent-7")
    other = record_contact_command(contact_request(request_id="req-6"), "agent-7")

    assert first.contact_id == retry.contact_id
    assert first.contact_id != other.contact_id
    assert first.contact_id not in ("req-5", create_command(request(request_id="req-5"), "agent-7").handoff_id)


@pytest.mark.parametrize(
    "changes, customer_ref, case_id, reason",
    [
        ({"case_id": ""}, REF, "", "where is my refund"),
        ({"reason": ""}, REF, "case-1", ""),
        ({"reason": "x" * 1000}, REF, "case-1", "x" * 1000),
    ],
    ids=["case-optional", "reason-optional", "reason-at-the-limit"],
)
def test_a_contact_request_accepts_optional_and_boundary_fields(changes, customer_ref, case_id, reason):
    command = record_contact_command(contact_request(**changes), "agent-7")

    assert (command.customer_ref, command.case_id, command.reason) == (customer_ref, case_id, reason)


def test_a_contact_takes_the_customer_ref_given_by_the_edge():
    assert record_contact_command(contact_request(customer_ref=""), "agent-7", customer_ref=OTHER_REF).customer_ref == OTHER_REF


@pytest.mark.parametrize(
    "field, value",
    [
        ("request_id", ""),
        ("request_id", "has space"),
        ("customer_ref", ""),
        ("customer_ref", "jane doe"),
        ("customer_ref", "cust-1"),
        ("case_id", "case/1"),
        ("channel", types_pb2.CONTACT_CHANNEL_UNSPECIFIED),
        ("channel", 42),
        ("reason", "x" * 1001),
    ],
    ids=[
        "request_id-missing",
        "request_id-malformed",
        "customer_ref-missing",
        "customer_ref-malformed",
        "customer_ref-not-a-pseudonym",
        "case_id-malformed",
        "channel-unset",
        "channel-unknown",
        "reason-too-long",
    ],
)
def test_record_contact_command_refuses_a_bad_field_naming_it(field, value):
    with pytest.raises(InvalidField) as raised:
        record_contact_command(contact_request(**{field: value}), "agent-7")

    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "stamp, expected",
    [(None, T0), (T0 - timedelta(hours=2), T0 - timedelta(hours=2))],
    ids=["unset-is-now", "contact-earlier-today"],
)
def test_a_contacts_event_time_is_its_contacted_at_or_now(stamp, expected):
    req = contact_request() if stamp is None else contact_request(contacted_at=to_timestamp(stamp))

    assert occurred_at(req, T0, field="contacted_at") == expected


def test_a_known_department_passes_and_an_unknown_one_names_the_known_ones():
    departments = Departments(departments=[
        Department(name=name, display_name=name.title(), cost_centre="CC-1") for name in ("billing", "claims")])
    assert known_department("department", "billing", departments) == "billing"
    with pytest.raises(InvalidField, match=r"^department: 'collections' is not a known department; known: billing, claims$"):
        known_department("department", "collections", departments)


def test_an_unknown_department_names_at_most_twenty_known_ones():
    departments = Departments(departments=[
        Department(name=f"team-{n}", display_name=f"Team {n}", cost_centre="CC-1") for n in range(25)])
    with pytest.raises(InvalidField, match=r"known: team-0, .*, team-19 and 5 more$"):
        known_department("to_department", "collections", departments)
