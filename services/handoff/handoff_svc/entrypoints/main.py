"""Run the handoff service: `python -m handoff_svc`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from common.clock import WallClock
from common.departments import DepartmentsFileError, load_departments
from common.kafkasecurity import KafkaRefused, check_login_at_start
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, engine_settings, security_settings, service_settings, setting
from common.streams.service import ServiceParts, serve
from handoff_svc.entrypoints.app import APP_ID, build, edge
from handoff_svc.settings import retention_settings


def main() -> None:
    try:
        settings = service_settings("handoff")
        security = server_security(security_settings())
        departments = load_departments(Path(setting("DEPARTMENTS_FILE", "config/departments.yaml")))
        retention = retention_settings()
        engine_config = engine_settings(settings, APP_ID)
        check_login_at_start(settings.kafka_bootstrap, settings.kafka_security)
    except (SettingsError, DepartmentsFileError, KafkaRefused) as error:
        fail_start(str(error))
    clock = WallClock()
    engine, owner = build(engine_config, clock, retention)
    api = edge(settings, security, clock, departments, owner.inbox)
    parts = ServiceParts(engine, api.registrations, api.on_ready, api.on_stopped)
    sys.exit(asyncio.run(serve("handoff", settings, security, parts)))


if __name__ == "__main__":
    main()
