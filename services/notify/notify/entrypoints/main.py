"""Run the notify service: `python -m notify`."""

from __future__ import annotations

from common.clock import WallClock
from common.faustapp import run_worker
from common.runtime import fail_start
from common.security import server_security
from common.settings import SettingsError, security_settings, service_settings
from notify.entrypoints.app import build


def main() -> None:
    try:
        settings = service_settings("notify")
        security = server_security(security_settings())
    except SettingsError as error:
        fail_start(str(error))
    app, side = build(settings, security, WallClock())
    run_worker(app, side, settings.log_level)


if __name__ == "__main__":
    main()
