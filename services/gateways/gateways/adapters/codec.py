"""DeliverRequest in, DeliverResponse (or a batch of results) out: the only `*_pb2` user of the gateways."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from handoff.v1 import channel_gateway_pb2, notifications_pb2

from common.codec import CLOCK_NAMES, from_timestamp, priority_name
from common.validation import InvalidField
from gateways.domain.delivery import Delivery, Notification

SERVICE_NAME = channel_gateway_pb2.DESCRIPTOR.services_by_name["ChannelGateway"].full_name
_KIND_NAMES = {
    value: name.removeprefix("NOTIFICATION_KIND_").lower()
    for name, value in notifications_pb2.NotificationKind.items()
}


def notification_from(message: notifications_pb2.Notification) -> Notification:
    """The domain notification, digest members included; enum values become names."""
    return Notification(
        notification_id=message.notification_id,
        key=message.key,
        kind=_KIND_NAMES.get(message.kind, "unspecified"),
        receiver=message.receiver,
        department=message.department,
        priority=priority_name(message.priority),
        handoff_id=message.handoff_id,
        case_id=message.case_id,
        customer_ref=message.customer_ref,
        clock=CLOCK_NAMES.get(message.clock, ""),
        title=message.title,
        body=message.body,
        occurred_at=_instant(message) if message.HasField("occurred_at") else None,
        labels=dict(message.labels) if message.labels else {},
        escalation_level=message.escalation_level,
        items=tuple(notification_from(item) for item in message.items) if message.items else (),
    )


def _instant(message) -> datetime:
    try:
        return from_timestamp(message.occurred_at)
    except ValueError as error:
        raise InvalidField("notification.occurred_at", str(error)) from None


def delivery_from(request: channel_gateway_pb2.DeliverRequest) -> Delivery:
    """The delivery a request asks for, unchecked (`notification` None when absent)."""
    notification = notification_from(request.notification) if request.HasField("notification") else None
    return Delivery(request.delivery_id, request.channel, request.target, notification)


def deliver_response(delivery_id: str, receipt: str) -> channel_gateway_pb2.DeliverResponse:
    return channel_gateway_pb2.DeliverResponse(delivery_id=delivery_id, receipt=receipt)


def deliver_batch_response(results: Iterable[tuple[str, int, str, str]]) -> channel_gateway_pb2.DeliverBatchResponse:
    """From (delivery_id, status code, message, receipt) per delivery, in the request's order."""
    return channel_gateway_pb2.DeliverBatchResponse(results=[
        channel_gateway_pb2.DeliverResult(delivery_id=delivery_id, code=code, message=message, receipt=receipt)
        for delivery_id, code, message, receipt in results])
