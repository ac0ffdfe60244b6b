"""The handoff service's Kafka adapters on the real broker: what one replica writes,
another rebuilds by reading handoff.events.v1 back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from common.topics import HANDOFF_EVENTS
from handoff_svc.adapters.codec import encode_event
from handoff_svc.adapters.legstore import LegFeed, LegStore
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from handoff_svc.domain import legs

pytestmark = pytest.mark.integration


def created(handoff_id: str, at: datetime) -> legs.HandoffCreated:
    return legs.create(
        legs.CreateHandoff(handoff_id, "case-1", f"cust-{handoff_id[:6]}", "billing", legs.Priority.HIGH, "", "", "a1"),
        at,
    )


async def write_and_rebuild(bootstrap: str) -> tuple[list[legs.Leg], LegStore]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()

    async def publish(key: str, value: bytes) -> None:
        await producer.send_and_wait(HANDOFF_EVENTS.name, value, key=key.encode())

    written = []
    try:
        for _ in range(3):
            event = created(str(uuid.uuid4()), now)
            await publish(event.leg.customer_ref, encode_event(event, str(uuid.uuid4()), now))
            written.append(event.leg)
        ack = legs.acknowledge(written[0], legs.AcknowledgeHandoff(handoff_id=written[0].handoff_id, actor="b1"), now)
        ack_id = str(uuid.uuid4())
        value = encode_event(ack, ack_id, now)
        # the same acknowledgement delivered twice, as an at-least-once retry would
        await publish(ack.customer_ref, value)
        await publish(ack.customer_ref, value)
    finally:
        await producer.stop()
    store = LegStore()
    feed = LegFeed(bootstrap, store)
    await feed.start()
    await feed.stop()
    return written, store


def test_a_new_replica_rebuilds_every_leg_from_the_topic(kafka_bootstrap: str) -> None:
    # given legs written by one replica, one of them acknowledged (and that event repeated)
    # when a fresh replica starts its feed
    written, store = asyncio.run(write_and_rebuild(kafka_bootstrap))
    # then it knows every leg in its latest state
    first, *others = written
    assert store.get(first.handoff_id).status == legs.Status.ACKNOWLEDGED
    assert store.get(first.handoff_id).acknowledged_at == first.created_at
    assert [store.get(leg.handoff_id) for leg in others] == others


async def read_after_a_reply(bootstrap: str) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = created(str(uuid.uuid4()), now)
    handoff_id = event.leg.handoff_id
    # given a transaction that has written a leg's creation and not yet committed (as when a
    # reply committed with it is readable first: markers are written partition by partition)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"leg-feed-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(HANDOFF_EVENTS.name, encode_event(event, str(uuid.uuid4()), now), event.leg.customer_ref)
    producer.flush(30)
    store = LegStore()
    feed = LegFeed(bootstrap, store)
    await feed.start()
    try:
        # when a replica catches up with what is committed, the leg is not there yet
        await feed.caught_up(timeout=10)
        assert store.get(handoff_id) is None
        # and when it catches up with the transactions under way too, it waits for this one
        waiting = asyncio.create_task(feed.caught_up(timeout=30, include_open=True))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        await asyncio.to_thread(producer.commit_transaction, 30)
        await waiting
        # then, once it has committed, the leg is there
        assert store.get(handoff_id) == event.leg
    finally:
        await feed.stop()


def test_a_read_after_a_reply_waits_for_the_transaction_that_wrote_the_leg(kafka_bootstrap: str) -> None:
    asyncio.run(read_after_a_reply(kafka_bootstrap))
