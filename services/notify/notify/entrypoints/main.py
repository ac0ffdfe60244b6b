"""Run the notify service: `python -m notify`."""

from __future__ import annotations

from common.clock import Clock, MergedEventTime, named_clock
from common.faustapp import run_worker
from common.kafkasecurity import KafkaRefused, check_login_at_start
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, security_settings, service_settings, setting
from notify.adapters.routing_file import RoutingFileError, load_routing
from notify.entrypoints.app import build
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
        routing = load_routing(notify.routing_file)
        check_login_at_start(settings.kafka_bootstrap, settings.kafka_security)
    except (SettingsError, RoutingFileError, KafkaRefused) as error:
        fail_start(str(error))
    except OSError as error:
        fail_start(f"NOTIFY_ROUTING_FILE: cannot read {error.filename}: {error.strerror}")
    app, side = build(settings, security, clock, routing, notify)
    run_worker(app, side, settings.log_level)


if __name__ == "__main__":
    main()
