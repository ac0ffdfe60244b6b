"""gRPC limits on a real server on loopback, built the way every service builds its own
(security_settings -> server_security -> start_server): message size, concurrent streams
per connection, streams per principal, calls per second per token, and server deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
import pytest

from common.auth import current_principal
from common.grpcserver import start_server
from common.limits import RETRY_AFTER
from common.security import server_security
from common.settings import security_settings

pytestmark = pytest.mark.integration

TOKENS = "tok-ada=ada:agent,tok-bo=bo:agent,tok-ops=ops:admin"
SERVICE = "test.limits.Echo"


async def _name(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(float(request or b"0"))
    return current_principal().name.encode()


async def _follow(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """Says its principal, then waits for ever, as a quiet Subscribe stream does."""
    yield current_principal().name.encode()
    await asyncio.Event().wait()


async def _follow_by_writing(request: bytes, context: grpc.aio.ServicerContext) -> None:
    """The same, written as NotificationService.Subscribe is: with context.write."""
    await context.write(current_principal().name.encode())
    await asyncio.Event().wait()


def _register(servicer: object, server: grpc.aio.Server) -> None:
    methods = {"Name": grpc.unary_unary_rpc_method_handler(_name),
               "Follow": grpc.unary_stream_rpc_method_handler(_follow),
               "FollowByWriting": grpc.unary_stream_rpc_method_handler(_follow_by_writing)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))


@asynccontextmanager
async def serving(**limits: str) -> AsyncIterator[str]:
    env = {"AUTH_TOKENS": TOKENS, **{f"GRPC_{name.upper()}": value for name, value in limits.items()}}
    server = await start_server("127.0.0.1", 0, [(_register, None, SERVICE)], server_security(security_settings(env)))
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


def run(scenario: Callable[[str], Awaitable[None]], **limits: str) -> None:
    async def main() -> None:
        async with serving(**limits) as address:
            await scenario(address)

    asyncio.run(main())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def name(channel: grpc.aio.Channel, token: str, request: bytes = b"", timeout: float = 10) -> bytes:
    return await channel.unary_unary(f"/{SERVICE}/Name")(request, metadata=bearer(token), timeout=timeout)


STREAMS = ["Follow", "FollowByWriting"]


async def follow(channel: grpc.aio.Channel, token: str, method: str = "Follow"):
    """An open stream, after its first reply (or its error)."""
    call = channel.unary_stream(f"/{SERVICE}/{method}")(b"", metadata=bearer(token), timeout=30)
    await call.read()
    return call


async def refused(call: Awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def test_a_token_over_its_rate_is_told_when_to_retry() -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            assert [await name(channel, "tok-ada") for _ in range(3)] == [b"ada"] * 3
            error = await refused(name(channel, "tok-ada"))
            other = await name(channel, "tok-bo")
            retry_ms = int(dict(error.trailing_metadata())[RETRY_AFTER])
            await asyncio.sleep(retry_ms / 1000)
            again = await name(channel, "tok-ada")

        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "ada is over its rate of 2 calls/s; retry after" in error.details()
        assert 0 < retry_ms <= 500
        assert (other, again) == (b"bo", b"ada")

    run(scenario, calls_per_second="2", burst="3")


@pytest.mark.parametrize("method", STREAMS)
def test_a_principal_may_keep_only_so_many_streams_open(method: str) -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            first, second = await follow(channel, "tok-ops", method), await follow(channel, "tok-ops", "Follow")
            third = channel.unary_stream(f"/{SERVICE}/{method}")(b"", metadata=bearer("tok-ops"), timeout=10)
            error = await refused(third.read())
            other = await follow(channel, "tok-ada", method)
            first.cancel()
            await asyncio.sleep(0.3)
            after_closing = await follow(channel, "tok-ops", method)
            for call in (second, other, after_closing):
                call.cancel()

        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "ops already has 2 streams open (the limit)" in error.details()
        assert after_closing.cancelled() and other.cancelled()

    run(scenario, max_streams_per_principal="2")


@pytest.mark.parametrize("method", STREAMS)
def test_a_stream_ends_unavailable_at_its_lifetime_so_the_client_resumes(method: str) -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            started = time.monotonic()
            call = await follow(channel, "tok-ada", method)
            error = await refused(call.read())
            lasted = time.monotonic() - started

        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "a stream lasts at most 1 s; subscribe again from the last cursor" == error.details()
        assert 0.9 < lasted < 5

    # longer than a call may last: a stream is held to its own limit, not a call's
    run(scenario, max_stream_s="1", max_call_s="0.5")


def test_a_call_that_outlives_the_server_deadline_is_cut_short() -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            started = time.monotonic()
            error = await refused(name(channel, "tok-ada", b"20", timeout=30))
            lasted = time.monotonic() - started
            quick = await name(channel, "tok-ada", b"0.1")

        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error.details() == "the server gives a call at most 0.5 s; retry later"
        assert lasted < 5 and quick == b"ada"

    run(scenario, max_call_s="0.5")


def test_a_message_over_the_size_limit_is_refused() -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            error = await refused(name(channel, "tok-ada", b"0" * 2048))
            small = await name(channel, "tok-ada", b"0" * 512)

        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in error.details()
        assert small == b"ada"

    run(scenario, max_message_bytes="1024")


def test_a_connection_carries_only_so_many_calls_at_once() -> None:
    async def scenario(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as busy, grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]) as fresh:
            streams = [await follow(busy, "tok-ada"), await follow(busy, "tok-bo")]
            waiting = await refused(name(busy, "tok-ops", timeout=1.5))
            elsewhere = await name(fresh, "tok-ops")
            streams[0].cancel()
            freed = await name(busy, "tok-ops")
            streams[1].cancel()

        assert waiting.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert (elsewhere, freed) == (b"ops", b"ops")

    run(scenario, max_concurrent_streams="2")
