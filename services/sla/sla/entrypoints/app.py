"""The sla faust app: agents on handoff.events.v1 and sla.events.v1, a timer for due clocks."""

from __future__ import annotations

import faust
from common.clock import Clock
from common.faustapp import SideServer, make_app, process_records, raw_topic, table
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import HANDOFF_EVENTS, SLA_APP, SLA_EVENTS
from sla.domain.policy import PolicyBook
from sla.entrypoints.engine import ClockEngine

APP_ID = SLA_APP
TIMER_INTERVAL = 0.05


def build(
    settings: ServiceSettings, security: ServerSecurity, policies: PolicyBook, clock: Clock
) -> tuple[faust.App, SideServer]:
    """Wire the app: topics, the clocks table, agents, timer and side server."""
    app = make_app(APP_ID, settings)
    handoff_topic = raw_topic(app, HANDOFF_EVENTS.name)
    sla_topic = raw_topic(app, SLA_EVENTS.name)
    clocks = table(app, "clocks")

    async def send_sla(customer_ref: str, value: bytes) -> None:
        await sla_topic.send(key=customer_ref.encode(), value=value)

    engine = ClockEngine(clocks, policies, clock, send_sla)

    @app.agent(handoff_topic, concurrency=1)
    async def track_clocks(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_EVENTS, engine.on_handoff_event, APP_ID)

    @app.agent(sla_topic, concurrency=1)
    async def record_breaches(stream: faust.StreamT) -> None:
        await process_records(app, stream, SLA_EVENTS, engine.on_sla_event, APP_ID)

    @app.timer(interval=TIMER_INTERVAL)
    async def fire_due_clocks() -> None:
        if app.rebalancing or app.in_recovery:
            return
        owned = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == HANDOFF_EVENTS.name
        )
        if owned != engine.indexed_partitions:
            engine.rebuild(owned)
        await engine.fire_due()

    # SlaService's methods arrive with the SLA engine issue; health and reflection serve now.
    return app, SideServer(app, "sla", settings, security, registrations=[])
