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
