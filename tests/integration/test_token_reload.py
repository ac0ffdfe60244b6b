"""The token book of a running server process changes without a restart: a revoked token is
refused within seconds, a new one accepted, on SIGHUP at once; an entry's expiry holds; a
broken file leaves the last good book in force. The server is a real log-gateway process
(every server of ours authenticates through the same common.grpcserver and token file)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from handoff.v1 import channel_gateway_pb2, channel_gateway_pb2_grpc

from devstack.gateways import start_gateway
from devstack.processes import ServiceProcess

pytestmark = pytest.mark.integration


def write_tokens(path: Path, *tokens: str, expiring: dict[str, datetime] | None = None) -> None:
    lines = ["tokens:"]
    for token in tokens:
        lines += [f"  - token: {token}", f"    name: {token}-caller", "    role: admin"]
        if token in (expiring or {}):
            lines.append(f"    expires_at: {expiring[token].isoformat()}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[ServiceProcess, Path]]:
    tokens = tmp_path / "tokens.yaml"
    write_tokens(tokens, "tok-alpha", "tok-bravo")
    process, _ = start_gateway("log", tmp_path, {"AUTH_TOKENS_FILE": str(tokens)})
    try:
        yield process, tokens
    finally:
        assert process.stop() == 0


def outcome(address: str, token: str) -> str:
    """How the server answers a call with `token`: UNAUTHENTICATED: <why>, or the code past the
    token check (an empty Deliver is INVALID_ARGUMENT once the caller is known)."""
    with grpc.insecure_channel(address) as channel:
        stub = channel_gateway_pb2_grpc.ChannelGatewayStub(channel)
        try:
            stub.Deliver(channel_gateway_pb2.DeliverRequest(), metadata=(("authorization", f"Bearer {token}"),),
                         timeout=10)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                return f"UNAUTHENTICATED: {error.details()}"
            return error.code().name
    return "OK"


def seconds_until(address: str, token: str, expected: str, limit: float = 10) -> float:
    """How long until calls with `token` get `expected` (fails the test past `limit`)."""
    started = time.monotonic()
    while (seen := outcome(address, token)) != expected:
        assert time.monotonic() - started < limit, f"{token}: still {seen} after {limit} s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_revoked_token_is_refused_within_seconds_and_a_new_one_accepted(gateway) -> None:
    process, tokens = gateway
    assert outcome(process.grpc, "tok-alpha") == "INVALID_ARGUMENT"
    assert outcome(process.grpc, "tok-charlie") == "UNAUTHENTICATED: unknown token"

    write_tokens(tokens, "tok-bravo", "tok-charlie")  # alpha revoked, charlie added
    revoked_after = seconds_until(process.grpc, "tok-alpha", "UNAUTHENTICATED: unknown token")
    added_after = seconds_until(process.grpc, "tok-charlie", "INVALID_ARGUMENT")

    assert revoked_after < 3 and added_after < 3
    assert outcome(process.grpc, "tok-bravo") == "INVALID_ARGUMENT"
    assert process.is_running()


def test_sighup_reloads_the_book_at_once(gateway) -> None:
    process, tokens = gateway
    before = os.stat(tokens)
    # a same-sized edit with the old timestamps: only SIGHUP can tell the server
    write_tokens(tokens, "tok-alpha", "tok-delta")
    os.utime(tokens, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(2.5)  # longer than the server waits between looks at the file
    unchanged = outcome(process.grpc, "tok-delta")

    os.kill(process.pid, signal.SIGHUP)
    reloaded_after = seconds_until(process.grpc, "tok-delta", "INVALID_ARGUMENT")

    assert unchanged == "UNAUTHENTICATED: unknown token"
    assert reloaded_after < 1
    assert outcome(process.grpc, "tok-bravo") == "UNAUTHENTICATED: unknown token"
    assert process.is_running()


def test_a_token_past_its_expiry_is_refused(gateway) -> None:
    process, tokens = gateway
    expires = datetime.now(timezone.utc) + timedelta(seconds=4)
    write_tokens(tokens, "tok-alpha", "tok-echo", expiring={"tok-echo": expires})
    seconds_until(process.grpc, "tok-echo", "INVALID_ARGUMENT")

    seconds_until(process.grpc, "tok-echo", "UNAUTHENTICATED: token expired")

    assert datetime.now(timezone.utc) >= expires
    assert outcome(process.grpc, "tok-alpha") == "INVALID_ARGUMENT"


def test_a_broken_file_leaves_the_last_good_book_in_force(gateway) -> None:
    process, tokens = gateway
    tokens.write_text("tokens:\n  - token: tok-foxtrot\n    role: nobody\n")
    time.sleep(2.5)
    os.kill(process.pid, signal.SIGHUP)
    time.sleep(0.5)

    assert outcome(process.grpc, "tok-alpha") == "INVALID_ARGUMENT"
    assert outcome(process.grpc, "tok-foxtrot") == "UNAUTHENTICATED: unknown token"
    assert process.is_running()
    assert "token book not reloaded; the last good one stays in force" in process.log_path.read_text()
