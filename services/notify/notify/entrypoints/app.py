"""The notify faust app: two stages on notifications.v1.

Stage 1 (requester.py): agents on sla.events.v1, repeat.contacts.v1 and handoff.events.v1
request notifications of the receivers the routing tree reaches. Stage 2 (dispatcher.py):
an agent on notifications.v1 suppresses, groups, delivers and escalates them, and reads
its own outcomes back into tables; a timer takes what falls due (deliveries and their
retries, group flushes, escalation steps) from in-memory queues rebuilt from the tables
whenever the assignment changes.

On wall time (`clock` a WallClock) heartbeats on handoff.events.v1 are skipped. On event
time (`clock` a MergedEventTime) stage 1 passes each on to every partition of
notifications.v1 and stage 2's clock follows them (see Requester and Dispatcher).
"""

from __future__ import annotations

import logging
from datetime import datetime

import faust
from faust.types import TP

from common.clock import Clock, MergedEventTime, WallClock
from common.dlq import dead_letter
from common.faustapp import SideServer, every, make_app, process_records, raw_topic, table
from common.kafkaio import known_partitions
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import HANDOFF_EVENTS, NOTIFICATIONS, NOTIFY_APP, REPEAT_CONTACTS, SLA_EVENTS
from notify import metrics
from notify.adapters import codec
from notify.adapters.gateways import Gateways
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import Job
from notify.entrypoints.deliverer import Deliverer
from notify.entrypoints.dispatcher import Dispatcher
from notify.entrypoints.escalator import Escalator
from notify.entrypoints.grouper import Grouper
from notify.entrypoints.grpc_api import serving
from notify.entrypoints.requester import Requester
from notify.settings import NotifySettings

APP_ID = NOTIFY_APP
# How often due work (gateway deliveries and retries, group flushes, escalation steps) is taken.
TIMER_INTERVAL = 0.01
# Stage 2 waits for its read-back after a rebalance at most this long before acting anyway.
CATCH_UP_LIMIT = 30.0
STAGE1_TABLES = ("requested", "legs")
STAGE2_TABLES = ("deliveries", "pending", "escalations", "groups", "grouped", "sources", "marks")
log = logging.getLogger(__name__)


def build(settings: ServiceSettings, security: ServerSecurity, clock: Clock, routing: RoutingConfig,
          notify: NotifySettings) -> tuple[faust.App, SideServer]:
    app = make_app(APP_ID, settings)
    sla_topic = raw_topic(app, SLA_EVENTS.name)
    repeat_topic = raw_topic(app, REPEAT_CONTACTS.name)
    handoff_topic = raw_topic(app, HANDOFF_EVENTS.name)
    notifications_topic = raw_topic(app, NOTIFICATIONS.name)
    recorded = WallClock()
    api = serving(settings, clock, routing)

    async def send(receiver: str, value: bytes) -> None:
        await notifications_topic.send(key=receiver.encode(), value=value)

    async def send_raw(topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        await app.topic(topic, key_serializer="raw", value_serializer="raw").send(
            key=key, value=value, headers=headers)

    async def dead_letter_job(job: Job, value: bytes, reason: str) -> None:
        await dead_letter(send_raw, NOTIFICATIONS, job.notification.receiver.encode(), value, job.partition,
                          job.offset, f"delivery {job.delivery_id} on {job.channel}: {reason}", APP_ID)

    async def partition_count(topic: str) -> int:
        return len(await known_partitions(settings.kafka_bootstrap, topic, settings.kafka_security))

    async def forward_heartbeat(at: datetime, source_partition: int) -> None:
        """Event time `at` reached on a partition of handoff.events.v1: tell every stage-2 partition."""
        sources, recorded_at = await partition_count(HANDOFF_EVENTS.name), recorded.now()
        for partition in range(await partition_count(NOTIFICATIONS.name)):
            await notifications_topic.send(key=b"", partition=partition, value=codec.encode_heartbeat(
                at, source_partition, sources, partition, recorded_at))

    event_time = isinstance(clock, MergedEventTime)
    # Stage 1: a notification id requested once (`requested`); what each leg has open (`legs`).
    requested, legs = (table(app, name) for name in STAGE1_TABLES)
    requester = Requester(legs, requested, routing, send, recorded,
                          forward_heartbeat if event_time else None)

    @app.agent(sla_topic, concurrency=1)
    async def request_for_sla_events(stream: faust.StreamT) -> None:
        await process_records(app, stream, SLA_EVENTS, requester.on_sla_event, APP_ID)

    @app.agent(repeat_topic, concurrency=1)
    async def request_for_repeat_contacts(stream: faust.StreamT) -> None:
        await process_records(app, stream, REPEAT_CONTACTS, requester.on_repeat_contact, APP_ID)

    @app.agent(handoff_topic, concurrency=1)
    async def request_for_legs(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_EVENTS, requester.on_handoff_event, APP_ID)

    # Stage 2.
    tables = {name: table(app, name) for name in STAGE2_TABLES}
    gateways = Gateways(notify.gateways, notify.gateway_token, notify.gateway_ca_file)
    # Gateways are called on wall time, whatever the clock of escalations and groups.
    deliverer = Deliverer(gateways, routing, tables["deliveries"], send, dead_letter_job, recorded)
    dispatcher = Dispatcher(
        tables, routing, api.silences.active, send, clock, deliverer,
        Escalator(tables["escalations"], routing, send, clock, recorded),
        Grouper(tables["groups"], routing, send, clock, recorded),
        recorded,
    )

    @app.agent(notifications_topic, concurrency=1)
    async def dispatch(stream: faust.StreamT) -> None:
        await process_records(app, stream, NOTIFICATIONS, dispatcher.on_event, APP_ID)

    def committed(partition: int) -> int | None:
        # faust keeps each partition's committed (next) offset; 0 when it has none yet.
        offsets = getattr(app.consumer, "_committed_offset", {})
        return offsets.get(TP(NOTIFICATIONS.name, partition))

    rebuilt_at: list[float] = [0.0]

    @every(app, TIMER_INTERVAL)
    async def take_due_work() -> None:
        if app.rebalancing or app.in_recovery:
            return
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == NOTIFICATIONS.name)
        if owned != dispatcher.indexed_partitions:
            ends = await app.consumer.highwaters(*(TP(NOTIFICATIONS.name, p) for p in owned)) if owned else {}
            dispatcher.rebuild(owned, {tp.partition: offset for tp, offset in ends.items()})
            rebuilt_at[0] = app.loop.time()
        if not dispatcher.caught_up(committed):
            if app.loop.time() - rebuilt_at[0] < CATCH_UP_LIMIT:
                return
            log.warning("stage 2 has not read back its own events after %.0fs; acting anyway", CATCH_UP_LIMIT)
            dispatcher.rebuild(owned, {})
        await dispatcher.tick()
        if event_time:
            metrics.EVENT_TIME_LAG.set(max((recorded.now() - clock.now()).total_seconds(), 0.0))

    async def on_stopped() -> None:
        await api.on_stopped()
        await deliverer.close()

    side = SideServer(app, "notify", settings, security, registrations=api.registrations,
                      on_ready=api.on_ready, on_stopped=on_stopped)
    return app, side

