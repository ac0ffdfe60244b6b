"""handoff_svc.adapters.codec: leg events <-> HandoffEvent records, legs -> API Handoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from handoff.v1 import envelope_pb2, handoff_events_pb2, types_pb2

from common.codec import decode, from_timestamp, to_timestamp
from common.topics import HANDOFF_EVENTS
from handoff_svc.adapters.codec import decode_event, encode_event, leg_to_pb
from handoff_svc.domain.legs import AcknowledgeHandoff, CreateHandoff, Priority, Status, acknowledge, apply, create
from tests.unit.conftest import T0

RECORDED = T0 + timedelta(seconds=3)


def created(priority: Priority = Priority.HIGH, at=T0, category: str = "refund"):
    return create(
        CreateHandoff(
            handoff_id="h-1",
            case_id="case-1",
            customer_ref="cust-1",
            department="billing",
            priority=priority,
            category=category,
            summary="Refund not received",
            created_by="agent-7",
        ),
        at,
    )


def acknowledged(at=T0 + timedelta(minutes=20, microseconds=250)):
    return acknowledge(created().leg, AcknowledgeHandoff("h-1", "billing-3"), at)


def round_trip(event, event_id: str = "e-1"):
    return decode_event(decode(HANDOFF_EVENTS, encode_event(event, event_id, RECORDED, "r-1")))


@pytest.mark.parametrize("priority", list(Priority))
def test_created_survives_a_round_trip_with_every_priority(priority):
    event = created(priority)

    assert round_trip(event) == event


@pytest.mark.parametrize(
    "at",
    [T0 + timedelta(microseconds=123456), T0.astimezone(ZoneInfo("Europe/Berlin"))],
    ids=["microseconds", "zoned"],
)
def test_created_keeps_its_instant_through_a_round_trip(at):
    assert round_trip(created(at=at)).leg.created_at == at


def test_created_without_a_category_survives_a_round_trip():
    event = created(category="")

    assert round_trip(event) == event


def test_acknowledged_survives_a_round_trip():
    event = acknowledged()

    assert round_trip(event) == event


@pytest.mark.parametrize(
    "event, occurred",
    [(created(), T0), (acknowledged(T0 + timedelta(hours=1)), T0 + timedelta(hours=1))],
    ids=["created", "acknowledged"],
)
def test_encoded_event_carries_its_envelope_and_leg_keys(event, occurred):
    # when
    message = handoff_events_pb2.HandoffEvent()
    message.ParseFromString(encode_event(event, "e-9", RECORDED, "r-1"))

    # then
    assert message.envelope.event_id == "e-9"
    assert message.envelope.source == "handoff"
    assert message.envelope.request_id == "r-1"
    assert from_timestamp(message.envelope.occurred_at) == occurred
    assert from_timestamp(message.envelope.recorded_at) == RECORDED
    assert (message.handoff_id, message.case_id, message.customer_ref, message.department) == (
        "h-1",
        "case-1",
        "cust-1",
        "billing",
    )


def test_decode_event_ignores_changes_this_service_does_not_track():
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
        resolved=handoff_events_pb2.HandoffResolved(resolution="refunded"),
    )

    assert decode_event(message) is None


def test_decode_event_reads_an_unset_priority_as_normal():
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
        created=handoff_events_pb2.HandoffCreated(created_at=to_timestamp(T0)),
    )

    assert decode_event(message).leg.priority is Priority.NORMAL


def test_leg_to_pb_shows_status_priority_and_times():
    # given
    leg = apply(created().leg, acknowledged(T0 + timedelta(hours=1)))

    # when
    handoff = leg_to_pb(leg)

    # then
    assert handoff.handoff_id == "h-1"
    assert handoff.status == types_pb2.LEG_STATUS_ACKNOWLEDGED
    assert handoff.priority == types_pb2.PRIORITY_HIGH
    assert from_timestamp(handoff.created_at) == T0
    assert from_timestamp(handoff.acknowledged_at) == T0 + timedelta(hours=1)
    assert from_timestamp(handoff.updated_at) == T0 + timedelta(hours=1)


def test_leg_to_pb_leaves_acknowledged_at_unset_for_an_open_leg():
    handoff = leg_to_pb(created().leg)

    assert handoff.status == types_pb2.LEG_STATUS_OPEN
    assert not handoff.HasField("acknowledged_at")


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_its_wire_value(status):
    handoff = leg_to_pb(replace(created().leg, status=status))

    assert types_pb2.LegStatus.Name(handoff.status) == f"LEG_STATUS_{status.value}"
