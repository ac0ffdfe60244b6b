"""Stage 1 hands a request to stage 2 in the same pass when the receiver's partition of
notifications.v1 is on this worker: one transaction carries the request, what stage 2
decided and both stages' table writes, and stage 2 skips the request when it reads it back.
A receiver whose partition another worker holds is told through the topic, as before."""

from __future__ import annotations

from pathlib import Path

from handoff.v1 import notifications_pb2

from common.kafkaio import key_partition
from common.topics import NOTIFICATIONS, SLA_EVENTS
from notify.entrypoints.app import NotifyProcessor
from tests.unit.test_notify_requests import sla
from tests.unit.test_notify_stage2_fixtures import Clock, NoGateways, routing_of, run_now

PARTITIONS = 2
BILLING = key_partition(b"billing", PARTITIONS)  # the breach's receiver


def processor(tmp_path: Path, owned: set[int]) -> tuple[NotifyProcessor, list]:
    """notify's processor owning `owned` of PARTITIONS, and what it writes to notifications.v1."""
    written: list[tuple[str, int, notifications_pb2.NotificationEvent]] = []
    wall = Clock()

    def send(topic: str, key, value: bytes, headers=None, partition=None) -> None:
        if topic == NOTIFICATIONS.name:
            event = notifications_pb2.NotificationEvent.FromString(value)
            written.append((event.WhichOneof("change"), key_partition(key.encode(), PARTITIONS), event))

    notify = NotifyProcessor(routing_of(tmp_path), wall, lambda at: [], NoGateways(), run_now, send, wall=wall,
                             partitions={NOTIFICATIONS.name: PARTITIONS})
    notify.assigned(frozenset(owned))
    return notify, written


def test_a_request_for_a_receiver_here_is_delivered_in_the_pass_that_requests_it(tmp_path: Path) -> None:
    notify, written = processor(tmp_path, {0, 1})
    notify.process(SLA_EVENTS, sla("breached"), 0)
    assert [(change, partition) for change, partition, _ in written] == [("requested", BILLING),
                                                                         ("delivered", BILLING)]
    request, delivery = written[0][2], written[1][2]
    assert request.requested.dispatched
    assert delivery.delivered.notification.notification_id == request.requested.notification.notification_id
    deliveries = {store.name: store for store in notify.stores}["deliveries"]
    assert delivery.delivered.delivery_id in deliveries


def test_a_request_read_back_after_its_pass_is_not_taken_again(tmp_path: Path) -> None:
    notify, written = processor(tmp_path, {0, 1})
    notify.process(SLA_EVENTS, sla("breached"), 0)
    notify.before_commit()
    for _, partition, event in list(written):
        notify.process(NOTIFICATIONS, event, partition)
    notify.before_commit()
    # Once each: the request, its subscription delivery, its webhook's outcome (no gateway here).
    assert [(change, getattr(event, change).channel if change != "requested" else "")
            for change, _, event in written] == [("requested", ""), ("delivered", "subscription"),
                                                 ("failed", "team-chat")]


def test_a_request_for_a_receiver_another_worker_holds_goes_through_the_topic(tmp_path: Path) -> None:
    notify, written = processor(tmp_path, {1 - BILLING})
    notify.process(SLA_EVENTS, sla("breached"), 1 - BILLING)
    [(change, partition, request)] = written
    assert (change, partition, request.requested.dispatched) == ("requested", BILLING, False)
