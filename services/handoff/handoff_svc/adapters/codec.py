"""Domain legs and events <-> protobuf. The only module of this service that touches `*_pb2`."""

from __future__ import annotations

from handoff.v1 import handoff_events_pb2 as events_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.codec import from_timestamp, new_envelope, to_timestamp
from handoff_svc.domain.legs import HandoffAcknowledged, HandoffCreated, HandoffEvent, Leg, Priority, Status

SOURCE = "handoff"

PRIORITY_TO_PB = {p: types_pb2.Priority.Value(f"PRIORITY_{p.value}") for p in Priority}
PRIORITY_FROM_PB = {v: k for k, v in PRIORITY_TO_PB.items()}
STATUS_TO_PB = {s: types_pb2.LegStatus.Value(f"LEG_STATUS_{s.value}") for s in Status}


def encode_event(event: HandoffEvent, event_id: str, recorded_at, request_id: str = "") -> bytes:
    """A domain event as a HandoffEvent record value."""
    if isinstance(event, HandoffCreated):
        leg = event.leg
        message = events_pb2.HandoffEvent(
            envelope=new_envelope(SOURCE, leg.created_at, recorded_at, event_id=event_id, request_id=request_id),
            handoff_id=leg.handoff_id,
            case_id=leg.case_id,
            customer_ref=leg.customer_ref,
            department=leg.department,
            created=events_pb2.HandoffCreated(
                priority=PRIORITY_TO_PB[leg.priority],
                category=leg.category,
                summary=leg.summary,
                created_by=leg.created_by,
                created_at=to_timestamp(leg.created_at),
            ),
        )
    else:
        message = events_pb2.HandoffEvent(
            envelope=new_envelope(
                SOURCE, event.acknowledged_at, recorded_at, event_id=event_id, request_id=request_id
            ),
            handoff_id=event.handoff_id,
            case_id=event.case_id,
            customer_ref=event.customer_ref,
            department=event.department,
            acknowledged=events_pb2.HandoffAcknowledged(acknowledged_by=event.acknowledged_by),
        )
    return message.SerializeToString()


def decode_event(message: events_pb2.HandoffEvent) -> HandoffEvent | None:
    """The domain event in a HandoffEvent record; None for changes this service ignores."""
    change = message.WhichOneof("change")
    if change == "created":
        created = message.created
        at = from_timestamp(created.created_at)
        return HandoffCreated(
            Leg(
                handoff_id=message.handoff_id,
                case_id=message.case_id,
                customer_ref=message.customer_ref,
                department=message.department,
                priority=PRIORITY_FROM_PB.get(created.priority, Priority.NORMAL),
                category=created.category,
                summary=created.summary,
                status=Status.OPEN,
                created_at=at,
                created_by=created.created_by,
                updated_at=at,
            )
        )
    if change == "acknowledged":
        return HandoffAcknowledged(
            handoff_id=message.handoff_id,
            customer_ref=message.customer_ref,
            case_id=message.case_id,
            department=message.department,
            acknowledged_by=message.acknowledged.acknowledged_by,
            acknowledged_at=from_timestamp(message.envelope.occurred_at),
        )
    return None


def leg_to_pb(leg: Leg) -> api_pb2.Handoff:
    """A leg as the API's Handoff message."""
    handoff = api_pb2.Handoff(
        handoff_id=leg.handoff_id,
        case_id=leg.case_id,
        customer_ref=leg.customer_ref,
        department=leg.department,
        priority=PRIORITY_TO_PB[leg.priority],
        category=leg.category,
        summary=leg.summary,
        status=STATUS_TO_PB[leg.status],
        created_at=to_timestamp(leg.created_at),
        created_by=leg.created_by,
    )
    if leg.acknowledged_at:
        handoff.acknowledged_at.CopyFrom(to_timestamp(leg.acknowledged_at))
    if leg.updated_at:
        handoff.updated_at.CopyFrom(to_timestamp(leg.updated_at))
    return handoff
