"""SLA events in, notification events out: the only `*_pb2` user of this service."""

from __future__ import annotations

from datetime import datetime

from handoff.v1 import notifications_pb2, sla_events_pb2, types_pb2

from common.codec import CLOCK_NAMES, from_timestamp, new_envelope, priority_name, to_timestamp
from notify.domain.notifications import BREACH, Breach, Notification

SOURCE = "notify"
_KINDS = {BREACH: notifications_pb2.NOTIFICATION_KIND_BREACH}


def breach_from(event: sla_events_pb2.SlaEvent) -> Breach | None:
    """The breach an SlaEvent reports, or None for every other change."""
    if event.WhichOneof("change") != "breached":
        return None
    return Breach(
        sla_event_id=event.envelope.event_id,
        handoff_id=event.handoff_id,
        case_id=event.case_id,
        customer_ref=event.customer_ref,
        department=event.department,
        priority=priority_name(event.priority),
        category=event.category,
        clock=CLOCK_NAMES.get(event.clock, "ack"),
        deadline=from_timestamp(event.breached.deadline),
    )


def notification_pb(notification: Notification) -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        notification_id=notification.notification_id,
        key=notification.key,
        kind=_KINDS[notification.kind],
        receiver=notification.receiver,
        department=notification.department,
        priority=types_pb2.Priority.Value(f"PRIORITY_{notification.priority}"),
        handoff_id=notification.handoff_id,
        case_id=notification.case_id,
        customer_ref=notification.customer_ref,
        clock=types_pb2.ClockKind.Value(f"CLOCK_KIND_{notification.clock.upper()}"),
        title=notification.title,
        body=notification.body,
        occurred_at=to_timestamp(notification.occurred_at),
        labels={"department": notification.department, "priority": notification.priority.lower(),
                "kind": notification.kind},
    )


def encode_requested(notification: Notification, channels: list[str], recorded_at: datetime) -> bytes:
    """A NotificationEvent(requested) record value."""
    return notifications_pb2.NotificationEvent(
        envelope=new_envelope(
            SOURCE, notification.occurred_at, recorded_at, event_id=notification.notification_id
        ),
        receiver=notification.receiver,
        requested=notifications_pb2.NotificationRequested(
            notification=notification_pb(notification), channels=channels
        ),
    ).SerializeToString()


def requested_notification(event: notifications_pb2.NotificationEvent) -> notifications_pb2.Notification | None:
    """The notification a `requested` event carries, else None."""
    if event.WhichOneof("change") != "requested":
        return None
    return event.requested.notification


def occurred_at(notification: notifications_pb2.Notification) -> datetime:
    return from_timestamp(notification.occurred_at)
