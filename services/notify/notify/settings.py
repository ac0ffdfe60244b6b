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
    """The routing file; where each channel gateway listens (host:port), the token to call them
    with, and the CA that signed their certificates (TLS when set)."""

    routing_file: Path
    gateways: Mapping[str, str] = field(default_factory=dict)
    gateway_token: str = ""
    gateway_ca_file: Path | None = None


def notify_settings(env: Mapping[str, str] | None = None) -> NotifySettings:
    """NOTIFY_ROUTING_FILE (default config/routing.yaml), NOTIFY_GATEWAY_{WEBHOOK,EMAIL,LOG}, NOTIFY_GATEWAY_TOKEN,
    NOTIFY_GATEWAY_CA_FILE."""
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
    ca_file = env.get("NOTIFY_GATEWAY_CA_FILE", "")
    if ca_file and not Path(ca_file).is_file():
        raise SettingsError(f"NOTIFY_GATEWAY_CA_FILE={ca_file!r}: no such file")
    if ca_file and not gateways:
        raise SettingsError("NOTIFY_GATEWAY_CA_FILE is set but no NOTIFY_GATEWAY_* address is")
    return NotifySettings(Path(env.get("NOTIFY_ROUTING_FILE") or "config/routing.yaml"), gateways, token,
                          Path(ca_file) if ca_file else None)
