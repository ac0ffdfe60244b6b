"""Run the sla service: `python -m sla`."""

from __future__ import annotations

from pathlib import Path

from common.clock import Clock, EventTime, named_clock
from common.faustapp import run_worker
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, security_settings, service_settings, setting
from sla.adapters.policy_file import PolicyFileError, load_policies
from sla.entrypoints.app import build


def clock_setting(value: str) -> Clock:
    """The clock SLA_CLOCK names: "wall" in production; "event" for replay and simulation."""
    return named_clock("SLA_CLOCK", value, EventTime)


def main() -> None:
    try:
        settings = service_settings("sla")
        security = server_security(security_settings())
        policies = load_policies(Path(setting("SLA_POLICY_FILE", "config/sla-policies.yaml")))
        clock = clock_setting(setting("SLA_CLOCK", "wall"))
    except (SettingsError, PolicyFileError) as error:
        fail_start(str(error))
    app, side = build(settings, security, policies, clock)
    run_worker(app, side, settings.log_level)


if __name__ == "__main__":
    main()
