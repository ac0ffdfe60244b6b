"""The dev stack tells notify where its routing file and gateways are."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import ROUTING_FILE, SERVICE_TOKEN, Stack


def test_notify_gets_the_routing_file_and_no_gateways_by_default(tmp_path: Path) -> None:
    env = Stack(tmp_path, tmp_path / "policies.yaml", bootstrap="127.0.0.1:9092").service_env("notify")
    assert env["NOTIFY_ROUTING_FILE"] == str(ROUTING_FILE)
    assert not any(name.startswith("NOTIFY_GATEWAY") for name in env)


def test_notify_gets_each_running_gateways_address_and_the_service_token(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    stack = Stack(tmp_path, tmp_path / "policies.yaml", bootstrap="127.0.0.1:9092", gateways=True,
                  routing_file=routing)
    # as start_gateway records them: one replica of each kind, and a second of the webhook gateway
    stack._gateway_ports.update({("webhook", 2): "7004", ("webhook", 1): "7001", ("email", 1): "7002",
                                 ("log", 1): "7003"})
    env = stack.service_env("notify")
    assert env["NOTIFY_ROUTING_FILE"] == str(routing.resolve())
    assert (env["NOTIFY_GATEWAY_WEBHOOK"], env["NOTIFY_GATEWAY_EMAIL"], env["NOTIFY_GATEWAY_LOG"]) == (
        "127.0.0.1:7001,127.0.0.1:7004", "127.0.0.1:7002", "127.0.0.1:7003")
    assert env["NOTIFY_GATEWAY_TOKEN"] == SERVICE_TOKEN
