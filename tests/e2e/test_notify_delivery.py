"""Delivery end to end: a gateway outage, grouping into a digest, a subscriber's resume.

Real broker, services and gateway processes; webhooks land at an HTTP receiver in the test
that verifies each HMAC signature and counts every delivery id.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from handoff.v1 import notifications_pb2
from kafka import KafkaProducer

from common.topics import NOTIFICATIONS
from notify.adapters.codec import encode_acknowledged, encode_requested
from notify.domain.notifications import INCIDENT, Notification
from tests.e2e.test_notify_helpers import counter, create_leg, notification_events, notify_stack
from tests.support import Subscription, read_records, wait_for

pytestmark = pytest.mark.e2e
BREACH = notifications_pb2.NOTIFICATION_KIND_BREACH


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with notify_stack(tmp_path_factory.mktemp("notify-delivery")) as env:
        yield env


def requested_for(stack, receiver: str, handoff_ids: set[str], until=lambda found: False, timeout: float = 5):
    return notification_events(
        stack, "requested", until, timeout,
        match=lambda e: e.receiver == receiver and e.requested.notification.handoff_id in handoff_ids)


def test_a_gateway_down_for_a_while_gets_every_notification_once_it_is_back(env) -> None:
    stack, hooks = env
    retries_before = counter(stack, "notify", "handoff_delivery_retries", channel="webhook")
    # given the webhook gateway is down
    assert stack.services["gateway-webhook"].stop() == 0
    # when three accounts legs warn and breach meanwhile
    legs = {create_leg(stack, "accounts").handoff_id for _ in range(3)}
    requested = requested_for(stack, "accounts", legs, lambda found: len(found) >= 9, timeout=30)
    assert len(requested) >= 9  # two warnings and a breach per leg
    # then notify keeps retrying, and nothing reaches the receiver
    assert wait_for(lambda: counter(stack, "notify", "handoff_delivery_retries", channel="webhook")
                    >= retries_before + 9, timeout=30)
    assert [r for r in hooks.at("accounts") if r["handoff_id"] in legs] == []
    # when the gateway comes back (on its address)
    stack.start_gateway("webhook")
    # then every notification requested meanwhile is delivered, exactly once
    ids = {e.requested.notification.notification_id for e in requested}
    delivered = lambda: Counter(r["notification_id"] for r in hooks.at("accounts") if r["notification_id"] in ids)  # noqa: E731
    assert wait_for(lambda: set(delivered()) == ids, timeout=30), f"missing: {ids - set(delivered())}"
    time.sleep(3)
    assert set(delivered().values()) == {1}
    assert hooks.repeated_deliveries() == {} and hooks.bad_signatures == 0
    # and the receipts say it took more than one attempt
    receipts = notification_events(stack, "delivered", lambda found: len(found) >= len(ids), timeout=10,
                                   match=lambda e: e.delivered.notification_id in ids)
    assert {e.delivered.channel for e in receipts} == {"webhook"}
    assert min(e.delivered.attempts for e in receipts) > 1
    assert notification_events(stack, "failed", match=lambda e: e.failed.notification_id in ids) == []


def test_breaches_within_group_wait_become_one_digest(env) -> None:
    stack, hooks = env
    # given claims groups for 4 s by department and kind
    # when three claims legs breach within that time
    legs = {create_leg(stack, "claims").handoff_id for _ in range(3)}

    def breach_digests() -> list[dict]:
        return [r for r in hooks.at("claims") if r["kind"] == "digest"
                and {item["kind"] for item in r["items"]} == {"breach"}
                and {item["handoff_id"] for item in r["items"]} & legs]

    # then the team's webhook gets one digest carrying the three breaches
    assert wait_for(breach_digests, timeout=40)
    time.sleep(3)
    digests = breach_digests()
    assert len(digests) == 1
    assert sorted(item["handoff_id"] for item in digests[0]["items"]) == sorted(legs)
    assert digests[0]["title"].startswith("3 breaches")
    # and no breach went out on its own
    assert [r for r in hooks.at("claims") if r["kind"] == "breach" and r["handoff_id"] in legs] == []
    # and subscribers got the same digest
    feed = notification_events(
        stack, "delivered", lambda found: bool(found), timeout=10,
        match=lambda e: e.delivered.channel == "subscription" and e.receiver == "claims"
        and e.delivered.notification.notification_id == digests[0]["notification_id"])
    assert len(feed[0].delivered.notification.items) == 3


def test_a_subscriber_that_reconnects_with_its_cursor_gets_exactly_what_it_missed(env) -> None:
    stack, _hooks = env
    address = stack.services["notify"].grpc
    # given a subscriber that saw the breach of a first leg
    first = Subscription(address, "field")
    time.sleep(1.5)  # the stream reads from its end: let it find it
    leg1 = create_leg(stack, "field").handoff_id
    seen = first.until(lambda got: any(r.notification.kind == BREACH for r in got), timeout=30)
    cursor = next(r.cursor for r in seen if r.notification.kind == BREACH)
    # when it disconnects, and two more legs warn and breach meanwhile
    first.close()
    missed_legs = {create_leg(stack, "field").handoff_id for _ in range(2)}
    missed = notification_events(
        stack, "delivered", lambda found: sum(e.delivered.notification.kind == BREACH for e in found) >= 2,
        timeout=30, match=lambda e: e.receiver == "field" and e.delivered.notification.handoff_id in missed_legs)
    missed_ids = {e.delivered.notification.notification_id for e in missed}
    # and it reconnects with its cursor
    again = Subscription(address, "field", cursor=cursor)
    got = again.until(lambda got: missed_ids <= {r.notification.notification_id for r in got}, timeout=30)
    time.sleep(2)
    got += again.until(lambda _got: False, timeout=1)
    again.close()
    # then it receives each missed notification once, and nothing it had seen before
    received = Counter(r.notification.notification_id for r in got)
    assert missed_ids <= set(received) and set(received.values()) == {1}
    assert leg1 not in {r.notification.handoff_id for r in got}


def test_a_delivery_the_gateway_refuses_for_good_fails_once_and_goes_to_the_dlq(env) -> None:
    stack, _hooks = env
    # given a receiver whose webhook answers 404 (FAILED_PRECONDITION: retrying cannot help)
    leg = create_leg(stack, "gone").handoff_id
    breach = requested_for(stack, "gone", {leg}, lambda found: any(
        e.requested.notification.kind == BREACH for e in found), timeout=30)
    breach_id = next(e.requested.notification.notification_id for e in breach
                     if e.requested.notification.kind == BREACH)
    # then its delivery fails once, with the reason
    failed = notification_events(stack, "failed", lambda found: bool(found), timeout=20,
                                 match=lambda e: e.failed.notification_id == breach_id)
    assert len(failed) == 1 and "404" in failed[0].failed.reason and failed[0].failed.attempts == 1
    # and the request is on the DLQ with the reason in its headers
    dead = read_records(stack.bootstrap, NOTIFICATIONS.dlq, lambda records: any(
        breach_id.encode() in r.value for r in records), timeout=20)
    record = next(r for r in dead if breach_id.encode() in r.value)
    assert record.key == b"gone" and b"404" in dict(record.headers)["dlq.error"]
    assert counter(stack, "notify", "handoff_dlq_records", topic=NOTIFICATIONS.name) >= 1


def test_a_department_incident_holds_back_its_notifications_until_it_is_acknowledged(env) -> None:
    stack, hooks = env
    now = datetime.now(timezone.utc)
    incident = Notification("incident-1", "incident:accounts:1", INCIDENT, "accounts", "accounts", "HIGH", "", "",
                            "", "", "accounts systems down", "", now)
    with KafkaProducer(bootstrap_servers=stack.bootstrap) as producer:
        # given an open incident for accounts, requested of its receiver
        producer.send(NOTIFICATIONS.name, key=b"accounts", value=encode_requested(incident, ["webhook"], now))
        producer.flush()
        # when an accounts leg breaches
        held_leg = create_leg(stack, "accounts").handoff_id
        # then its notifications are recorded as suppressed by inhibition, and not delivered
        held = requested_for(stack, "accounts", {held_leg}, lambda found: len(found) >= 3, timeout=30)
        ids = {e.requested.notification.notification_id for e in held}
        suppressed = notification_events(stack, "suppressed", lambda found: len(found) >= len(ids), timeout=20,
                                         match=lambda e: e.suppressed.notification_id in ids)
        assert {e.suppressed.reason for e in suppressed} == {"inhibition"} and len(suppressed) == len(ids)
        assert hooks.at("accounts", held_leg) == []
        # when the incident is acknowledged
        producer.send(NOTIFICATIONS.name, key=b"accounts",
                      value=encode_acknowledged(incident.notification_id, "accounts", "ops", now))
        producer.flush()
    # then the department hears of its breaches again
    heard_leg = create_leg(stack, "accounts").handoff_id
    assert wait_for(lambda: any(r["kind"] == "breach" for r in hooks.at("accounts", heard_leg)), timeout=30)
    assert hooks.at("accounts", held_leg) == []
