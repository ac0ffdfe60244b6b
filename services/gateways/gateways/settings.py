"""A gateway's settings, read once from the environment and checked before anything starts.

The common ones (GRPC_PORT, METRICS_PORT, LOG_LEVEL, DATA_DIR, INSTANCE, and the AUTH_* /
TLS_* security settings) come from common.settings; these are the gateway's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from common.settings import ServiceSettings, SettingsError, service_settings
from common.validation import InvalidField
from gateways.domain.delivery import KINDS
from gateways.domain.mail import address
from gateways.domain.webhook import ANY_TARGET, webhook_url

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class WebhookSettings:
    """URL prefix (or `*`) -> signing secret, and the longest a POST may take."""

    secrets: Mapping[str, str] = field(repr=False)
    timeout: float


@dataclass(frozen=True)
class SmtpSettings:
    """The relay every e-mail goes through. `starttls` is True, False or None (when offered)."""

    host: str
    port: int
    sender: str
    starttls: bool | None
    user: str | None
    password: str | None = field(repr=False)
    ca_file: Path | None
    timeout: float
    # Messages in the relay's hands at once: a connection each, and relays limit them per client.
    connections: int = 10


@dataclass(frozen=True)
class GatewaySettings:
    """Everything one gateway process needs; only its own kind's section is set."""

    kind: str
    service: ServiceSettings
    dedup_capacity: int
    # The delivery journal: which ids were sent, kept across restarts (one file per replica).
    dedup_file: Path
    webhook: WebhookSettings | None = None
    smtp: SmtpSettings | None = None
    log_file: Path | None = None


def _seconds(env: Mapping[str, str], name: str, default: float, most: float = 300.0) -> float:
    raw = env.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value <= most:
        raise SettingsError(f"{name}={raw!r} must be more than 0 and at most {most:g} seconds")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


def _secrets_from(name: str, document: object) -> dict[str, str]:
    if not isinstance(document, dict) or not document:
        raise SettingsError(f"{name}: expected a non-empty mapping of URL prefix (or '*') to secret")
    secrets: dict[str, str] = {}
    for prefix, secret in document.items():
        if not isinstance(prefix, str) or not isinstance(secret, str):
            raise SettingsError(f"{name}: {prefix!r}: prefixes and secrets must be strings")
        if prefix != ANY_TARGET:
            try:
                webhook_url("prefix", prefix)
            except InvalidField as error:
                raise SettingsError(f"{name}: {prefix!r}: {error}") from None
        if len(secret.encode("utf-8")) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{name}: the secret for {prefix!r} is shorter than {MIN_SECRET_LENGTH} bytes")
        secrets[prefix] = secret
    return secrets


def _webhook_secrets(env: Mapping[str, str]) -> dict[str, str]:
    inline, path = env.get("WEBHOOK_SECRETS", ""), env.get("WEBHOOK_SECRETS_FILE", "")
    if bool(inline) == bool(path):
        raise SettingsError(
            "set exactly one of WEBHOOK_SECRETS (JSON: {\"<url prefix or *>\": \"<secret>\"}) "
            "or WEBHOOK_SECRETS_FILE (a YAML file of the same mapping)"
        )
    if inline:
        try:
            return _secrets_from("WEBHOOK_SECRETS", json.loads(inline))
        except json.JSONDecodeError as error:
            raise SettingsError(f"WEBHOOK_SECRETS is not JSON: {error.msg} at column {error.colno}") from None
    try:
        text = Path(path).read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except OSError as error:
        raise SettingsError(f"WEBHOOK_SECRETS_FILE {path}: cannot read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(error, "problem", None) or error
        raise SettingsError(f"WEBHOOK_SECRETS_FILE {path}:{line}: not valid YAML: {reason}") from None
    return _secrets_from(f"WEBHOOK_SECRETS_FILE {path}", document)


def _webhook(env: Mapping[str, str]) -> WebhookSettings:
    return WebhookSettings(_webhook_secrets(env), _seconds(env, "WEBHOOK_TIMEOUT", 10.0))


_STARTTLS = {"true": True, "false": False, "auto": None}


def _smtp(env: Mapping[str, str]) -> SmtpSettings:
    host = env.get("SMTP_HOST", "")
    if not host:
        raise SettingsError("SMTP_HOST is required for the email gateway")
    port_text = env.get("SMTP_PORT", "25")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SettingsError(f"SMTP_PORT={port_text!r} is not a port number in 1..65535")
    sender = env.get("SMTP_FROM", "")
    try:
        address("SMTP_FROM", sender)
    except InvalidField:
        raise SettingsError(f"SMTP_FROM={sender!r} must be a plain e-mail address (local@domain)") from None
    starttls_text = env.get("SMTP_STARTTLS", "auto").lower()
    if starttls_text not in _STARTTLS:
        raise SettingsError(f"SMTP_STARTTLS={starttls_text!r} is not one of true, false, auto")
    user, password = env.get("SMTP_USER") or None, env.get("SMTP_PASSWORD") or None
    if bool(user) != bool(password):
        raise SettingsError("SMTP_USER and SMTP_PASSWORD go together")
    if user and _STARTTLS[starttls_text] is not True:
        raise SettingsError("SMTP_USER needs SMTP_STARTTLS=true: a password is never sent in clear text")
    ca_file = Path(env["SMTP_CA_FILE"]) if env.get("SMTP_CA_FILE") else None
    if ca_file and not ca_file.is_file():
        raise SettingsError(f"SMTP_CA_FILE {ca_file}: no such file")
    return SmtpSettings(
        host, int(port_text), sender, _STARTTLS[starttls_text], user, password, ca_file,
        _seconds(env, "SMTP_TIMEOUT", 30.0), _count(env, "SMTP_CONNECTIONS", 10),
    )


def gateway_settings(kind: str | None = None, env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Settings of the gateway `kind` (or GATEWAY_KIND); SettingsError names the bad variable."""
    env = os.environ if env is None else env
    from_env = env.get("GATEWAY_KIND", "")
    if kind and from_env and kind != from_env:
        raise SettingsError(f"GATEWAY_KIND={from_env!r} contradicts the command line's {kind!r}")
    kind = kind or from_env
    if kind not in KINDS:
        raise SettingsError(f"GATEWAY_KIND={kind!r} is not one of {', '.join(KINDS)}")
    service = service_settings(f"gateway-{kind}", env)
    dedup_file = Path(env.get("DEDUP_FILE") or service.data_dir / f"dedup-{kind}.jsonl")
    settings = GatewaySettings(kind, service, _count(env, "DEDUP_CAPACITY", 10_000), dedup_file)
    if kind == "webhook":
        return replace(settings, webhook=_webhook(env))
    if kind == "email":
        return replace(settings, smtp=_smtp(env))
    return replace(settings, log_file=Path(env.get("LOG_FILE") or service.data_dir / "deliveries.jsonl"))
