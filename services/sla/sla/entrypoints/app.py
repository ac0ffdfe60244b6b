"""The sla faust app: agents on handoff events, contacts and SLA events; a timer for due clocks.

On wall time (`clock` a WallClock) clocks fall due by the wall clock and event-time
heartbeats are skipped. On event time (`clock` an EventTime) each partition's watermark
follows its handoff events and heartbeats; due clocks fire, and contacts are examined, as
the watermarks pass them.
"""

from __future__ import annotations

import faust
from common.clock import Clock, EventTime, WallClock
from common.faustapp import SideServer, make_app, process_records, raw_topic, table
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_APP, SLA_EVENTS
from sla import metrics
from sla.adapters import codec
from sla.domain.policy import PolicyBook
from sla.entrypoints.engine import ClockEngine
from sla.entrypoints.grpc_api import serving
from sla.entrypoints.repeat_tracker import RepeatTracker

APP_ID = SLA_APP
TIMER_INTERVAL = 0.05


def build(
    settings: ServiceSettings, security: ServerSecurity, policies: PolicyBook, clock: Clock
) -> tuple[faust.App, SideServer]:
    """Wire the app: topics, the clocks and customers tables, agents, timer and side server."""
    app = make_app(APP_ID, settings)
    handoff_topic = raw_topic(app, HANDOFF_EVENTS.name)
    contacts_topic = raw_topic(app, CONTACTS.name)
    sla_topic = raw_topic(app, SLA_EVENTS.name)
    repeat_topic = raw_topic(app, REPEAT_CONTACTS.name)
    clock_table = table(app, "clocks")
    customers = table(app, "customers")
    event_time = clock if isinstance(clock, EventTime) else None
    wall = WallClock()

    async def send_sla(customer_ref: str, value: bytes) -> None:
        await sla_topic.send(key=customer_ref.encode(), value=value)

    async def send_repeat(customer_ref: str, value: bytes) -> None:
        await repeat_topic.send(key=customer_ref.encode(), value=value)

    engine = ClockEngine(clock_table, policies, clock, send_sla, recorded=wall)
    tracker = RepeatTracker(customers, engine.breached_by, policies.repeats, send_repeat, wall, event_time)

    async def on_handoff_event(message, partition: int) -> None:
        if event_time is not None:
            event_time.advance(partition, codec.occurred_at(message))
        if message.WhichOneof("change") == "heartbeat":
            if event_time is not None:
                await tracker.settle(partition)
            return
        events = await engine.on_handoff_event(message, partition)
        await tracker.on_leg_change(message, events, partition)
        if event_time is not None:
            await tracker.settle(partition)

    async def on_sla_event(message, partition: int) -> None:
        await engine.on_sla_event(message, partition)
        if message.WhichOneof("change") == "breached":
            await tracker.on_breach(message, partition)

    @app.agent(handoff_topic, concurrency=1)
    async def track_clocks(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_EVENTS, on_handoff_event, APP_ID)

    @app.agent(contacts_topic, concurrency=1)
    async def detect_repeats(stream: faust.StreamT) -> None:
        await process_records(app, stream, CONTACTS, tracker.on_contact, APP_ID)

    @app.agent(sla_topic, concurrency=1)
    async def record_breaches(stream: faust.StreamT) -> None:
        await process_records(app, stream, SLA_EVENTS, on_sla_event, APP_ID)

    @app.timer(interval=TIMER_INTERVAL)
    async def fire_due_clocks() -> None:
        if app.rebalancing or app.in_recovery:
            return
        owned = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == HANDOFF_EVENTS.name
        )
        if owned != engine.indexed_partitions:
            if event_time is not None:
                event_time.own(owned)
            engine.rebuild(owned)
            tracker.rebuild(owned)
        await engine.fire_due()
        metrics.EVENT_TIME_LAG.set(max((wall.now() - clock.now()).total_seconds(), 0.0) if event_time else 0.0)

    # SlaService answers from a read model of the whole stream, caught up before serving.
    return app, SideServer(app, "sla", settings, security, **serving(settings.kafka_bootstrap, policies, clock))
