"""How every Kafka client of ours connects: plaintext, TLS, SASL/SCRAM, or both.

The settings are read once (`kafka_security`) into a frozen object, and each Kafka library
gets them in its own dialect: aiokafka and kafka-python keyword arguments, a librdkafka
(confluent-kafka) configuration dict. An incomplete or contradictory setting stops start-up
naming the variable.

    KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
    KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN
    KAFKA_SASL_USERNAME       required with SASL_*
    KAFKA_SASL_PASSWORD       required with SASL_*
    KAFKA_SSL_CA_FILE         the CA that signed the brokers' certificates (else the system's)
    KAFKA_SSL_CERT_FILE       a client certificate for mutual TLS, with KAFKA_SSL_KEY_FILE
    KAFKA_SSL_KEY_FILE
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of this process's Kafka clients."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context that verifies the broker (None without TLS)."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        if self.protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.protocol, "ssl_context": self.ssl_context()}
        if self.uses_sasl:
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        if self.protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs.update(ssl_check_hostname=True, ssl_cafile=_text(self.ca_file),
                          ssl_certfile=_text(self.cert_file), ssl_keyfile=_text(self.key_file))
        if self.uses_sasl:
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs

    def librdkafka(self) -> dict[str, str]:
        """Configuration entries for confluent-kafka's Producer, Consumer and AdminClient."""
        config = {"security.protocol": self.protocol.lower()}
        optional = {"ssl.ca.location": self.ca_file, "ssl.certificate.location": self.cert_file,
                    "ssl.key.location": self.key_file}
        if self.uses_tls:
            config.update({key: str(value) for key, value in optional.items() if value})
        if self.uses_sasl:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.username,
                           "sasl.password": self.password})
        return config


PLAINTEXT = KafkaSecurity()


def _text(path: Path | None) -> str | None:
    return str(path) if path else None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    from common.settings import SettingsError  # settings imports this module

    value = env.get(name, "")
    if not value:
        return None
    if not Path(value).is_file():
        raise SettingsError(f"{name}={value!r}: no such file")
    return Path(value)


def kafka_security(env: Mapping[str, str] | None = None) -> KafkaSecurity:
    """Read KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_*; SettingsError names what is wrong."""
    from common.settings import SettingsError  # settings imports this module

    env = os.environ if env is None else env
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "") or "PLAINTEXT"
    if protocol not in PROTOCOLS:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(PROTOCOLS)}")
    sasl = {name: env.get(name, "") for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")}
    tls = {name: env.get(name, "") for name in ("KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE")}
    uses_sasl, uses_tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
    # A credential that would silently go unused is a mistake in the deployment, not a default.
    for name, value in {**sasl, **tls}.items():
        unused = not uses_sasl if name.startswith("KAFKA_SASL_") else not uses_tls
        if value and unused:
            raise SettingsError(f"{name} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use it")
    mechanism = None
    if uses_sasl:
        mechanism = sasl["KAFKA_SASL_MECHANISM"] or "SCRAM-SHA-512"
        if mechanism not in MECHANISMS:
            raise SettingsError(f"KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(MECHANISMS)}")
        for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
            if not sasl[name]:
                raise SettingsError(f"{name} is required when KAFKA_SECURITY_PROTOCOL={protocol}")
        if mechanism == "PLAIN" and protocol == "SASL_PLAINTEXT":
            raise SettingsError("KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT would send the password in clear; "
                                "use SASL_SSL or a SCRAM mechanism")
    if bool(tls["KAFKA_SSL_CERT_FILE"]) != bool(tls["KAFKA_SSL_KEY_FILE"]):
        raise SettingsError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
    return KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=mechanism,
        username=sasl["KAFKA_SASL_USERNAME"] or None,
        password=sasl["KAFKA_SASL_PASSWORD"] or None,
        ca_file=_file(env, "KAFKA_SSL_CA_FILE"),
        cert_file=_file(env, "KAFKA_SSL_CERT_FILE"),
        key_file=_file(env, "KAFKA_SSL_KEY_FILE"),
    )



class KafkaRefused(ConnectionError):
    """The broker refused this process's TLS or credentials."""


async def check_login(bootstrap: str, security: KafkaSecurity, timeout: float = 30) -> None:
    """Connect and authenticate once to each bootstrap server in turn; KafkaRefused says why it failed.

    Kafka clients retry a refused login in the background and report only that they could
    not bootstrap; checked at start-up, a wrong password stops the process with the reason.
    A broker that does not answer is no refusal: the clients keep trying to reach it.
    """
    from aiokafka.conn import create_conn

    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            connection = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **security.aiokafka()), timeout)
        except ssl.SSLError as error:
            raise KafkaRefused(f"TLS with Kafka at {server} failed ({error.reason or error}); "
                               f"check KAFKA_SSL_CA_FILE") from None
        except Exception as error:  # pylint: disable=broad-except - a login refusal has no class of its own here
            if "Authentication failed" not in str(error):
                continue
            raise KafkaRefused(f"Kafka at {server} refused user {security.username!r} ({security.sasl_mechanism}): "
                               f"{error}; check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD") from None
        connection.close()
        return


def check_login_at_start(bootstrap: str, security: KafkaSecurity, timeout: float = 30) -> None:
    """`check_login` for a process's main, before its event loop runs; nothing to check in plaintext."""
    if security.protocol != "PLAINTEXT":
        asyncio.run(check_login(bootstrap, security, timeout))
