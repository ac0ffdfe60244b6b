"""Heartbeats of event time on handoff.events.v1.

A heartbeat at T on a partition promises that no handoff event or contact earlier than T
will follow on that partition, so an sla worker on event time may fire what falls due up
to T. It travels in the partition's own stream, behind every event written before it, so
a worker never sees it ahead of them. Replay tools send one to every partition when they
have written everything up to T.
"""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaProducer
from handoff.v1 import handoff_events_pb2

from common.codec import new_envelope
from common.ids import derived_event_id
from common.kafkaio import topic_partitions
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import HANDOFF_EVENTS


def heartbeat_value(at: datetime, partition: int, source: str, recorded_at: datetime) -> bytes:
    """A heartbeat for `partition` at `at`; its id derives from both, so a repeat is recognisable."""
    envelope = new_envelope(source, at, recorded_at, event_id=derived_event_id("heartbeat", str(partition), at.isoformat()))
    message = handoff_events_pb2.HandoffEvent(envelope=envelope, heartbeat=handoff_events_pb2.EventTimeHeartbeat())
    return message.SerializeToString()


async def send_heartbeats(bootstrap: str, at: datetime, source: str, recorded_at: datetime,
                          producer: AIOKafkaProducer | None = None, security: KafkaSecurity = PLAINTEXT) -> int:
    """Send a heartbeat at `at` to every partition of handoff.events.v1; the number sent."""
    partitions = await topic_partitions(bootstrap, HANDOFF_EVENTS.name, security)
    own = producer is None
    if own:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    **security.aiokafka())
        await producer.start()
    try:
        # An empty key: a heartbeat belongs to no customer; the partition is given explicitly.
        sent = [await producer.send(HANDOFF_EVENTS.name, heartbeat_value(at, p, source, recorded_at), key=b"",
                                    partition=p) for p in partitions]
        for future in sent:
            await future
    finally:
        if own:
            await producer.stop()
    return len(partitions)
