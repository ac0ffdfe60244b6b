"""Run the notify service: `python -m notify`."""

from __future__ import annotations

from common.clock import WallClock
from common.faustapp import run_worker
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, security_settings, service_settings
from notify.adapters.routing_file import RoutingFileError, load_routing
from notify.entrypoints.app import build
from notify.settings import notify_settings


def main() -> None:
    try:
        settings = service_settings("notify")
        notify = notify_settings()
        security = server_security(security_settings())
        routing = load_routing(notify.routing_file)
    except (SettingsError, RoutingFileError) as error:
        fail_start(str(error))
    except OSError as error:
        fail_start(f"NOTIFY_ROUTING_FILE: cannot read {error.filename}: {error.strerror}")
    app, side = build(settings, security, WallClock(), routing, notify)
    run_worker(app, side, settings.log_level)


if __name__ == "__main__":
    main()
