"""Contacts in, repeat contacts out: the only `*_pb2` user for repeat contacts."""

from __future__ import annotations

from datetime import datetime

from handoff.v1 import contacts_pb2, types_pb2

from common.codec import MalformedRecord, from_timestamp, new_envelope, to_timestamp
from sla.domain.repeats import CAUSES, CHANNELS, Contact, RepeatContact

SOURCE = "sla"
UNSPECIFIED = "unspecified"
_CAUSE_TO_PB = {name: types_pb2.RepeatCause.Value(f"REPEAT_CAUSE_{name.upper()}") for name in CAUSES}
_CAUSE_FROM_PB = {value: name for name, value in _CAUSE_TO_PB.items()}
_CHANNEL_TO_PB = {name: types_pb2.ContactChannel.Value(f"CONTACT_CHANNEL_{name.upper()}") for name in CHANNELS}
_CHANNEL_FROM_PB = {value: name for name, value in _CHANNEL_TO_PB.items()}


def channel_name(value: int) -> str:
    """'call' for CONTACT_CHANNEL_CALL; unset or unknown values are 'unspecified'."""
    return _CHANNEL_FROM_PB.get(value, UNSPECIFIED)


def channel_value(name: str) -> int:
    """CONTACT_CHANNEL_CALL for 'call'; CONTACT_CHANNEL_UNSPECIFIED for a name it does not know."""
    return _CHANNEL_TO_PB.get(name, types_pb2.CONTACT_CHANNEL_UNSPECIFIED)


def cause_name(value: int) -> str:
    """'sla_breached' for REPEAT_CAUSE_SLA_BREACHED; unset or unknown values are 'unspecified'."""
    return _CAUSE_FROM_PB.get(value, UNSPECIFIED)


def cause_value(name: str) -> int:
    """REPEAT_CAUSE_SLA_BREACHED for 'sla_breached'; REPEAT_CAUSE_UNSPECIFIED for a name it does not know."""
    return _CAUSE_TO_PB.get(name, types_pb2.REPEAT_CAUSE_UNSPECIFIED)


def decode_contact(message: contacts_pb2.ContactRecorded) -> Contact:
    """The domain contact of a ContactRecorded; MalformedRecord without ids or an instant."""
    if not message.contact_id or not message.customer_ref:
        raise MalformedRecord("ContactRecorded without contact_id or customer_ref")
    if message.HasField("contacted_at"):
        contacted_at = from_timestamp(message.contacted_at)
    elif message.envelope.HasField("occurred_at"):
        contacted_at = from_timestamp(message.envelope.occurred_at)
    else:
        raise MalformedRecord("ContactRecorded without contacted_at or envelope.occurred_at")
    return Contact(
        contact_id=message.contact_id,
        customer_ref=message.customer_ref,
        case_id=message.case_id,
        channel=channel_name(message.channel),
        contacted_at=contacted_at,
    )


def encode_repeat(repeat: RepeatContact, recorded_at: datetime) -> bytes:
    """A RepeatContactDetected record value; an unattributed repeat keeps the contact's case_id."""
    contact, leg = repeat.contact, repeat.leg
    message = contacts_pb2.RepeatContactDetected(
        envelope=new_envelope(SOURCE, contact.contacted_at, recorded_at, event_id=repeat.event_id),
        contact_id=contact.contact_id,
        customer_ref=contact.customer_ref,
        previous_contact_id=repeat.previous_contact_id,
        cause=cause_value(repeat.cause),
        handoff_id=leg.handoff_id if leg else "",
        case_id=leg.case_id if leg else contact.case_id,
        department=leg.department if leg else "",
        channel=channel_value(contact.channel),
        cost_minor=repeat.cost_minor,
        currency=repeat.currency,
        contacted_at=to_timestamp(contact.contacted_at),
    )
    return message.SerializeToString()
