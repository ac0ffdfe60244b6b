"""A request that is not the message its method takes is the caller's mistake: INVALID_ARGUMENT.

grpc answers INTERNAL ("Exception deserializing request") when a request's bytes do not
parse, which tells the caller the server broke. This interceptor lets the parse fail softly
and answers INVALID_ARGUMENT with the parser's reason instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from common.auth import wrap_handler

class Undecodable:
    """What a request that does not parse becomes, with the parser's reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _soft(parse: Callable[[bytes], Any], name: str) -> Callable[[bytes], Any]:
    def deserialize(payload: bytes) -> Any:
        try:
            return parse(payload)
        except (DecodeError, ValueError, RecursionError) as error:
            return Undecodable(f"the request is not a valid {name}: {error or type(error).__name__}")
    return deserialize


def _awaiting(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return await inner(request, context)
    return call


def _streaming(inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        async for response in inner(request, context):
            yield response
    return call


class RequestGuard(grpc.aio.ServerInterceptor):
    """Unary requests of our services (not health or reflection) parse softly; see the module doc."""

    def __init__(self, services: frozenset[str]) -> None:
        self._services = services

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        service = details.method.lstrip("/").rpartition("/")[0]
        if (handler is None or service not in self._services or handler.request_streaming
                or handler.request_deserializer is None):
            return handler
        name = details.method.rpartition("/")[2]
        return wrap_handler(handler, details.method, _awaiting, _streaming,
                            request_deserializer=_soft(handler.request_deserializer, f"{name} request"))
