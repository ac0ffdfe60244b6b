"""The handoff service (a stream-engine process with its read models) reloads its token book
while it runs: a revoked token is refused within seconds, and SIGHUP reloads at once without
stopping the process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common.localkafka import LocalKafka, create_topics
from devstack.stack import Stack
from tests.support import write_policies

pytestmark = pytest.mark.e2e


def write_tokens(path: Path, *tokens: str) -> None:
    path.write_text("tokens:\n" + "".join(f"  - {{token: {t}, name: {t}-caller, role: admin}}\n" for t in tokens))


@pytest.fixture(scope="module")
def handoff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    workdir: Path = tmp_path_factory.mktemp("token-reload")
    tokens = workdir / "tokens.yaml"
    write_tokens(tokens, "tok-alpha", "tok-bravo")
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(workdir, write_policies(workdir), bootstrap=kafka.bootstrap)
        try:
            stack.start_service("handoff", env={"AUTH_TOKENS_FILE": str(tokens)})
            yield stack, tokens
        finally:
            stack.stop()


def answer(stack: Stack, token: str) -> str:
    """OK, or the status code and details of a ListHandoffs call with `token`."""
    with grpc.insecure_channel(stack.services["handoff"].grpc) as channel:
        try:
            api_grpc.HandoffServiceStub(channel).ListHandoffs(
                api.ListHandoffsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
    return "OK"


def test_a_revoked_token_is_refused_within_seconds_without_a_restart(handoff) -> None:
    stack, tokens = handoff
    assert answer(stack, "tok-alpha") == "OK"
    pid = stack.services["handoff"].pid

    write_tokens(tokens, "tok-bravo")
    started = time.monotonic()
    while answer(stack, "tok-alpha") == "OK" and time.monotonic() - started < 10:
        time.sleep(0.1)
    refused_after = time.monotonic() - started

    assert answer(stack, "tok-alpha") == "UNAUTHENTICATED: unknown token"
    assert refused_after < 3
    assert answer(stack, "tok-bravo") == "OK" and stack.services["handoff"].pid == pid


def test_sighup_reloads_and_the_service_keeps_serving(handoff) -> None:
    stack, tokens = handoff
    write_tokens(tokens, "tok-bravo", "tok-charlie")

    os.kill(stack.services["handoff"].pid, signal.SIGHUP)
    time.sleep(0.3)

    assert answer(stack, "tok-charlie") == "OK"
    assert stack.services["handoff"].is_running()
