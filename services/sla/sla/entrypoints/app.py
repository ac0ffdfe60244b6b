"""The sla faust app: agents on handoff events, contacts and SLA events; a timer for due clocks.

On wall time (`clock` a WallClock) clocks fall due by the wall clock and event-time
heartbeats are skipped. On event time (`clock` an EventTime) each partition's watermark
follows its handoff events and heartbeats; due clocks fire, and contacts are examined, as
the watermarks pass them.
"""

from __future__ import annotations

import faust
from common.clock import Clock, WallClock
from common.faustapp import SideServer, every, make_app, process_records, raw_topic, table
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_APP, SLA_EVENTS
from sla import metrics
from sla.domain.policy import PolicyBook
from sla.entrypoints.grpc_api import serving
from sla.entrypoints.worker import SlaWorker

APP_ID = SLA_APP
# How often due clocks are looked for: a breach is written within about this long of its
# deadline (the check costs ~2 % of a core when idle; 0.05 s made every breach ~25 ms late).
TIMER_INTERVAL = 0.01


def build(
    settings: ServiceSettings, security: ServerSecurity, policies: PolicyBook, clock: Clock
) -> tuple[faust.App, SideServer]:
    """Wire the app: topics, the clocks and customers tables, agents, timer and side server."""
    app = make_app(APP_ID, settings)
    handoff_topic = raw_topic(app, HANDOFF_EVENTS.name)
    contacts_topic = raw_topic(app, CONTACTS.name)
    sla_topic = raw_topic(app, SLA_EVENTS.name)
    repeat_topic = raw_topic(app, REPEAT_CONTACTS.name)
    wall = WallClock()

    async def send_sla(customer_ref: str, value: bytes) -> None:
        await sla_topic.send(key=customer_ref.encode(), value=value)

    async def send_repeat(customer_ref: str, value: bytes) -> None:
        await repeat_topic.send(key=customer_ref.encode(), value=value)

    worker = SlaWorker(table(app, "clocks"), table(app, "customers"), policies, clock, send_sla, send_repeat, wall)

    @app.agent(handoff_topic, concurrency=1)
    async def track_clocks(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_EVENTS, worker.on_handoff_event, APP_ID)

    @app.agent(contacts_topic, concurrency=1)
    async def detect_repeats(stream: faust.StreamT) -> None:
        await process_records(app, stream, CONTACTS, worker.on_contact, APP_ID)

    @app.agent(sla_topic, concurrency=1)
    async def record_breaches(stream: faust.StreamT) -> None:
        await process_records(app, stream, SLA_EVENTS, worker.on_sla_event, APP_ID)

    @every(app, TIMER_INTERVAL)
    async def fire_due_clocks() -> None:
        if app.rebalancing or app.in_recovery:
            return
        owned = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == HANDOFF_EVENTS.name
        )
        if owned != worker.assigned:
            worker.assign(owned)
        await worker.fire_due()
        lag = (wall.now() - clock.now()).total_seconds() if worker.event_time else 0.0
        metrics.EVENT_TIME_LAG.set(max(lag, 0.0))

    # SlaService answers from a read model of the whole stream, caught up before serving.
    return app, SideServer(app, "sla", settings, security, **serving(settings.kafka_bootstrap, policies, clock))
