"""Notifications: the read model every replica fills from notifications.v1, page tokens,
and the servicer's ListNotifications and Acknowledge (who may, idempotence)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notifications_pb2

from common.auth import PermissionDenied
from common.codec import decode, new_envelope, to_timestamp
from common.topics import NOTIFICATIONS, SILENCES
from common.validation import InvalidField
from notify import metrics
from notify.adapters.notification_store import NotificationStore
from notify.entrypoints import api_requests as req
from tests.unit.conftest import T0
from tests.unit.test_silence_store import ADMIN, AGENT, BILLING, CLAIMS, SERVICE, Aborted, api, call


def requested(notification_id, department="billing", minutes=0, receiver=None):
    at = T0 + timedelta(minutes=minutes)
    return notifications_pb2.NotificationEvent(
        envelope=new_envelope("notify", at, at, event_id=notification_id),
        receiver=receiver or f"{department}-team",
        requested=notifications_pb2.NotificationRequested(notification=notifications_pb2.Notification(
            notification_id=notification_id, department=department, receiver=receiver or f"{department}-team",
            kind=notifications_pb2.NOTIFICATION_KIND_BREACH, title=f"breach {notification_id}", occurred_at=to_timestamp(at),
        ), channels=["subscription"]),
    )


def event(receiver="billing-team", request_id="", **change):
    return notifications_pb2.NotificationEvent(
        envelope=new_envelope("notify", T0, T0, request_id=request_id), receiver=receiver, **change
    )


def store_with(*events) -> NotificationStore:
    store = NotificationStore()
    for item in events:
        store.apply(NOTIFICATIONS, item)
    return store


# --- the store -------------------------------------------------------------------------


def test_a_notification_collects_what_became_of_it():
    store = store_with(
        requested("n-1"),
        event(delivered=notifications_pb2.NotificationDelivered(notification_id="n-1", channel="webhook",
                                                                delivered_at=to_timestamp(T0))),
        event(failed=notifications_pb2.NotificationFailed(notification_id="n-1", channel="email", reason="smtp down")),
        event(escalated=notifications_pb2.NotificationEscalated(notification_id="n-1", level=2, to_receiver="lead")),
        event(acknowledged=notifications_pb2.NotificationAcknowledged(notification_id="n-1", acknowledged_by="amy")),
        event(acknowledged=notifications_pb2.NotificationAcknowledged(notification_id="n-1", acknowledged_by="bob")),
    )

    record = store.get("n-1")
    assert (record.receiver, record.department, record.occurred_at) == ("billing-team", "billing", T0)
    assert list(record.delivered) == ["webhook"] and record.failed == {"email": "smtp down"}
    assert record.escalation_level == 2
    assert record.is_acknowledged and record.acknowledged_by == "amy"


def test_events_read_before_their_request_wait_for_it_and_a_repeated_request_changes_nothing():
    store = store_with(
        event(suppressed=notifications_pb2.NotificationSuppressed(notification_id="n-1", reason="silence",
                                                                  silence_id="s-1")),
    )
    assert store.get("n-1") is None and len(store) == 0

    store.apply(NOTIFICATIONS, requested("n-1"))
    store.apply(NOTIFICATIONS, requested("n-1", minutes=9))

    assert (store.get("n-1").suppressed, store.get("n-1").silence_id) == ("silence", "s-1")
    assert store.get("n-1").occurred_at == T0
    assert len(store) == 1


def test_pages_are_newest_first_per_department_and_continue_after_the_last_key():
    store = store_with(*(requested(f"n-{m}", "billing" if m % 2 else "claims", minutes=m) for m in range(7)))

    first, more = store.page("billing", None, 2)
    rest, more_after = store.page("billing", first[-1].list_key, 2)

    assert [r.notification_id for r in first] == ["n-5", "n-3"] and more
    assert [r.notification_id for r in rest] == ["n-1"] and not more_after
    assert [r.notification_id for r in store.page(None, None, 3)[0]] == ["n-6", "n-5", "n-4"]
    assert store.page("sales", None, 3) == ([], False)


def test_lists_are_the_same_whatever_order_the_notifications_arrive_in():
    """Partitions interleave and a replay may run backwards: the lists sort on the instant."""
    minutes = [3, 9, 0, 7, 1, 8, 2, 6, 4, 5]
    forwards = store_with(*(requested(f"n-{m}", "billing" if m % 2 else "claims", minutes=m) for m in sorted(minutes)))
    shuffled = store_with(*(requested(f"n-{m}", "billing" if m % 2 else "claims", minutes=m) for m in minutes))
    backwards = store_with(*(requested(f"n-{m}", "billing" if m % 2 else "claims", minutes=m)
                             for m in sorted(minutes, reverse=True)))

    for department in (None, "billing", "claims"):
        expected = [r.notification_id for r in forwards.page(department, None, 20)[0]]
        assert [r.notification_id for r in shuffled.page(department, None, 20)[0]] == expected
        assert [r.notification_id for r in backwards.page(department, None, 20)[0]] == expected
    assert [r.notification_id for r in backwards.page(None, None, 20)[0]] == [f"n-{m}" for m in range(9, -1, -1)]
    assert [r.notification_id for r in backwards.page("claims", None, 20)[0]] == ["n-8", "n-6", "n-4", "n-2", "n-0"]


def test_the_store_remembers_which_request_acknowledged_what():
    store = store_with(requested("n-1"), event(request_id="r-1", acknowledged=notifications_pb2.NotificationAcknowledged(
        notification_id="n-1", acknowledged_by="amy")))

    assert store.acknowledged_by_request("amy", "r-1") == "n-1"
    assert store.acknowledged_by_request("bob", "r-1") is None


def test_the_store_refuses_records_it_cannot_use():
    store = NotificationStore()
    with pytest.raises(ValueError):
        store.apply(SILENCES, requested("n-1"))
    with pytest.raises(ValueError):
        store.apply(NOTIFICATIONS, notifications_pb2.NotificationEvent(receiver="x"))
    with pytest.raises(ValueError):
        store.apply(NOTIFICATIONS, event(acknowledged=notifications_pb2.NotificationAcknowledged()))


# --- request checks --------------------------------------------------------------------


def test_page_tokens_round_trip_and_foreign_tokens_name_the_field():
    key = (T0, "n-1")
    assert req.decode_page_token(req.encode_page_token(key)) == key
    assert req.decode_page_token("") is None
    for token in ("garbage", "bm9waXBl"):
        with pytest.raises(InvalidField) as raised:
            req.decode_page_token(token)
        assert raised.value.field == "page_token"


@pytest.mark.parametrize("size, expected", [(0, req.DEFAULT_PAGE), (1, 1), (req.MAX_PAGE, req.MAX_PAGE)])
def test_page_size_defaults_and_bounds(size, expected):
    assert req.page_size(size) == expected


@pytest.mark.parametrize("size", [-1, req.MAX_PAGE + 1])
def test_page_size_out_of_bounds_names_the_field(size):
    with pytest.raises(InvalidField, match="page_size"):
        req.page_size(size)


# --- the servicer ----------------------------------------------------------------------


def serving_notifications(*events):
    store = store_with(*events)
    service, _, writer = api(notifications=store)
    return service, store, writer


def ack(principal, service, notification_id="n-1", request_id="r-1"):
    return call(principal, service.Acknowledge,
                api_pb2.AcknowledgeRequest(request_id=request_id, notification_id=notification_id))


def test_a_department_acknowledges_its_notification_once_and_a_retry_gets_the_first_answer():
    service, store, writer = serving_notifications(requested("n-1"))
    before = metrics.ACKNOWLEDGEMENTS.labels("api")._value.get()

    first = ack(BILLING, service)
    retry = ack(BILLING, service)
    other_request = ack(BILLING, service, request_id="r-2")

    assert (first.notification_id, first.already_acknowledged) == ("n-1", False)
    assert retry == first
    assert other_request.already_acknowledged
    assert len(writer.sent) == 1
    topic, key, value = writer.sent[0]
    written = decode(NOTIFICATIONS, value)
    assert (topic, key, written.receiver) == (NOTIFICATIONS.name, "billing-team", "billing-team")
    assert (written.acknowledged.notification_id, written.acknowledged.acknowledged_by) == ("n-1", "billing-lead")
    assert written.envelope.request_id == "r-1"
    assert store.get("n-1").acknowledged_by == "billing-lead"
    assert metrics.ACKNOWLEDGEMENTS.labels("api")._value.get() == before + 1


def test_a_request_id_reused_for_another_notification_is_invalid():
    service, _, _ = serving_notifications(requested("n-1"), requested("n-2", minutes=1))
    ack(BILLING, service, "n-1", "r-1")

    with pytest.raises(Aborted) as raised:
        ack(BILLING, service, "n-2", "r-1")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in raised.value.details


def test_who_may_acknowledge():
    service, _, writer = serving_notifications(requested("n-1"), requested("n-2", minutes=1), requested("n-3", minutes=2))

    with pytest.raises(PermissionDenied, match="department claims may acknowledge only its own notifications"):
        ack(CLAIMS, service, "n-1")
    with pytest.raises(PermissionDenied):
        ack(AGENT, service, "n-1")
    assert not ack(ADMIN, service, "n-2").already_acknowledged
    assert not ack(SERVICE, service, "n-3").already_acknowledged
    assert len(writer.sent) == 2


@pytest.mark.parametrize("request_, code", [
    (api_pb2.AcknowledgeRequest(request_id="r-1", notification_id="n-404"), grpc.StatusCode.NOT_FOUND),
    (api_pb2.AcknowledgeRequest(notification_id="n-1"), grpc.StatusCode.INVALID_ARGUMENT),
    (api_pb2.AcknowledgeRequest(request_id="r-1", notification_id="bad id!"), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_unknown_and_malformed_acknowledgements(request_, code):
    service, _, writer = serving_notifications(requested("n-1"))

    with pytest.raises(Aborted) as raised:
        call(BILLING, service.Acknowledge, request_)
    assert raised.value.code == code
    assert writer.sent == []


def test_a_department_lists_only_its_own_notifications_admins_and_services_any():
    service, _, _ = serving_notifications(requested("n-1", "billing"), requested("n-2", "claims", minutes=1))

    def listed(principal, department=""):
        answer = call(principal, service.ListNotifications, api_pb2.ListNotificationsRequest(department=department))
        return [n.notification_id for n in answer.notifications], [s.notification_id for s in answer.states]

    assert listed(BILLING) == (["n-1"], ["n-1"])
    assert listed(BILLING, "billing") == (["n-1"], ["n-1"])
    assert listed(ADMIN) == (["n-2", "n-1"], ["n-2", "n-1"])
    assert listed(SERVICE, "claims") == (["n-2"], ["n-2"])
    with pytest.raises(PermissionDenied, match="department billing may list only its own notifications"):
        listed(BILLING, "claims")
    with pytest.raises(PermissionDenied):
        listed(AGENT, "billing")


def test_list_pages_and_bad_list_arguments():
    service, _, _ = serving_notifications(*(requested(f"n-{m}", minutes=m) for m in range(3)))
    first = call(ADMIN, service.ListNotifications, api_pb2.ListNotificationsRequest(page_size=2))
    second = call(ADMIN, service.ListNotifications,
                  api_pb2.ListNotificationsRequest(page_size=2, page_token=first.next_page_token))

    assert [n.notification_id for n in [*first.notifications, *second.notifications]] == ["n-2", "n-1", "n-0"]
    assert second.next_page_token == ""
    for bad in (api_pb2.ListNotificationsRequest(department="Billing!"), api_pb2.ListNotificationsRequest(page_size=-1),
                api_pb2.ListNotificationsRequest(page_token="nope")):
        with pytest.raises(Aborted) as raised:
            call(ADMIN, service.ListNotifications, bad)
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
