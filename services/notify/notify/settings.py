"""The notify service's own settings, read once at start-up (beside common.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from common.settings import SettingsError, host_ports
from common.yamlfile import parse_duration

GATEWAY_KINDS = ("webhook", "email", "log")
# How long a finished entry of notify's state, or a notification in its API's read model, is kept.
DEFAULT_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class NotifySettings:
    """The routing file; where each channel gateway's replicas listen (host:port each), the
    token to call them with, and the CA that signed their certificates (TLS when set); how old
    a notification may be, when notify reads it, and still be delivered (older ones are
    history: recorded only)."""

    routing_file: Path
    gateways: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    gateway_token: str = ""
    gateway_ca_file: Path | None = None
    history_age: timedelta = timedelta(hours=24)
    retention: timedelta = DEFAULT_RETENTION


def _addresses(name: str, value: str) -> tuple[str, ...]:
    """The replicas' addresses a NOTIFY_GATEWAY_* variable lists (host:port, comma-separated)."""
    addresses = host_ports(name, value)
    if len(set(addresses)) < len(addresses):
        raise SettingsError(f"{name}={value!r} lists a replica twice")
    return addresses


def notify_settings(env: Mapping[str, str] | None = None) -> NotifySettings:
    """NOTIFY_ROUTING_FILE (default config/routing.yaml), NOTIFY_GATEWAY_{WEBHOOK,EMAIL,LOG}
    (host:port, or the host:port of each replica, comma-separated), NOTIFY_GATEWAY_TOKEN,
    NOTIFY_GATEWAY_CA_FILE, NOTIFY_HISTORY_AGE (default 24h), NOTIFY_RETENTION (default 7d)."""
    env = os.environ if env is None else env
    gateways: dict[str, tuple[str, ...]] = {}
    for kind in GATEWAY_KINDS:
        name = f"NOTIFY_GATEWAY_{kind.upper()}"
        value = env.get(name, "").strip()
        if value:
            gateways[kind] = _addresses(name, value)
    token = env.get("NOTIFY_GATEWAY_TOKEN", "")
    if gateways and not token:
        raise SettingsError("NOTIFY_GATEWAY_TOKEN is required when a NOTIFY_GATEWAY_* address is set")
    ca_file = env.get("NOTIFY_GATEWAY_CA_FILE", "")
    if ca_file and not Path(ca_file).is_file():
        raise SettingsError(f"NOTIFY_GATEWAY_CA_FILE={ca_file!r}: no such file")
    if ca_file and not gateways:
        raise SettingsError("NOTIFY_GATEWAY_CA_FILE is set but no NOTIFY_GATEWAY_* address is")
    try:
        history_age = parse_duration(env.get("NOTIFY_HISTORY_AGE") or "24h")
    except ValueError as error:
        raise SettingsError(f"NOTIFY_HISTORY_AGE: {error}") from None
    try:
        retention = parse_duration(env.get("NOTIFY_RETENTION") or "7d")
    except ValueError as error:
        raise SettingsError(f"NOTIFY_RETENTION: {error}") from None
    return NotifySettings(Path(env.get("NOTIFY_ROUTING_FILE") or "config/routing.yaml"), gateways, token,
                          Path(ca_file) if ca_file else None, history_age, retention)
