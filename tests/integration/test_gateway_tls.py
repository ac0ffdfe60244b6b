"""notify -> gateway over TLS with the token, as NOTIFY_GATEWAY_CA_FILE and NOTIFY_GATEWAY_TOKEN
configure it: a gateway serving TLS takes notify's call; a plaintext call to it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from common.settings import SettingsError
from devstack.gateways import start_gateway
from notify.adapters.codec import notification_bytes
from notify.adapters.gateways import Delivery, Gateways
from notify.domain.notifications import BREACH, Notification
from notify.settings import notify_settings
from tests.e2e.test_tls import Pki, make_pki

pytestmark = pytest.mark.integration

TOKEN = "tok-notify"
NOTE = Notification("n-1", "breach:h-1:ack", BREACH, "billing", "billing", "HIGH", "h-1", "case-1", "cust-1",
                    "ack", "t", "b", datetime(2026, 3, 2, 9, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("gateway-pki"))


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("gateway-tls")
    tokens = workdir / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{token: {TOKEN}, name: notify, role: service}}\n")
    env = {"AUTH_TOKENS_FILE": str(tokens), "LOG_FILE": str(workdir / "deliveries.jsonl"),
           "TLS_CERT_FILE": str(pki.server_cert), "TLS_KEY_FILE": str(pki.server_key)}
    process, address = start_gateway("log", workdir, env)
    try:
        yield address, workdir / "deliveries.jsonl"
    finally:
        process.stop()


def deliver(address: str, ca_file: Path | None, delivery_id: str):
    async def call():
        gateways = Gateways({"log": [address]}, TOKEN, ca_file)
        try:
            [outcome] = await gateways.deliver("log", [Delivery(delivery_id, "billing", notification_bytes(NOTE))], timeout=10)
            return outcome
        finally:
            await gateways.close()
    return asyncio.run(call())


def test_notify_delivers_to_a_tls_gateway_with_its_ca_and_token(tls_gateway, pki):
    address, log = tls_gateway
    settings = notify_settings({"NOTIFY_GATEWAY_LOG": address, "NOTIFY_GATEWAY_TOKEN": TOKEN,
                                "NOTIFY_GATEWAY_CA_FILE": str(pki.ca)})
    outcome = deliver(address, settings.gateway_ca_file, "tls-1")
    assert outcome.delivered, outcome.reason
    assert "tls-1" in log.read_text()


def test_a_plaintext_call_to_a_tls_gateway_fails_and_is_retried(tls_gateway):
    address, log = tls_gateway
    outcome = deliver(address, None, "plain-1")
    assert not outcome.delivered and outcome.retryable
    assert "UNAVAILABLE" in outcome.reason
    assert "plain-1" not in log.read_text()


@pytest.mark.parametrize("env, message", [
    ({"NOTIFY_GATEWAY_LOG": "127.0.0.1:1", "NOTIFY_GATEWAY_TOKEN": "t", "NOTIFY_GATEWAY_CA_FILE": "/nowhere/ca.pem"},
     "NOTIFY_GATEWAY_CA_FILE='/nowhere/ca.pem': no such file"),
    ({"NOTIFY_GATEWAY_CA_FILE": __file__}, "NOTIFY_GATEWAY_CA_FILE is set but no NOTIFY_GATEWAY_\\* address is"),
])
def test_a_missing_or_unused_ca_file_is_refused_naming_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        notify_settings(env)
