"""What one caller may take from a gRPC server: calls per second per token, open streams per
principal, and how long any call or stream may hold the server.

The interceptor runs inside the AuthInterceptor, so it only ever meets authenticated calls:
buckets exist for tokens of the book, not for whatever a stranger sends. A refused call gets
RESOURCE_EXHAUSTED with a retry hint (the `retry-after-ms` trailer and the message); a call
that outlives its deadline gets DEADLINE_EXCEEDED; a stream that outlives its lifetime ends
with UNAVAILABLE, which tells a subscriber to resume from its last cursor.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from common.auth import EXEMPT_SERVICES, Principal, current_principal, wrap_handler

RETRY_AFTER = "retry-after-ms"


@dataclass(frozen=True)
class GrpcLimits:
    """The limits every server of ours applies (README, "Security"; settings GRPC_*)."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_streams: int = 100  # HTTP/2 streams (calls in flight) per connection
    max_streams_per_principal: int = 10  # open server streams (Subscribe) per principal
    calls_per_second: float = 100.0  # per token, unless its token book entry says otherwise
    burst: int = 200
    max_call_s: float = 30.0
    max_stream_s: float = 3600.0

    def server_options(self) -> list[tuple[str, int]]:
        """grpc.aio.server options for the message size and concurrent stream limits."""
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
        ]


class TokenBucket:
    """`rate` calls per second on average, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), now

    def take(self, now: float) -> float:
        """Take one call: 0 when allowed, else the seconds until one will be."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


def _token_key(metadata: Iterable[tuple[str, Any]]) -> bytes:
    values = [value for key, value in metadata if key == "authorization"]
    return hashlib.sha256(str(values[:1]).encode()).digest()


class LimitsInterceptor(grpc.aio.ServerInterceptor):
    """Rate per token, streams per principal, a deadline on every call and stream."""

    def __init__(self, limits: GrpcLimits, clock: Callable[[], float] = time.monotonic,
                 exempt_services: Iterable[str] = EXEMPT_SERVICES) -> None:
        self._limits = limits
        self._clock = clock
        self._exempt = frozenset(exempt_services)
        self._buckets: dict[bytes, TokenBucket] = {}
        self._streams: dict[str, int] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.lstrip("/").rpartition("/")[0] in self._exempt:
            return handler
        token = _token_key(details.invocation_metadata or ())
        streams = handler.response_streaming
        return wrap_handler(handler, details.method, lambda inner: self._awaiting(inner, token, streams),
                            lambda inner: self._streaming(inner, token))

    async def _admit(self, token: bytes, principal: Principal, context: grpc.aio.ServicerContext) -> None:
        """RESOURCE_EXHAUSTED, with a retry hint, when the token has used its rate."""
        rate = principal.calls_per_second or self._limits.calls_per_second
        bucket = self._buckets.get(token)
        now = self._clock()
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[token] = TokenBucket(rate, max(self._limits.burst, math.ceil(rate)), now)
        wait = bucket.take(now)
        if wait:
            retry_ms = max(1, math.ceil(wait * 1000))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{principal.name} is over its rate of {rate:g} calls/s; retry after {retry_ms} ms",
                trailing_metadata=((RETRY_AFTER, str(retry_ms)),),
            )

    @asynccontextmanager
    async def _stream_slot(self, principal: Principal, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Hold one of the principal's open streams, or RESOURCE_EXHAUSTED when it has them all."""
        cap = self._limits.max_streams_per_principal
        if self._streams.get(principal.name, 0) >= cap:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{principal.name} already has {cap} streams open (the limit); close one and retry",
                trailing_metadata=((RETRY_AFTER, "1000"),),
            )
        self._streams[principal.name] = self._streams.get(principal.name, 0) + 1
        try:
            yield
        finally:
            self._streams[principal.name] -= 1
            if not self._streams[principal.name]:
                del self._streams[principal.name]

    async def _end_stream(self, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"a stream lasts at most {self._limits.max_stream_s:g} s; subscribe again from the last cursor")

    def _awaiting(self, inner: Callable[..., Awaitable[Any]], token: bytes, streams: bool) -> Callable[..., Awaitable[Any]]:
        """A handler that returns once: a unary call, or a stream that sends with `context.write`."""
        limit = self._limits.max_call_s

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal = current_principal()
            await self._admit(token, principal, context)
            if streams:
                async with self._stream_slot(principal, context):
                    try:
                        return await asyncio.wait_for(inner(request, context), self._limits.max_stream_s)
                    except TimeoutError:
                        await self._end_stream(context)
            try:
                return await asyncio.wait_for(inner(request, context), limit)
            except TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"the server gives a call at most {limit:g} s; retry later")

        return handle

    def _streaming(self, inner: Callable[..., AsyncIterator[Any]], token: bytes) -> Callable[..., AsyncIterator[Any]]:
        """A handler that yields its replies."""

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            principal = current_principal()
            await self._admit(token, principal, context)
            async with self._stream_slot(principal, context):
                stream = inner(request, context)
                ends = asyncio.get_running_loop().time() + self._limits.max_stream_s
                try:
                    while True:
                        try:
                            item = await asyncio.wait_for(anext(stream), ends - asyncio.get_running_loop().time())
                        except StopAsyncIteration:
                            return
                        except TimeoutError:
                            await self._end_stream(context)
                        yield item
                finally:
                    await stream.aclose()

        return handle
