"""The notify service's own settings, read once at start-up (beside common.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.settings import SettingsError

GATEWAY_KINDS = ("webhook", "email", "log")


@dataclass(frozen=True)
class NotifySettings:
    """The routing file; where each channel gateway listens (host:port) and the token to call them with."""

    routing_file: Path
    gateways: Mapping[str, str] = field(default_factory=dict)
    gateway_token: str = ""


def notify_settings(env: Mapping[str, str] | None = None) -> NotifySettings:
    """NOTIFY_ROUTING_FILE (default config/routing.yaml), NOTIFY_GATEWAY_{WEBHOOK,EMAIL,LOG}, NOTIFY_GATEWAY_TOKEN."""
    env = os.environ if env is None else env
    gateways: dict[str, str] = {}
    for kind in GATEWAY_KINDS:
        name = f"NOTIFY_GATEWAY_{kind.upper()}"
        address = env.get(name, "").strip()
        if not address:
            continue
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name}={address!r} is not host:port")
        gateways[kind] = address
    token = env.get("NOTIFY_GATEWAY_TOKEN", "")
    if gateways and not token:
        raise SettingsError("NOTIFY_GATEWAY_TOKEN is required when a NOTIFY_GATEWAY_* address is set")
    return NotifySettings(Path(env.get("NOTIFY_ROUTING_FILE") or "config/routing.yaml"), gateways, token)
