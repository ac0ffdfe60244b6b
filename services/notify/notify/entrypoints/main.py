"""Run the notify service: `python -m notify`.

NOTIFY_ROLE chooses what the process does: `all` (default) runs the pipeline and serves
NotificationService; `worker` runs the pipeline only (gRPC health and metrics still
served), without a read model of notifications.v1, so workers can be added without each
one reading every notification; `api` serves NotificationService only (Subscribe, List,
Acknowledge, silences), from its read models, with no pipeline and no gateway calls.
"""

from __future__ import annotations

import asyncio
import sys

from common.clock import Clock, MergedEventTime, named_clock
from common.kafkasecurity import KafkaRefused, check_login_at_start
from common.runtime import fail_start
from common.security import server_security
from common.settings import (
    SettingsError, engine_settings, role_setting, security_settings, service_settings, setting,
)
from common.streams.service import ServiceParts, serve
from notify.adapters.delivery_loop import DeliveryLoop
from notify.adapters.gateways import Gateways
from notify.adapters.routing_file import RoutingFileError, load_routing
from notify.entrypoints.app import APP_ID, build
from notify.entrypoints.grpc_api import serving
from notify.settings import notify_settings


def clock_setting(value: str) -> Clock:
    """The clock NOTIFY_CLOCK names: "wall" in production; "event" for replay and simulation
    (escalations, groups and silences follow the heartbeats on handoff.events.v1)."""
    return named_clock("NOTIFY_CLOCK", value, MergedEventTime)


def main() -> None:
    try:
        settings = service_settings("notify")
        notify = notify_settings()
        security = server_security(security_settings())
        clock = clock_setting(setting("NOTIFY_CLOCK", "wall"))
        role = role_setting("NOTIFY_ROLE")
        routing = load_routing(notify.routing_file)
        engine_config = engine_settings(settings, APP_ID)
        check_login_at_start(settings.kafka_bootstrap, settings.kafka_security)
    except (SettingsError, RoutingFileError, KafkaRefused) as error:
        fail_start(str(error))
    except OSError as error:
        fail_start(f"NOTIFY_ROUTING_FILE: cannot read {error.filename}: {error.strerror}")
    api = serving(settings, clock, routing, notify.retention, api=role != "worker")
    if role == "api":
        parts = ServiceParts(None, api.registrations, api.on_ready, api.on_stopped)
    else:
        gateways = Gateways(notify.gateways, notify.gateway_token, notify.gateway_ca_file)
        deliveries = DeliveryLoop()
        engine, _ = build(engine_config, routing, clock, api.silences.active, gateways, deliveries.run,
                          notify.history_age, notify.retention)

        async def on_stopped() -> None:
            await api.on_stopped()
            await asyncio.to_thread(deliveries.close, gateways.close())

        parts = ServiceParts(engine, api.registrations, api.on_ready, on_stopped)
    sys.exit(asyncio.run(serve("notify", settings, security, parts)))


if __name__ == "__main__":
    main()
