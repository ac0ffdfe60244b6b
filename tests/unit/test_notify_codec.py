"""notify.adapters.codec: SlaEvent breaches in, NotificationEvent(requested) records out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from handoff.v1 import envelope_pb2, notifications_pb2, sla_events_pb2, types_pb2

from common.codec import from_timestamp, to_timestamp
from tests.unit.conftest import T0
from notify.adapters.codec import (
    breach_deadline, clock_of, encode_requested, leg_of, occurred_at, requested_notification,
)
from notify.domain.requests import Leg, addressed, breach_notice

RECORDED = T0 + timedelta(minutes=1)


def sla_breach(priority=types_pb2.PRIORITY_HIGH, clock=types_pb2.CLOCK_KIND_RESOLVE) -> sla_events_pb2.SlaEvent:
    return sla_events_pb2.SlaEvent(
        envelope=envelope_pb2.Envelope(event_id="sla-1", occurred_at=to_timestamp(T0)),
        handoff_id="h-1",
        case_id="case-1",
        customer_ref="cust-1",
        department="billing",
        priority=priority,
        category="refund",
        clock=clock,
        clock_sequence=1,
        breached=sla_events_pb2.ClockBreached(deadline=to_timestamp(T0), breached_at=to_timestamp(T0)),
    )


def notify_breach(event: sla_events_pb2.SlaEvent):
    """The breach notification stage 1 makes of `event` for the department holding the leg."""
    return addressed(breach_notice(leg_of(event), clock_of(event), breach_deadline(event)), event.department)


def test_a_breached_sla_event_reads_as_its_leg_clock_and_deadline():
    event = sla_breach()

    assert leg_of(event) == Leg(handoff_id="h-1", case_id="case-1", customer_ref="cust-1", department="billing",
                                priority="HIGH", category="refund")
    assert (clock_of(event), breach_deadline(event)) == ("resolve", T0)


def test_an_unset_priority_reads_as_normal():
    # As the sla codec does: an unset priority counts as NORMAL.
    assert leg_of(sla_breach(priority=types_pb2.PRIORITY_UNSPECIFIED)).priority == "NORMAL"


def test_the_same_sla_record_read_twice_gives_the_same_notification_id():
    first = notify_breach(sla_breach())
    again = notify_breach(sla_breach())

    assert first.notification_id == again.notification_id


def test_the_same_breach_under_another_record_id_keeps_its_notification_id():
    # The id depends on what the breach is about, not on which record carried it.
    again = sla_breach()
    again.envelope.event_id = "sla-2"

    assert notify_breach(again).notification_id == notify_breach(sla_breach()).notification_id


def test_encode_requested_parses_back_to_the_notification_it_carries():
    # given
    notification = notify_breach(sla_breach())

    # when
    event = notifications_pb2.NotificationEvent()
    event.ParseFromString(encode_requested(notification, ["subscription", "webhook"], RECORDED))

    # then
    assert event.WhichOneof("change") == "requested"
    assert event.envelope.event_id == notification.notification_id
    assert event.envelope.source == "notify"
    assert from_timestamp(event.envelope.occurred_at) == T0
    assert from_timestamp(event.envelope.recorded_at) == RECORDED
    assert event.receiver == "billing"
    assert list(event.requested.channels) == ["subscription", "webhook"]
    carried = requested_notification(event)
    assert carried.notification_id == notification.notification_id
    assert carried.key == notification.key
    assert carried.kind == notifications_pb2.NOTIFICATION_KIND_BREACH
    assert (carried.receiver, carried.department) == ("billing", "billing")
    assert carried.priority == types_pb2.PRIORITY_HIGH
    assert carried.clock == types_pb2.CLOCK_KIND_RESOLVE
    assert (carried.handoff_id, carried.case_id, carried.customer_ref) == ("h-1", "case-1", "cust-1")
    assert (carried.title, carried.body) == (notification.title, notification.body)
    # the labels routing matches on: priority upper case, as routing.yaml writes it
    assert dict(carried.labels) == {"department": "billing", "priority": "HIGH", "kind": "breach",
                                    "category": "refund", "clock": "resolve", "handoff_id": "h-1"}
    assert occurred_at(carried) == T0


@pytest.mark.parametrize(
    "event",
    [
        notifications_pb2.NotificationEvent(
            receiver="billing", delivered=notifications_pb2.NotificationDelivered(notification_id="n-1")
        ),
        notifications_pb2.NotificationEvent(receiver="billing"),
    ],
    ids=["delivered", "no-change"],
)
def test_requested_notification_is_none_for_other_changes(event):
    assert requested_notification(event) is None


def test_a_notification_survives_the_round_trip_through_protobuf_digest_items_included():
    from dataclasses import replace

    from notify.adapters.codec import notification_from, notification_pb, restored, stored

    member = notify_breach(sla_breach())
    digest = replace(member, notification_id="d-1", key="digest:k", kind="digest", items=(member, member),
                     group_key='billing:{department="billing"}', flush="1:first")
    assert notification_from(notification_pb(digest)) == digest
    assert restored(stored(digest)) == digest


def test_a_gateway_request_carries_the_notification_as_it_was_stored():
    from notify.adapters.codec import deliver_request, notification_from, notification_pb, stored, stored_bytes
    from notify.adapters.state import Job, job_from, job_value

    notification = notify_breach(sla_breach())
    job = job_from("d-1", job_value(Job("d-1", notification, "ops-log", 3, 7, T0)))
    assert job.encoded == stored_bytes(stored(notification))

    request = deliver_request("d-1", "log", "ops", job.encoded)

    assert (request.delivery_id, request.channel, request.target) == ("d-1", "log", "ops")
    assert request.notification == notification_pb(notification)
    assert notification_from(request.notification) == notification


def test_the_subscription_stream_reads_only_deliveries_that_carry_their_notification():
    from notify.adapters.codec import encode_delivered, subscription_delivery

    note = notify_breach(sla_breach())
    carried = notifications_pb2.NotificationEvent.FromString(encode_delivered("d-1", note, "subscription", 1, T0, True))
    bare = notifications_pb2.NotificationEvent.FromString(encode_delivered("d-2", note, "webhook", 3, T0, False))
    assert subscription_delivery(carried).notification_id == note.notification_id
    assert subscription_delivery(bare) is None
    assert carried.delivered.delivery_id == "d-1" and bare.delivered.attempts == 3
