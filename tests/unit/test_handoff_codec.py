"""handoff_svc.adapters.codec: leg events <-> HandoffEvent records, contacts <-> ContactRecorded,
legs -> API Handoff and legs <-> table records."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from handoff.v1 import contacts_pb2, envelope_pb2, handoff_events_pb2, types_pb2

from common.codec import decode, from_timestamp, to_timestamp
from common.topics import CONTACTS, HANDOFF_EVENTS
from handoff_svc.adapters.codec import (
    contact_to_pb,
    decode_contact,
    decode_event,
    encode_contact,
    encode_event,
    event_message,
    leg_from_state,
    leg_to_pb,
    leg_to_state,
)
from handoff_svc.domain import legs
from handoff_svc.domain.contacts import Channel, ContactRecorded, RecordContact, record
from handoff_svc.domain.legs import CreateHandoff, LegChanged, Priority, Status, apply, create
from tests.unit.conftest import T0

RECORDED = T0 + timedelta(seconds=3)
AT = T0 + timedelta(minutes=20, microseconds=250)
ABOUT = dict(handoff_id="h-1", customer_ref="cust-1", case_id="case-1", department="billing", at=AT, actor="billing-3")


def created(priority: Priority = Priority.HIGH, at=T0, category: str = "refund", previous: str = ""):
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
            previous_handoff_id=previous,
        ),
        at,
    )


def round_trip(event, event_id: str = "e-1"):
    """encode -> parse as a HandoffEvent -> decode."""
    return decode_event(handoff_events_pb2.HandoffEvent.FromString(encode_event(event, event_id, RECORDED, "r-1")))


# One of every change, with every status and priority value a change can carry.
CHANGES = {
    "acknowledged": legs.HandoffAcknowledged(**ABOUT),
    **{
        f"status-{a.value}-to-{b.value}": legs.HandoffStatusChanged(**ABOUT, from_status=a, to_status=b, note="n")
        for a, b in [
            (Status.ACKNOWLEDGED, Status.IN_PROGRESS),
            (Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER),
            (Status.WAITING_ON_CUSTOMER, Status.IN_PROGRESS),
        ]
    },
    "status-without-note": legs.HandoffStatusChanged(**ABOUT, from_status=Status.ACKNOWLEDGED, to_status=Status.IN_PROGRESS),
    **{
        f"priority-to-{p.value}": legs.HandoffPriorityChanged(
            **ABOUT, from_priority=Priority.NORMAL if p is not Priority.NORMAL else Priority.LOW, to_priority=p
        )
        for p in Priority
    },
    "transferred": legs.HandoffTransferred(**ABOUT, to_department="collections", new_handoff_id="h-2", reason="debt"),
    "transferred-without-reason": legs.HandoffTransferred(**ABOUT, to_department="collections", new_handoff_id="h-2"),
    "resolved": legs.HandoffResolved(**ABOUT, resolution="refunded"),
    "reopened": legs.HandoffReopened(**ABOUT, reason="bounced"),
    "cancelled": legs.HandoffCancelled(**ABOUT, reason="duplicate"),
    "zoned-instant": legs.HandoffResolved(**{**ABOUT, "at": AT.astimezone(ZoneInfo("Europe/Berlin"))}),
}


# Leg events ----------------------------------------------------------------------------


@pytest.mark.parametrize("event", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_survives_a_round_trip(event):
    assert round_trip(event) == event


def test_the_round_trips_cover_every_kind_of_change():
    assert {type(e) for e in CHANGES.values()} == set(LegChanged.__subclasses__())


@pytest.mark.parametrize("priority", list(Priority))
def test_created_survives_a_round_trip_with_every_priority(priority):
    event = created(priority)

    assert round_trip(event) == event


@pytest.mark.parametrize(
    "event",
    [created(category=""), created(previous="h-0")],
    ids=["without-category", "after-a-transfer"],
)
def test_created_survives_a_round_trip_with_optional_fields(event):
    assert round_trip(event) == event


def test_the_leg_a_transfer_opens_survives_a_round_trip():
    # given
    leg = apply(None, created())
    command = legs.TransferHandoff("h-1", "billing-3", to_department="collections", new_handoff_id="h-2",
                                   priority=Priority.URGENT)
    ended, opened = legs.transfer(leg, command, AT)

    # then
    assert [round_trip(ended), round_trip(opened)] == [ended, opened]


@pytest.mark.parametrize(
    "at",
    [T0 + timedelta(microseconds=123456), T0.astimezone(ZoneInfo("Europe/Berlin"))],
    ids=["microseconds", "zoned"],
)
def test_created_keeps_its_instant_through_a_round_trip(at):
    assert round_trip(created(at=at)).leg.created_at == at


@pytest.mark.parametrize(
    "event", [created(), *CHANGES.values()], ids=["created", *CHANGES.keys()]
)
def test_an_event_message_carries_its_envelope_leg_keys_and_actor(event):
    # when
    message = event_message(event, "e-9", RECORDED, "r-1")

    # then
    assert message.envelope.event_id == "e-9"
    assert message.envelope.source == "handoff"
    assert message.envelope.request_id == "r-1"
    assert from_timestamp(message.envelope.occurred_at) == event.at
    assert from_timestamp(message.envelope.recorded_at) == RECORDED
    assert (message.handoff_id, message.case_id, message.customer_ref, message.department) == (
        "h-1",
        "case-1",
        "cust-1",
        "billing",
    )
    assert message.actor == ("agent-7" if isinstance(event, legs.HandoffCreated) else "billing-3")


def test_encode_event_is_the_serialised_event_message():
    event = CHANGES["resolved"]

    assert encode_event(event, "e-1", RECORDED, "r-1") == event_message(event, "e-1", RECORDED, "r-1").SerializeToString()


def test_an_encoded_event_reads_back_as_a_handoff_events_record():
    message = decode(HANDOFF_EVENTS, encode_event(CHANGES["cancelled"], "e-1", RECORDED))

    assert message.WhichOneof("change") == "cancelled"
    assert message.cancelled.reason == "duplicate"


def test_decode_event_gives_none_for_a_record_without_a_change():
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
    )

    assert decode_event(message) is None


def test_decode_event_takes_the_acknowledger_when_the_record_has_no_actor():
    # Records written before `actor` existed name the acknowledger only in the payload.
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(AT)),
        handoff_id="h-1", case_id="case-1", customer_ref="cust-1", department="billing",
        acknowledged=handoff_events_pb2.HandoffAcknowledged(acknowledged_by="billing-3"),
    )

    assert decode_event(message) == legs.HandoffAcknowledged(**ABOUT)


def test_decode_event_reads_an_unset_priority_as_normal():
    message = handoff_events_pb2.HandoffEvent(
        envelope=envelope_pb2.Envelope(event_id="e-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
        created=handoff_events_pb2.HandoffCreated(created_at=to_timestamp(T0)),
    )

    assert decode_event(message).leg.priority is Priority.NORMAL


# Legs for the API ----------------------------------------------------------------------


def test_leg_to_pb_shows_status_priority_and_times():
    # given
    leg = apply(created().leg, CHANGES["acknowledged"])

    # when
    handoff = leg_to_pb(leg)

    # then
    assert handoff.handoff_id == "h-1"
    assert handoff.status == types_pb2.LEG_STATUS_ACKNOWLEDGED
    assert handoff.priority == types_pb2.PRIORITY_HIGH
    assert handoff.created_by == "agent-7"
    assert from_timestamp(handoff.created_at) == T0
    assert from_timestamp(handoff.acknowledged_at) == AT
    assert from_timestamp(handoff.updated_at) == AT
    assert not handoff.HasField("resolved_at")
    assert not handoff.breached


def test_leg_to_pb_shows_links_reopens_resolution_and_breach():
    # given
    leg = replace(
        created().leg, status=Status.RESOLVED, resolved_at=AT, previous_handoff_id="h-0", next_handoff_id="h-2",
        reopen_count=2,
    )

    # when
    handoff = leg_to_pb(leg, breached=True)

    # then
    assert (handoff.previous_handoff_id, handoff.next_handoff_id, handoff.reopen_count) == ("h-0", "h-2", 2)
    assert from_timestamp(handoff.resolved_at) == AT
    assert handoff.breached


def test_leg_to_pb_leaves_acknowledged_at_unset_for_an_open_leg():
    handoff = leg_to_pb(created().leg)

    assert handoff.status == types_pb2.LEG_STATUS_OPEN
    assert not handoff.HasField("acknowledged_at")


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_its_wire_value(status):
    handoff = leg_to_pb(replace(created().leg, status=status))

    assert types_pb2.LegStatus.Name(handoff.status) == f"LEG_STATUS_{status.value}"


# Legs in the owner's table -------------------------------------------------------------

RECORD_LEGS = {
    "open": created().leg,
    "no-timestamps-but-creation": replace(created().leg, updated_at=None),
    "resolved-after-transfer-and-reopen": replace(
        created(priority=Priority.URGENT, previous="h-0").leg,
        status=Status.RESOLVED, acknowledged_at=T0 + timedelta(minutes=5), resolved_at=AT, updated_at=AT,
        next_handoff_id="", reopen_count=3,
    ),
    "transferred": replace(created().leg, status=Status.TRANSFERRED, next_handoff_id="h-2", updated_at=AT),
    "zoned-microseconds": replace(
        created(at=T0.astimezone(ZoneInfo("America/New_York")) + timedelta(microseconds=7)).leg,
        acknowledged_at=AT.astimezone(ZoneInfo("Asia/Tokyo")),
    ),
}


@pytest.mark.parametrize("leg", RECORD_LEGS.values(), ids=RECORD_LEGS.keys())
def test_a_leg_survives_a_round_trip_through_the_owners_state(leg):
    assert leg_from_state(leg_to_state(leg)) == leg


def test_a_leg_state_keeps_none_for_timestamps_never_set():
    leg = leg_from_state(leg_to_state(replace(created().leg, updated_at=None)))

    assert (leg.acknowledged_at, leg.resolved_at, leg.updated_at) == (None, None, None)
    assert leg.created_at == T0


@pytest.mark.parametrize("status", list(Status))
def test_a_leg_state_survives_every_status(status):
    leg = replace(created().leg, status=status)

    assert leg_from_state(leg_to_state(leg)).status is status


# Contacts ------------------------------------------------------------------------------


def recorded(channel: Channel = Channel.CALL, case_id: str = "case-1", reason: str = "where is my refund"):
    return record(RecordContact("c-1", "cust-1", case_id, channel, reason), AT)


@pytest.mark.parametrize(
    "event",
    [*(recorded(channel) for channel in Channel), recorded(case_id="", reason="")],
    ids=[*(c.value for c in Channel), "no-case-no-reason"],
)
def test_a_contact_survives_a_round_trip(event: ContactRecorded):
    message = contacts_pb2.ContactRecorded.FromString(encode_contact(event, "e-1", RECORDED, "r-1"))

    assert decode_contact(message) == event.contact


def test_an_encoded_contact_carries_its_envelope():
    message = decode(CONTACTS, encode_contact(recorded(), "e-7", RECORDED, "r-1"))

    assert message.envelope.event_id == "e-7"
    assert message.envelope.request_id == "r-1"
    assert message.envelope.source == "handoff"
    assert from_timestamp(message.envelope.occurred_at) == AT
    assert from_timestamp(message.envelope.recorded_at) == RECORDED


@pytest.mark.parametrize("channel", list(Channel))
def test_contact_to_pb_shows_every_field(channel):
    contact = recorded(channel).contact

    pb = contact_to_pb(contact)

    assert (pb.contact_id, pb.customer_ref, pb.case_id, pb.reason) == ("c-1", "cust-1", "case-1", "where is my refund")
    assert types_pb2.ContactChannel.Name(pb.channel) == f"CONTACT_CHANNEL_{channel.value}"
    assert from_timestamp(pb.contacted_at) == AT
