"""Settings, read once from the environment into frozen objects at start-up.

Nothing else in the project reads the environment. A bad value stops start-up with the
variable's name and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from common.auth import CustomerRefKeys
from common.kafkasecurity import PLAINTEXT, KafkaSecurity, kafka_security
from common.limits import GrpcLimits
from common.validation import instant
from common.yamlfile import parse_duration

from common.streams.engine import EngineSettings


class SettingsError(ValueError):
    """A setting that is missing or malformed; the message names the variable."""


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise SettingsError(f"{name} is required")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} is outside 0..65535")
    return port


def host_ports(name: str, value: str) -> tuple[str, ...]:
    """The `host:port` entries of the comma-separated setting `name`, each checked (a port of
    1..65535); a bad one raises SettingsError naming the variable and the entry."""
    entries = tuple(entry.strip() for entry in value.split(","))
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name}={value!r}: {entry!r} is not host:port")
    return entries


def _bootstrap(env: Mapping[str, str]) -> str:
    servers = _text(env, "KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    host_ports("KAFKA_BOOTSTRAP", servers)
    return servers


@dataclass(frozen=True)
class ServiceSettings:
    """What every service needs: Kafka, its ports, its data directory, its log level."""

    kafka_bootstrap: str
    grpc_host: str
    grpc_port: int
    metrics_port: int
    data_dir: Path
    log_level: str
    instance: str
    kafka_security: KafkaSecurity = PLAINTEXT


def service_settings(service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read the common settings of `service` (GRPC_PORT, METRICS_PORT, DATA_DIR, ...)."""
    env = os.environ if env is None else env
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    return ServiceSettings(
        kafka_bootstrap=_bootstrap(env),
        grpc_host=env.get("GRPC_HOST", "127.0.0.1"),
        grpc_port=_port(env, "GRPC_PORT", 0),
        metrics_port=_port(env, "METRICS_PORT", 0),
        data_dir=Path(env.get("DATA_DIR", f"var/{service}")),
        log_level=level,
        instance=env.get("INSTANCE", f"{service}-1"),
        kafka_security=kafka_security(env),
    )


def _positive(env: Mapping[str, str], name: str, default: float, kind: type = int) -> float:
    raw = env.get(name, str(default))
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than 0")
    return value


def engine_settings(service: ServiceSettings, group: str, env: Mapping[str, str] | None = None) -> EngineSettings:
    """The stream engine's settings: the service's Kafka and instance, and ENGINE_* tuning.

    INSTANCE is the worker's static group membership and transactional id: it must be
    stable across restarts of one worker (a pod's name) and unique among workers.
    """
    env = os.environ if env is None else env
    return EngineSettings(
        bootstrap=service.kafka_bootstrap,
        group=group,
        instance=service.instance,
        # Unset, each takes the engine's own default.
        max_batch=int(_positive(env, "ENGINE_MAX_BATCH", EngineSettings.max_batch)),
        first_batch=int(_positive(env, "ENGINE_FIRST_BATCH", EngineSettings.first_batch)),
        max_wait_s=_positive(env, "ENGINE_MAX_WAIT_S", EngineSettings.max_wait_s, float),
        max_attempts=int(_positive(env, "ENGINE_MAX_ATTEMPTS", EngineSettings.max_attempts)),
        session_timeout_ms=int(_positive(env, "ENGINE_SESSION_TIMEOUT_MS", EngineSettings.session_timeout_ms)),
        transaction_timeout_ms=int(_positive(env, "ENGINE_TRANSACTION_TIMEOUT_MS", EngineSettings.transaction_timeout_ms)),
        client=service.kafka_security.librdkafka(),
    )


def duration_setting(env: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    """A duration setting ("90s", "24h", "7d"); `default` when unset."""
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


# The retention of the topics a read model is rebuilt from (common.topics): a replica that
# restarts holds no more than that, so a running one keeps no more either.
READ_MODEL_HISTORY = timedelta(days=90)


def read_model_history(env: Mapping[str, str] | None = None) -> timedelta:
    """READ_MODEL_HISTORY (default 90d): how long the handoff and sla read models keep a
    closed leg and a contact, counted back from the newest event they have read."""
    return duration_setting(os.environ if env is None else env, "READ_MODEL_HISTORY", READ_MODEL_HISTORY)


def setting(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """One service-specific setting, read at start-up by that service's settings."""
    env = os.environ if env is None else env
    return _text(env, name, default)


# What a stateful service's process does (SLA_ROLE, NOTIFY_ROLE): `all` runs its stream
# engine and serves its API; `worker` runs the engine only (gRPC health and metrics still
# served); `api` serves the API from its read models, with no engine.
ROLES = ("all", "worker", "api")


def role_setting(name: str, env: Mapping[str, str] | None = None) -> str:
    """A role setting such as SLA_ROLE: one of ROLES, `all` when unset."""
    value = setting(name, "all", env)
    if value not in ROLES:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(ROLES)}")
    return value


@dataclass(frozen=True)
class SecuritySettings:
    """Who may call (a token book) and how (TLS files); the key that pseudonymises customer ids."""

    tokens_file: Path | None
    tokens_inline: str | None
    tls_cert_file: Path | None
    tls_key_file: Path | None
    tls_client_ca_file: Path | None
    customer_ref_keys: CustomerRefKeys | None
    limits: GrpcLimits = GrpcLimits()


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "")
    return Path(value) if value else None


def security_settings(env: Mapping[str, str] | None = None) -> SecuritySettings:
    """AUTH_TOKENS_FILE or AUTH_TOKENS (one is required), TLS_* files, CUSTOMER_REF_* keys, GRPC_* limits."""
    env = os.environ if env is None else env
    tokens_file, tokens_inline = _path(env, "AUTH_TOKENS_FILE"), env.get("AUTH_TOKENS") or None
    if bool(tokens_file) == bool(tokens_inline):
        raise SettingsError("set exactly one of AUTH_TOKENS_FILE (a token file) or AUTH_TOKENS (token=name:role[:department],...)")
    cert, key = _path(env, "TLS_CERT_FILE"), _path(env, "TLS_KEY_FILE")
    if bool(cert) != bool(key):
        raise SettingsError("TLS_CERT_FILE and TLS_KEY_FILE go together")
    client_ca = _path(env, "TLS_CLIENT_CA_FILE")
    if client_ca and not cert:
        raise SettingsError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
    return SecuritySettings(tokens_file, tokens_inline, cert, key, client_ca, _customer_ref_keys(env),
                            grpc_limits(env))


def _customer_ref_keys(env: Mapping[str, str]) -> CustomerRefKeys | None:
    """CUSTOMER_REF_KEY, and during a rotation CUSTOMER_REF_PREVIOUS_KEY until CUSTOMER_REF_PREVIOUS_UNTIL."""
    current, previous = env.get("CUSTOMER_REF_KEY", ""), env.get("CUSTOMER_REF_PREVIOUS_KEY", "")
    until_text = env.get("CUSTOMER_REF_PREVIOUS_UNTIL", "")
    for name, value in (("CUSTOMER_REF_KEY", current), ("CUSTOMER_REF_PREVIOUS_KEY", previous)):
        if value and len(value.encode()) < 16:
            raise SettingsError(f"{name} must be at least 16 bytes")
    if bool(previous) != bool(until_text):
        raise SettingsError("CUSTOMER_REF_PREVIOUS_KEY and CUSTOMER_REF_PREVIOUS_UNTIL go together")
    if previous and not current:
        raise SettingsError("CUSTOMER_REF_PREVIOUS_KEY needs CUSTOMER_REF_KEY, the key that replaces it")
    if previous == current and previous:
        raise SettingsError("CUSTOMER_REF_PREVIOUS_KEY is CUSTOMER_REF_KEY; a rotation needs a new key")
    until = None
    if until_text:
        try:
            until = instant(until_text)
        except ValueError as error:
            raise SettingsError(f"CUSTOMER_REF_PREVIOUS_UNTIL={error}") from None
    if not current:
        return None
    return CustomerRefKeys(current.encode(), previous.encode() or None, until)


def grpc_limits(env: Mapping[str, str] | None = None) -> GrpcLimits:
    """GRPC_MAX_MESSAGE_BYTES, GRPC_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS_PER_PRINCIPAL,
    GRPC_CALLS_PER_SECOND, GRPC_BURST, GRPC_MAX_CALL_S, GRPC_MAX_STREAM_S (README, "Security")."""
    env = os.environ if env is None else env
    default = GrpcLimits()
    return GrpcLimits(
        max_message_bytes=int(_positive(env, "GRPC_MAX_MESSAGE_BYTES", default.max_message_bytes)),
        max_concurrent_streams=int(_positive(env, "GRPC_MAX_CONCURRENT_STREAMS", default.max_concurrent_streams)),
        max_streams_per_principal=int(_positive(env, "GRPC_MAX_STREAMS_PER_PRINCIPAL",
                                                default.max_streams_per_principal)),
        calls_per_second=_positive(env, "GRPC_CALLS_PER_SECOND", default.calls_per_second, float),
        burst=int(_positive(env, "GRPC_BURST", default.burst)),
        max_call_s=_positive(env, "GRPC_MAX_CALL_S", default.max_call_s, float),
        max_stream_s=_positive(env, "GRPC_MAX_STREAM_S", default.max_stream_s, float),
    )
