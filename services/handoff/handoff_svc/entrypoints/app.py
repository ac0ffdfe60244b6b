"""The handoff faust app: the partition owner's command agent, plus the gRPC edge."""

from __future__ import annotations

import faust
from handoff.v1 import handoff_service_pb2, handoff_service_pb2_grpc

from common.clock import Clock
from common.departments import Departments
from common.faustapp import SideServer, make_app, process_records, raw_topic, table
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import HANDOFF_APP, HANDOFF_COMMANDS, HANDOFF_EVENTS
from handoff_svc import metrics
from handoff_svc.adapters.commandbus import CommandBus
from handoff_svc.adapters.legstore import LegFeed, LegStore
from handoff_svc.entrypoints.grpc_api import HandoffApi
from handoff_svc.entrypoints.owner import CommandOwner, ImportedLegs

APP_ID = HANDOFF_APP
SERVICE_NAME = handoff_service_pb2.DESCRIPTOR.services_by_name["HandoffService"].full_name


def build(
    settings: ServiceSettings, security: ServerSecurity, clock: Clock, departments: Departments
) -> tuple[faust.App, SideServer]:
    app = make_app(APP_ID, settings)
    commands = raw_topic(app, HANDOFF_COMMANDS.name)
    legs_table = table(app, "legs")
    # Replies already given, by request: a retried request is answered, not applied again.
    done = table(app, "requests")

    async def send(topic: str, key: str, value: bytes) -> None:
        await app.topic(topic, key_serializer="raw", value_serializer="raw").send(key=key.encode(), value=value)

    owner = CommandOwner(legs_table, done, send, clock)
    imported = ImportedLegs(legs_table)
    events = raw_topic(app, HANDOFF_EVENTS.name)

    @app.agent(commands, concurrency=1)
    async def apply_commands(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_COMMANDS, owner.on_command, APP_ID)

    @app.agent(events, concurrency=1)
    async def fold_imported_legs(stream: faust.StreamT) -> None:
        await process_records(app, stream, HANDOFF_EVENTS, imported.on_event, APP_ID)

    store = LegStore()
    feed = LegFeed(settings.kafka_bootstrap, store, settings.kafka_security)
    bus = CommandBus(settings.kafka_bootstrap, settings.instance, settings.kafka_security)
    metrics.KNOWN_LEGS.set_function(lambda: len(store))
    metrics.watch_open_legs(store)

    async def start_edge() -> None:
        await feed.start()
        await bus.start()

    async def stop_edge() -> None:
        await bus.stop()
        await feed.stop()

    api = HandoffApi(store, feed, bus, clock, security.customer_ref_keys, departments)
    side = SideServer(
        app,
        "handoff",
        settings,
        security,
        registrations=[(handoff_service_pb2_grpc.add_HandoffServiceServicer_to_server, api, SERVICE_NAME)],
        on_ready=start_edge,
        on_stopped=stop_edge,
    )
    return app, side
