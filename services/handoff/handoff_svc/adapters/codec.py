"""Domain legs and events <-> protobuf. The only module of this service that touches `*_pb2`."""

from __future__ import annotations

from datetime import datetime
from sys import intern

from handoff.v1 import contacts_pb2
from handoff.v1 import handoff_events_pb2 as events_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.codec import from_timestamp, new_envelope, to_timestamp
from handoff_svc.domain import legs
from handoff_svc.domain.contacts import Channel, Contact, ContactRecorded
from handoff_svc.domain.legs import Leg, Priority, Status

SOURCE = "handoff"

PRIORITY_TO_PB = {p: types_pb2.Priority.Value(f"PRIORITY_{p.value}") for p in Priority}
PRIORITY_FROM_PB = {v: k for k, v in PRIORITY_TO_PB.items()}
STATUS_TO_PB = {s: types_pb2.LegStatus.Value(f"LEG_STATUS_{s.value}") for s in Status}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}


def _created_pb(event: legs.HandoffCreated) -> events_pb2.HandoffCreated:
    leg = event.leg
    return events_pb2.HandoffCreated(
        priority=PRIORITY_TO_PB[leg.priority], category=leg.category, summary=leg.summary,
        created_by=leg.created_by, previous_handoff_id=leg.previous_handoff_id,
        created_at=to_timestamp(leg.created_at),
    )


# Domain change type -> (oneof field, protobuf payload built from the event).
_PAYLOADS = {
    legs.HandoffAcknowledged: ("acknowledged", lambda e: events_pb2.HandoffAcknowledged(acknowledged_by=e.actor)),
    legs.HandoffStatusChanged: ("status_changed", lambda e: events_pb2.HandoffStatusChanged(
        from_status=STATUS_TO_PB[e.from_status], to_status=STATUS_TO_PB[e.to_status], note=e.note)),
    legs.HandoffPriorityChanged: ("priority_changed", lambda e: events_pb2.HandoffPriorityChanged(
        from_priority=PRIORITY_TO_PB[e.from_priority], to_priority=PRIORITY_TO_PB[e.to_priority])),
    legs.HandoffTransferred: ("transferred", lambda e: events_pb2.HandoffTransferred(
        to_department=e.to_department, new_handoff_id=e.new_handoff_id, reason=e.reason)),
    legs.HandoffResolved: ("resolved", lambda e: events_pb2.HandoffResolved(resolution=e.resolution)),
    legs.HandoffReopened: ("reopened", lambda e: events_pb2.HandoffReopened(reason=e.reason)),
    legs.HandoffCancelled: ("cancelled", lambda e: events_pb2.HandoffCancelled(reason=e.reason)),
}

# oneof field -> the domain change's own fields, read from the payload.
_FIELDS = {
    "acknowledged": (legs.HandoffAcknowledged, lambda p: {}),
    "status_changed": (legs.HandoffStatusChanged, lambda p: dict(
        from_status=STATUS_FROM_PB[p.from_status], to_status=STATUS_FROM_PB[p.to_status], note=p.note)),
    "priority_changed": (legs.HandoffPriorityChanged, lambda p: dict(
        from_priority=PRIORITY_FROM_PB[p.from_priority], to_priority=PRIORITY_FROM_PB[p.to_priority])),
    "transferred": (legs.HandoffTransferred, lambda p: dict(
        to_department=p.to_department, new_handoff_id=p.new_handoff_id, reason=p.reason)),
    "resolved": (legs.HandoffResolved, lambda p: dict(resolution=p.resolution)),
    "reopened": (legs.HandoffReopened, lambda p: dict(reason=p.reason)),
    "cancelled": (legs.HandoffCancelled, lambda p: dict(reason=p.reason)),
}


def event_message(event: legs.HandoffEvent, event_id: str, recorded_at: datetime,
                  request_id: str = "") -> events_pb2.HandoffEvent:
    """A domain event as a HandoffEvent message."""
    if isinstance(event, legs.HandoffCreated):
        leg = event.leg
        message = events_pb2.HandoffEvent(
            handoff_id=leg.handoff_id, case_id=leg.case_id, customer_ref=leg.customer_ref,
            department=leg.department, actor=leg.created_by, created=_created_pb(event),
        )
    else:
        field, payload = _PAYLOADS[type(event)]
        message = events_pb2.HandoffEvent(
            handoff_id=event.handoff_id, case_id=event.case_id, customer_ref=event.customer_ref,
            department=event.department, actor=event.actor, **{field: payload(event)},
        )
    message.envelope.CopyFrom(
        new_envelope(SOURCE, event.at, recorded_at, event_id=event_id, request_id=request_id)
    )
    return message


def encode_event(event: legs.HandoffEvent, event_id: str, recorded_at: datetime, request_id: str = "") -> bytes:
    """A domain event as a HandoffEvent record value."""
    return event_message(event, event_id, recorded_at, request_id).SerializeToString()


def decode_event(message: events_pb2.HandoffEvent) -> legs.HandoffEvent | None:
    """The domain event in a HandoffEvent record; None for a record without a leg's change
    (nothing set, or an event-time heartbeat)."""
    change = message.WhichOneof("change")
    if change is None or change == "heartbeat":
        return None
    if change == "created":
        created = message.created
        at = from_timestamp(created.created_at)
        return legs.HandoffCreated(
            # Strings that other events of the leg, or other legs, repeat are interned: every
            # replica's read model keeps each leg of its history, and they then share one copy.
            Leg(
                handoff_id=intern(message.handoff_id), case_id=message.case_id, customer_ref=message.customer_ref,
                department=intern(message.department),
                priority=PRIORITY_FROM_PB.get(created.priority, Priority.NORMAL), category=intern(created.category),
                summary=created.summary, status=Status.OPEN, created_at=at, created_by=intern(created.created_by),
                updated_at=at, previous_handoff_id=created.previous_handoff_id,
            )
        )
    kind, fields = _FIELDS[change]
    return kind(
        handoff_id=intern(message.handoff_id), customer_ref=message.customer_ref, case_id=message.case_id,
        department=intern(message.department), at=from_timestamp(message.envelope.occurred_at),
        actor=message.actor or getattr(getattr(message, change), "acknowledged_by", ""),
        **fields(getattr(message, change)),
    )


def leg_to_pb(leg: Leg, breached: bool = False) -> api_pb2.Handoff:
    """A leg as the API's Handoff message."""
    handoff = api_pb2.Handoff(
        handoff_id=leg.handoff_id, case_id=leg.case_id, customer_ref=leg.customer_ref,
        department=leg.department, priority=PRIORITY_TO_PB[leg.priority], category=leg.category,
        summary=leg.summary, status=STATUS_TO_PB[leg.status], created_at=to_timestamp(leg.created_at),
        created_by=leg.created_by, previous_handoff_id=leg.previous_handoff_id,
        next_handoff_id=leg.next_handoff_id, reopen_count=leg.reopen_count, breached=breached,
    )
    for name in ("acknowledged_at", "resolved_at", "updated_at"):
        moment = getattr(leg, name)
        if moment is not None:
            getattr(handoff, name).CopyFrom(to_timestamp(moment))
    return handoff


CHANNEL_TO_PB = {c: types_pb2.ContactChannel.Value(f"CONTACT_CHANNEL_{c.value}") for c in Channel}
CHANNEL_FROM_PB = {v: k for k, v in CHANNEL_TO_PB.items()}


def encode_contact(event: ContactRecorded, event_id: str, recorded_at: datetime, request_id: str = "") -> bytes:
    """A recorded contact as a ContactRecorded record value (contacts.v1)."""
    contact = event.contact
    return contacts_pb2.ContactRecorded(
        envelope=new_envelope(SOURCE, contact.contacted_at, recorded_at, event_id=event_id, request_id=request_id),
        contact_id=contact.contact_id, customer_ref=contact.customer_ref, case_id=contact.case_id,
        channel=CHANNEL_TO_PB[contact.channel], contacted_at=to_timestamp(contact.contacted_at),
        reason=contact.reason,
    ).SerializeToString()


def decode_contact(message: contacts_pb2.ContactRecorded) -> Contact:
    return Contact(
        contact_id=message.contact_id, customer_ref=message.customer_ref, case_id=message.case_id,
        channel=CHANNEL_FROM_PB.get(message.channel, Channel.CALL),
        contacted_at=from_timestamp(message.contacted_at), reason=message.reason,
    )


def contact_to_pb(contact: Contact) -> api_pb2.Contact:
    return api_pb2.Contact(
        contact_id=contact.contact_id, customer_ref=contact.customer_ref, case_id=contact.case_id,
        channel=CHANNEL_TO_PB[contact.channel], contacted_at=to_timestamp(contact.contacted_at),
        reason=contact.reason,
    )


def leg_to_state(leg: Leg) -> bytes:
    """A leg as the owner stores it: the API's Handoff message, serialized."""
    return leg_to_pb(leg).SerializeToString()


def leg_from_state(state: bytes) -> Leg:
    """Inverse of `leg_to_state`."""
    handoff = api_pb2.Handoff.FromString(state)
    moments = {name: from_timestamp(getattr(handoff, name)) if handoff.HasField(name) else None
               for name in ("acknowledged_at", "resolved_at", "updated_at")}
    return Leg(
        handoff_id=handoff.handoff_id, case_id=handoff.case_id, customer_ref=handoff.customer_ref,
        department=handoff.department, priority=PRIORITY_FROM_PB[handoff.priority], category=handoff.category,
        summary=handoff.summary, status=STATUS_FROM_PB[handoff.status], created_at=from_timestamp(handoff.created_at),
        created_by=handoff.created_by, previous_handoff_id=handoff.previous_handoff_id,
        next_handoff_id=handoff.next_handoff_id, reopen_count=handoff.reopen_count, **moments,
    )
