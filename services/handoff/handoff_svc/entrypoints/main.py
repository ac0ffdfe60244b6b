"""Run the handoff service: `python -m handoff_svc`."""

from __future__ import annotations

from pathlib import Path

from common.clock import WallClock
from common.departments import DepartmentsFileError, load_departments
from common.faustapp import run_worker
from common.kafkasecurity import KafkaRefused, check_login_at_start
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, security_settings, service_settings, setting
from handoff_svc.entrypoints.app import build


def main() -> None:
    try:
        settings = service_settings("handoff")
        security = server_security(security_settings())
        departments = load_departments(Path(setting("DEPARTMENTS_FILE", "config/departments.yaml")))
        check_login_at_start(settings.kafka_bootstrap, settings.kafka_security)
    except (SettingsError, DepartmentsFileError, KafkaRefused) as error:
        fail_start(str(error))
    app, side = build(settings, security, WallClock(), departments)
    run_worker(app, side, settings.log_level)


if __name__ == "__main__":
    main()
