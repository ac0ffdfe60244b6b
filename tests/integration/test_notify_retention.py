"""notify's state stays flat on a real broker: legs that pass their whole life (created,
breached, resolved) are kept for the retention period and then deleted, with tombstones on
the compacted changelogs; a second wave leaves the stores where the first left them.

On a broker of its own: what other tests left on the shared broker's topics would be read,
kept and forgotten in the middle of the waves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from handoff.v1 import handoff_events_pb2, sla_events_pb2, types_pb2

from common.clock import WallClock
from common.codec import new_envelope, to_timestamp
from common.localkafka import LocalKafka, create_topics
from common.streams.engine import EngineSettings, start_engine
from common.streams.store import payload_of
from common.topics import HANDOFF_EVENTS, NOTIFY_APP, SLA_EVENTS, changelog_name
from notify.adapters.delivery_loop import DeliveryLoop
from notify.adapters.gateways import Gateways
from notify.adapters.routing_file import load_routing
from notify.adapters.stores import decoded
from notify.entrypoints.app import build

RETENTION = timedelta(seconds=4)
LEGS_PER_WAVE = 40
ROUTING = """
receivers:
  - name: watch
    channels: [{type: subscription}]
route:
  receiver: watch
  group_wait: 0s
"""


def leg_events(handoff_id: str, customer_ref: str, department: str) -> list[tuple[str, str, bytes]]:
    """(topic, key, value) of a leg's whole life: created, breached, resolved."""
    now = datetime.now(timezone.utc)

    def leg(event_id: str) -> handoff_events_pb2.HandoffEvent:
        return handoff_events_pb2.HandoffEvent(
            envelope=new_envelope("handoff", now, now, event_id=event_id), handoff_id=handoff_id,
            case_id=f"case-{handoff_id}", customer_ref=customer_ref, department=department)

    created, resolved = leg(f"created-{handoff_id}"), leg(f"resolved-{handoff_id}")
    created.created.CopyFrom(handoff_events_pb2.HandoffCreated(priority=types_pb2.PRIORITY_HIGH))
    resolved.resolved.CopyFrom(handoff_events_pb2.HandoffResolved())
    breach = sla_events_pb2.SlaEvent(
        envelope=new_envelope("sla", now, now, event_id=f"breach-{handoff_id}"), handoff_id=handoff_id,
        case_id=f"case-{handoff_id}", customer_ref=customer_ref, department=department,
        priority=types_pb2.PRIORITY_HIGH, clock=types_pb2.CLOCK_KIND_ACK, clock_sequence=1)
    breach.breached.deadline.CopyFrom(to_timestamp(now))
    return [(HANDOFF_EVENTS.name, customer_ref, created.SerializeToString()),
            (SLA_EVENTS.name, customer_ref, breach.SerializeToString()),
            (HANDOFF_EVENTS.name, customer_ref, resolved.SerializeToString())]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def kafka_bootstrap(tmp_path: Path) -> Iterator[str]:
    with LocalKafka(tmp_path / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        yield kafka.bootstrap


def latest_values(bootstrap: str, topic: str) -> dict[str, bytes | None]:
    """The last committed value of every key of a changelog (None: a tombstone)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"retention-check-{uuid.uuid4()}",
                       "enable.auto.commit": False, "isolation.level": "read_committed",
                       "auto.offset.reset": "earliest"})
    try:
        partitions = reader.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        latest: dict[str, bytes | None] = {}
        deadline = time.monotonic() + 60
        while any(reader.position([TopicPartition(topic, p)])[0].offset < end for p, end in ends.items() if end):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for record in reader.consume(1000, 0.5):
                if not record.error():
                    latest[record.key().decode()] = record.value()
        return latest
    finally:
        reader.close()


def test_notify_state_stays_flat_as_legs_pass_the_retention(kafka_bootstrap: str, tmp_path: Path) -> None:
    # Given notify on the engine with a retention of a few seconds
    (tmp_path / "routing.yaml").write_text(ROUTING)
    run_id = uuid.uuid4().hex[:8]
    settings = EngineSettings(kafka_bootstrap, f"notify-retention-{run_id}", f"notify-retention-{run_id}",
                              max_wait_s=0.05)
    loop = DeliveryLoop()
    engine, processor = build(settings, load_routing(tmp_path / "routing.yaml"), WallClock(), lambda at: [],
                              Gateways({}, ""), loop.run, retention=RETENTION)
    stores = {store.name: store for store in processor.stores}
    thread = start_engine(engine, "notify-retention")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    try:
        assert engine.ready.wait(60), "the engine was never assigned its partitions"
        # the topics are empty: every store starts empty
        assert not any(len(store) for store in stores.values())
        sizes: list[dict[str, int]] = []
        waves: list[list[str]] = []

        for wave in range(2):
            # When a wave of legs runs its whole life
            legs = [f"ret-{run_id}-{wave}-{n}" for n in range(LEGS_PER_WAVE)]
            waves.append(legs)
            for n, handoff_id in enumerate(legs):
                for topic, key, value in leg_events(handoff_id, f"cust-{run_id}-{n}", "retention"):
                    producer.produce(topic, key=key, value=value)
            producer.flush(30)
            # Then every leg is held, with what was requested and delivered about it ...
            wait_for(lambda: all(h in stores["legs"] for h in legs)
                     and len(stores["deliveries"]) >= 2 * LEGS_PER_WAVE, 60, f"wave {wave} to be handled")
            held_at = time.monotonic()
            # (each naming the ids requested about it: its breach and its resolution notice)
            assert all(len(decoded(payload_of(stores["legs"][h]))["requested"]) == 2 for h in legs)
            # ... and kept for the retention period, then forgotten: the leg, its deliveries, and
            # the acknowledgements its resolution wrote (a pass later than the leg's end, so
            # forgotten up to a pass and a second after it)
            wait_for(lambda: not any(h in stores["legs"] for h in legs) and not len(stores["deliveries"])
                     and not len(stores["escalations"]), RETENTION.total_seconds() + 30, f"wave {wave} to be forgotten")
            assert time.monotonic() - held_at >= RETENTION.total_seconds() - 1.0
            sizes.append({name: len(store) for name, store in stores.items()})

        # The second wave leaves every store where the first left it
        assert engine.failure is None
        assert sizes[1] == sizes[0]
        assert sizes[1]["deliveries"] == 0
        # And the changelogs hold tombstones for every forgotten leg
        legs_log = latest_values(kafka_bootstrap, changelog_name(NOTIFY_APP, "legs"))
        assert all(h in legs_log and legs_log[h] is None for wave in waves for h in wave)
        deliveries_log = latest_values(kafka_bootstrap, changelog_name(NOTIFY_APP, "deliveries"))
        assert deliveries_log and all(value is None for value in deliveries_log.values())
    finally:
        engine.stop()
        thread.join(30)
        loop.close()
        assert not thread.is_alive()
