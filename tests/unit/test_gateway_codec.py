"""gateways.adapters.codec: DeliverRequest in, the domain delivery out; receipts back."""

from __future__ import annotations

from datetime import datetime, timezone

from handoff.v1 import channel_gateway_pb2, notifications_pb2, types_pb2

from common.codec import to_timestamp
from gateways.adapters.codec import SERVICE_NAME, deliver_response, delivery_from
from gateways.domain.delivery import Delivery, Notification

OCCURRED = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)


def test_a_request_becomes_a_delivery_with_names_for_enum_values_and_nested_items():
    member = notifications_pb2.Notification(notification_id="n-2", kind=notifications_pb2.NOTIFICATION_KIND_WARNING)
    request = channel_gateway_pb2.DeliverRequest(
        delivery_id="d-1",
        channel="webhook",
        target="https://hooks.example/",
        notification=notifications_pb2.Notification(
            notification_id="n-1",
            key="k",
            kind=notifications_pb2.NOTIFICATION_KIND_DIGEST,
            receiver="billing",
            department="billing",
            priority=types_pb2.PRIORITY_URGENT,
            handoff_id="h-1",
            case_id="case-1",
            customer_ref="c-1",
            clock=types_pb2.CLOCK_KIND_RESOLVE,
            title="t",
            body="b",
            occurred_at=to_timestamp(OCCURRED),
            labels={"team": "2"},
            escalation_level=1,
            items=[member],
        ),
    )

    assert delivery_from(request) == Delivery(
        "d-1",
        "webhook",
        "https://hooks.example/",
        Notification(
            notification_id="n-1",
            key="k",
            kind="digest",
            receiver="billing",
            department="billing",
            priority="URGENT",
            handoff_id="h-1",
            case_id="case-1",
            customer_ref="c-1",
            clock="resolve",
            title="t",
            body="b",
            occurred_at=OCCURRED,
            labels={"team": "2"},
            escalation_level=1,
            items=(Notification(notification_id="n-2", kind="warning"),),
        ),
    )


def test_unset_values_read_as_defaults_and_a_missing_notification_as_none():
    bare = delivery_from(
        channel_gateway_pb2.DeliverRequest(delivery_id="d-1", notification=notifications_pb2.Notification(notification_id="n"))
    )

    assert bare.notification == Notification(notification_id="n", kind="unspecified", priority="NORMAL", clock="")
    assert bare.notification.occurred_at is None
    assert delivery_from(channel_gateway_pb2.DeliverRequest(delivery_id="d-1")).notification is None


def test_the_response_carries_the_delivery_id_and_receipt():
    assert deliver_response("d-1", "202 req-1") == channel_gateway_pb2.DeliverResponse(delivery_id="d-1", receipt="202 req-1")
    assert SERVICE_NAME == "handoff.v1.ChannelGateway"
