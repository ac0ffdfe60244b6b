"""sla.adapters.repeat_codec: ContactRecorded -> Contact, RepeatContact -> RepeatContactDetected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from handoff.v1 import contacts_pb2, envelope_pb2, types_pb2

from common.codec import MalformedRecord, decode, from_timestamp, to_timestamp
from common.topics import REPEAT_CONTACTS
from sla.adapters.repeat_codec import (
    cause_name,
    cause_value,
    channel_name,
    channel_value,
    decode_contact,
    encode_repeat,
)
from sla.domain.repeats import CAUSES, CHANNELS, Contact, LegHistory, RepeatRules, detect
from tests.unit.conftest import T0

CONTACTED = T0 + timedelta(days=3, microseconds=250)
RECORDED = CONTACTED + timedelta(seconds=2)
RULES = RepeatRules(cost_per_contact={"call": 450, "chat": 250})


def recorded(channel=types_pb2.CONTACT_CHANNEL_CALL, contacted_at=CONTACTED, occurred_at=None, **fields):
    """A ContactRecorded as the handoff service or a telephony system writes it."""
    message = contacts_pb2.ContactRecorded(
        envelope=envelope_pb2.Envelope(event_id="e-1"),
        contact_id="c-2",
        customer_ref="cust-1",
        case_id="case-1",
        channel=channel,
        reason="where is my refund",
    )
    if contacted_at is not None:
        message.contacted_at.CopyFrom(to_timestamp(contacted_at))
    if occurred_at is not None:
        message.envelope.occurred_at.CopyFrom(to_timestamp(occurred_at))
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def parse(value: bytes) -> contacts_pb2.RepeatContactDetected:
    message = contacts_pb2.RepeatContactDetected()
    message.ParseFromString(value)
    return message


@pytest.mark.parametrize(
    "channel, name",
    [
        (types_pb2.CONTACT_CHANNEL_CALL, "call"),
        (types_pb2.CONTACT_CHANNEL_CHAT, "chat"),
        (types_pb2.CONTACT_CHANNEL_EMAIL, "email"),
        (types_pb2.CONTACT_CHANNEL_MESSAGING, "messaging"),
        (types_pb2.CONTACT_CHANNEL_UNSPECIFIED, "unspecified"),
        (99, "unspecified"),
    ],
)
def test_a_recorded_contact_becomes_a_domain_contact_with_its_channel_by_name(channel, name):
    assert decode_contact(recorded(channel=channel)) == Contact("c-2", "cust-1", "case-1", name, CONTACTED)


def test_a_contact_without_its_own_instant_happened_when_its_envelope_says():
    message = recorded(contacted_at=None, occurred_at=CONTACTED - timedelta(minutes=1))

    assert decode_contact(message).contacted_at == CONTACTED - timedelta(minutes=1)


def test_the_contacts_own_instant_wins_over_the_envelopes():
    message = recorded(occurred_at=CONTACTED - timedelta(minutes=1))

    assert decode_contact(message).contacted_at == CONTACTED


@pytest.mark.parametrize(
    "message, reason",
    [
        (recorded(contacted_at=None), "without contacted_at or envelope.occurred_at"),
        (recorded(contact_id=""), "without contact_id or customer_ref"),
        (recorded(customer_ref=""), "without contact_id or customer_ref"),
    ],
    ids=["no-instant", "no-contact-id", "no-customer"],
)
def test_a_contact_missing_what_detection_needs_is_a_malformed_record(message, reason):
    with pytest.raises(MalformedRecord, match=reason):
        decode_contact(message)


def test_every_proto_channel_has_a_domain_name_and_back():
    named = [value for value in types_pb2.ContactChannel.values() if value != types_pb2.CONTACT_CHANNEL_UNSPECIFIED]

    assert sorted(channel_name(value) for value in named) == sorted(CHANNELS)
    assert all(channel_value(channel_name(value)) == value for value in named)
    assert channel_value("fax") == types_pb2.CONTACT_CHANNEL_UNSPECIFIED


def test_every_cause_maps_to_its_proto_value_and_back():
    assert {cause: types_pb2.RepeatCause.Name(cause_value(cause)) for cause in CAUSES} == {
        "sla_breached": "REPEAT_CAUSE_SLA_BREACHED",
        "within_sla": "REPEAT_CAUSE_WITHIN_SLA",
        "after_resolution": "REPEAT_CAUSE_AFTER_RESOLUTION",
        "unattributed": "REPEAT_CAUSE_UNATTRIBUTED",
    }
    assert all(cause_name(cause_value(cause)) == cause for cause in CAUSES)
    assert cause_name(types_pb2.REPEAT_CAUSE_UNSPECIFIED) == "unspecified"


def repeat_of(message: contacts_pb2.ContactRecorded, legs):
    contact = decode_contact(message)
    earlier = Contact("c-1", "cust-1", "", "chat", CONTACTED - timedelta(days=1))
    return detect(contact, [earlier], legs, RULES)


BREACHED_LEG = LegHistory("h-1", "case-1", "billing", T0, breached_at=T0 + timedelta(hours=4))


def test_an_attributed_repeat_survives_the_round_trip_from_contact_to_record():
    # given a recorded call about a leg that had breached
    repeat = repeat_of(recorded(), [BREACHED_LEG])

    # when
    message = parse(encode_repeat(repeat, RECORDED))

    # then
    envelope = message.envelope
    assert (envelope.event_id, envelope.source) == (repeat.event_id, "sla")
    assert (from_timestamp(envelope.occurred_at), from_timestamp(envelope.recorded_at)) == (CONTACTED, RECORDED)
    assert (message.contact_id, message.customer_ref, message.previous_contact_id) == ("c-2", "cust-1", "c-1")
    assert cause_name(message.cause) == "sla_breached"
    assert (message.handoff_id, message.case_id, message.department) == ("h-1", "case-1", "billing")
    assert channel_name(message.channel) == "call"
    assert (message.cost_minor, message.currency) == (450, "EUR")
    assert from_timestamp(message.contacted_at) == CONTACTED


def test_an_unattributed_repeat_keeps_the_contacts_case_and_names_no_leg_or_department():
    repeat = repeat_of(recorded(channel=types_pb2.CONTACT_CHANNEL_CHAT, case_id="case-9"), [])

    message = parse(encode_repeat(repeat, RECORDED))

    assert cause_name(message.cause) == "unattributed"
    assert (message.handoff_id, message.case_id, message.department) == ("", "case-9", "")
    assert (message.cost_minor, channel_name(message.channel)) == (250, "chat")


def test_a_repeat_record_reads_back_as_its_topics_value_type_with_the_same_bytes_on_replay():
    repeat = repeat_of(recorded(), [BREACHED_LEG])

    value = encode_repeat(repeat, RECORDED)

    assert decode(REPEAT_CONTACTS, value) == parse(value)
    assert encode_repeat(repeat_of(recorded(), [BREACHED_LEG]), RECORDED) == value
