"""Source events in, notification events out: the pipeline's only `*_pb2` user.

The API has its own (api_codec.py).
"""

from __future__ import annotations

import base64
from datetime import datetime

from google.protobuf import timestamp_pb2

from handoff.v1 import channel_gateway_pb2, contacts_pb2, notifications_pb2, sla_events_pb2, types_pb2

from common.codec import CLOCK_NAMES, from_timestamp, priority_name, timestamp_fields
from common.ids import derived_event_id
from notify.domain.notifications import KINDS, Notification
from notify.domain.requests import Leg

SOURCE = "notify"
_KINDS = {kind: notifications_pb2.NotificationKind.Value(f"NOTIFICATION_KIND_{kind.upper()}") for kind in KINDS}
_KIND_NAMES = {value: kind for kind, value in _KINDS.items()}
_CLOCKS = {name: value for value, name in CLOCK_NAMES.items()}
_PRIORITIES = {name.removeprefix("PRIORITY_"): value for name, value in types_pb2.Priority.items()}


# --- sources ---------------------------------------------------------------------------


def leg_of(event, known: Leg | None = None) -> Leg:
    """The leg an SlaEvent or HandoffEvent is about; what `known` remembers fills the gaps."""
    priority = known.priority if known else "NORMAL"
    category = known.category if known else ""
    notify_history = known.notify_history if known else False
    if isinstance(event, sla_events_pb2.SlaEvent):  # it carries the leg's labels
        priority, category = priority_name(event.priority), event.category
    elif isinstance(event, contacts_pb2.RepeatContactDetected):
        pass
    elif event.WhichOneof("change") == "created":
        priority, category = priority_name(event.created.priority), event.created.category
        notify_history = notify_history or event.created.notify_history
    elif event.WhichOneof("change") == "priority_changed":
        priority = priority_name(event.priority_changed.to_priority)
    return Leg(
        handoff_id=event.handoff_id, case_id=event.case_id or (known.case_id if known else ""),
        customer_ref=event.customer_ref or (known.customer_ref if known else ""),
        department=event.department or (known.department if known else ""), priority=priority, category=category,
        breached=known.breached if known else False, open=known.open if known else (),
        ends=known.ends if known else (),
        notify_history=notify_history, requested=known.requested if known else (),
    )


def is_avoidable(event: contacts_pb2.RepeatContactDetected) -> bool:
    """Whether a repeat contact was caused by a breached leg (failure demand)."""
    return event.cause == types_pb2.REPEAT_CAUSE_SLA_BREACHED and bool(event.handoff_id)


def clock_of(event: sla_events_pb2.SlaEvent) -> str:
    return CLOCK_NAMES.get(event.clock, "ack")


def warning_of(event: sla_events_pb2.SlaEvent) -> tuple[float, datetime]:
    """A warning's fraction of the target and the clock's deadline."""
    return event.warning.fraction, from_timestamp(event.warning.deadline)


def breach_deadline(event: sla_events_pb2.SlaEvent) -> datetime:
    return from_timestamp(event.breached.deadline)


def contacted_at(event: contacts_pb2.RepeatContactDetected) -> datetime:
    return from_timestamp(event.contacted_at)


def occurred_at(message) -> datetime:
    """The event time of an event (envelope) or a Notification."""
    stamp = message.occurred_at if isinstance(message, notifications_pb2.Notification) else message.envelope.occurred_at
    return from_timestamp(stamp)


# --- notifications -----------------------------------------------------------------------


# The last notification built, with its message: a request and its delivery carry the same
# notification (stage 2 takes what stage 1 requested in the same pass), built once.
# Swapped as one tuple, so a reader on another thread sees a consistent pair.
_last_built: tuple[Notification | None, notifications_pb2.Notification | None] = (None, None)


def notification_pb(notification: Notification) -> notifications_pb2.Notification:
    """The message of a notification (treat it as read-only: the last one built is reused)."""
    global _last_built
    last = _last_built
    if last[0] is notification:
        return last[1]
    message = _notification_pb(notification)
    _last_built = (notification, message)
    return message


def _notification_pb(notification: Notification) -> notifications_pb2.Notification:
    return _fill_notification(notifications_pb2.Notification(), notification)


def _fill_notification(message: notifications_pb2.Notification,
                       notification: Notification) -> notifications_pb2.Notification:
    """`message` (empty) given the notification's fields, in place: a constructor copies every
    message it is given (the timestamp, each item), and this runs for every notification."""
    message.notification_id, message.key = notification.notification_id, notification.key
    message.kind, message.receiver = _KINDS[notification.kind], notification.receiver
    message.department, message.priority = notification.department, _priority(notification.priority)
    message.handoff_id, message.case_id = notification.handoff_id, notification.case_id
    message.customer_ref = notification.customer_ref
    message.clock = _CLOCKS.get(notification.clock, types_pb2.CLOCK_KIND_UNSPECIFIED)
    message.title, message.body = notification.title, notification.body
    _set_timestamp(message.occurred_at, notification.occurred_at)
    labels = message.labels
    for name, value in _labels(notification).items():  # the map's update() is the generic, slower one
        labels[name] = value
    message.escalation_level = notification.escalation_level
    for item in notification.items:
        _fill_notification(message.items.add(), item)
    return message


def _priority(name: str) -> int:
    """The Priority value of 'HIGH' &c. (a dict: the enum wrapper's Value() is several times slower)."""
    value = _PRIORITIES.get(name)
    if value is None:
        raise ValueError(f"unknown priority {name!r}")
    return value


def _labels(notification: Notification) -> dict[str, str]:
    """The routing labels, then the pipeline's (_EXTRA_LABELS), those with a value."""
    labels = {name: value for name, value in notification.labels.items() if value}
    for name in _EXTRA_LABELS:
        value = getattr(notification, name)
        if value:
            labels[name] = value
    return labels


def notification_from(message: notifications_pb2.Notification) -> Notification:
    """The domain notification a message carries (ValueError for an unknown kind)."""
    if message.kind not in _KIND_NAMES:
        raise ValueError(f"notification {message.notification_id}: unknown kind {message.kind}")
    return Notification(
        notification_id=message.notification_id, key=message.key, kind=_KIND_NAMES[message.kind],
        receiver=message.receiver, department=message.department, priority=priority_name(message.priority),
        handoff_id=message.handoff_id, case_id=message.case_id, customer_ref=message.customer_ref,
        clock=CLOCK_NAMES.get(message.clock, ""), title=message.title, body=message.body,
        occurred_at=from_timestamp(message.occurred_at), category=message.labels.get("category", ""),
        escalation_level=message.escalation_level, items=tuple(notification_from(i) for i in message.items),
        **{name: message.labels.get(name, "") for name in _EXTRA_LABELS},
    )


# Pipeline facts carried as labels (beside the routing labels), restored on the way back.
_EXTRA_LABELS = ("group_key", "flush", "origin_id", "origin_receiver")


def notification_bytes(notification: Notification) -> bytes:
    """A notification's message, serialized."""
    return notification_pb(notification).SerializeToString()


def notification_parsed(data: bytes) -> Notification:
    """The notification `notification_bytes` gave."""
    return notification_from(notifications_pb2.Notification.FromString(data))


def stored(notification: Notification) -> str:
    """A notification as a table value (JSON text)."""
    return stored_text(notification_bytes(notification))


def stored_text(encoded: bytes) -> str:
    """A serialized notification (notification_bytes) as a table value."""
    return base64.b64encode(encoded).decode()


def stored_bytes(text: str) -> bytes:
    """The notification_bytes a `stored` value holds."""
    return base64.b64decode(text)


def restored(text: str) -> Notification:
    return notification_parsed(stored_bytes(text))


# --- notification events ------------------------------------------------------------------


def _set_timestamp(stamp: timestamp_pb2.Timestamp, moment: datetime) -> None:
    """`stamp` set to an aware datetime in place (without building a Timestamp that its parent
    message would then copy)."""
    stamp.seconds, stamp.nanos = timestamp_fields(moment)


def _event_message(event_id: str, receiver: str, occurred: datetime, recorded: datetime,
                   **change) -> notifications_pb2.NotificationEvent:
    """A NotificationEvent with its envelope (as common.codec.new_envelope makes it), receiver and
    `change`, if given; the hot paths give their change in place instead (a constructor copies
    every message it is given: the notification twice, through the change)."""
    event = notifications_pb2.NotificationEvent(receiver=receiver, **change)
    envelope = event.envelope
    envelope.event_id, envelope.source = event_id, SOURCE
    _set_timestamp(envelope.occurred_at, occurred)
    _set_timestamp(envelope.recorded_at, recorded)
    envelope.trace.SetInParent()  # an empty trace context, as new_envelope writes
    return event


def _event(event_id: str, receiver: str, occurred: datetime, recorded: datetime, **change) -> bytes:
    return _event_message(event_id, receiver, occurred, recorded, **change).SerializeToString()


def encode_requested(notification: Notification, channels: list[str], recorded_at: datetime,
                     acknowledged: tuple[datetime, str] | None = None, deliver_history: bool = False,
                     dispatched: bool = False) -> bytes:
    """A NotificationEvent(requested) record value; its event id is the notification's id.

    `acknowledged`: (when, by whom) the notification counts as acknowledged already (its
    leg ended before stage 1 read the notice's late source event). `deliver_history`: deliver
    it however old (its leg was imported with --notify). `dispatched`: stage 2 took it in the
    transaction that writes it.
    """
    event = _event_message(notification.notification_id, notification.receiver, notification.occurred_at,
                           recorded_at)
    requested = event.requested
    requested.notification.CopyFrom(notification_pb(notification))
    requested.channels.extend(channels)
    requested.deliver_history, requested.dispatched = deliver_history, dispatched
    if acknowledged is not None:
        _set_timestamp(requested.acknowledged_at, acknowledged[0])
        requested.acknowledged_by = acknowledged[1]
    return event.SerializeToString()


def acknowledged_with(requested: notifications_pb2.NotificationRequested) -> tuple[datetime, str] | None:
    """The acknowledgement a `requested` event carries, else None."""
    if not requested.HasField("acknowledged_at"):
        return None
    return from_timestamp(requested.acknowledged_at), requested.acknowledged_by


def encode_acknowledged(notification_id: str, receiver: str, by: str, at: datetime,
                        recorded_at: datetime | None = None) -> bytes:
    """Acknowledged by `by` at `at` (event time); recorded at `recorded_at` (`at` unless given)."""
    return _event(derived_event_id("acknowledged", notification_id, by), receiver, at, recorded_at or at,
                  acknowledged=notifications_pb2.NotificationAcknowledged(
                      notification_id=notification_id, acknowledged_by=by))


def encode_heartbeat(at: datetime, source_partition: int, source_partitions: int, partition: int,
                     recorded_at: datetime) -> bytes:
    """Event time `at` reached by `source_partition` of handoff.events.v1, for `partition`."""
    event_id = derived_event_id("heartbeat", str(partition), str(source_partition), at.isoformat())
    return _event(event_id, "", at, recorded_at, heartbeat=notifications_pb2.NotificationHeartbeat(
        source_partition=source_partition, source_partitions=source_partitions))


def encode_delivered(delivery_id: str, notification: Notification, channel: str, attempts: int, at: datetime,
                     carry: bool) -> bytes:
    """`carry`: include the notification (the subscription channel's stream reads it)."""
    event = _event_message(derived_event_id("delivered", delivery_id), notification.receiver, at, at)
    delivered = event.delivered
    delivered.notification_id, delivered.channel = notification.notification_id, channel
    _set_timestamp(delivered.delivered_at, at)
    delivered.attempts, delivered.delivery_id = attempts, delivery_id
    if carry:
        delivered.notification.CopyFrom(notification_pb(notification))
    return event.SerializeToString()


def encode_failed(delivery_id: str, notification: Notification, channel: str, reason: str, attempts: int,
                  at: datetime) -> bytes:
    return _event(derived_event_id("failed", delivery_id), notification.receiver, at, at,
                  failed=notifications_pb2.NotificationFailed(
                      notification_id=notification.notification_id, channel=channel, reason=reason,
                      attempts=attempts, delivery_id=delivery_id))


def encode_suppressed(notification: Notification, reason: str, silence_id: str, at: datetime) -> bytes:
    return _event(derived_event_id("suppressed", notification.notification_id), notification.receiver, at, at,
                  suppressed=notifications_pb2.NotificationSuppressed(
                      notification_id=notification.notification_id, reason=reason, silence_id=silence_id))


def encode_escalated(step_id: str, notification_id: str, receiver: str, level: int, reminder: int,
                     to_receiver: str, at: datetime, recorded_at: datetime | None = None) -> bytes:
    """The step due at `at` taken (recorded at `recorded_at`, `at` unless given)."""
    return _event(step_id, receiver, at, recorded_at or at, escalated=notifications_pb2.NotificationEscalated(
        notification_id=notification_id, level=level, to_receiver=to_receiver, reminder=reminder))


def requested_notification(event: notifications_pb2.NotificationEvent) -> notifications_pb2.Notification | None:
    """The notification a `requested` event carries, else None."""
    if event.WhichOneof("change") != "requested":
        return None
    return event.requested.notification


def subscription_delivery(event: notifications_pb2.NotificationEvent) -> notifications_pb2.Notification | None:
    """The notification a `delivered` event hands to subscribers, else None."""
    if event.WhichOneof("change") != "delivered" or not event.delivered.HasField("notification"):
        return None
    return event.delivered.notification


def fill_deliver_request(request: channel_gateway_pb2.DeliverRequest, delivery_id: str, kind: str, target: str,
                         encoded: bytes) -> channel_gateway_pb2.DeliverRequest:
    """`request` (empty) made the ChannelGateway DeliverRequest of one delivery, in place (a
    batch's entries are filled where they stand, not built, then copied); `encoded`: the
    notification's notification_bytes (parsed, not rebuilt field by field)."""
    request.delivery_id, request.channel, request.target = delivery_id, kind, target
    request.notification.MergeFromString(encoded)
    return request


def deliver_request(delivery_id: str, kind: str, target: str, encoded: bytes) -> channel_gateway_pb2.DeliverRequest:
    """A ChannelGateway DeliverRequest on its own."""
    return fill_deliver_request(channel_gateway_pb2.DeliverRequest(), delivery_id, kind, target, encoded)
