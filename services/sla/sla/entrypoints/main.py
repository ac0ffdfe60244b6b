"""Run the sla service: `python -m sla`.

SLA_ROLE chooses what the process does: `all` (default) runs the clocks and serves
SlaService; `worker` runs the clocks only (gRPC health and metrics still served), for a
worker that keeps a million clocks without the read model's memory; `api` serves
SlaService only, from its read model, with no clocks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from common.clock import Clock, EventTime, named_clock
from common.kafkasecurity import KafkaRefused, check_login_at_start
from common.runtime import fail_start
from common.security import server_security
from common.settings import (
    SettingsError, engine_settings, read_model_history, role_setting, security_settings, service_settings, setting,
)
from common.streams.service import ServiceParts, serve
from sla.adapters.policy_file import PolicyFileError, load_policies
from sla.entrypoints.app import APP_ID, build
from sla.entrypoints.grpc_api import serving


def clock_setting(value: str) -> Clock:
    """The clock SLA_CLOCK names: "wall" in production; "event" for replay and simulation."""
    return named_clock("SLA_CLOCK", value, EventTime)


def main() -> None:
    try:
        settings = service_settings("sla")
        security = server_security(security_settings())
        policies = load_policies(Path(setting("SLA_POLICY_FILE", "config/sla-policies.yaml")))
        clock = clock_setting(setting("SLA_CLOCK", "wall"))
        role = role_setting("SLA_ROLE")
        history = read_model_history()
        engine_config = engine_settings(settings, APP_ID)
        check_login_at_start(settings.kafka_bootstrap, settings.kafka_security)
    except (SettingsError, PolicyFileError, KafkaRefused) as error:
        fail_start(str(error))
    engine = build(engine_config, policies, clock)[0] if role != "api" else None
    parts = ServiceParts(engine)
    if role != "worker":
        api = serving(settings.kafka_bootstrap, policies, clock, settings.kafka_security, history)
        parts = ServiceParts(engine, api["registrations"], api["on_ready"], api["on_stopped"])
    sys.exit(asyncio.run(serve("sla", settings, security, parts)))


if __name__ == "__main__":
    main()
