"""Client channels that carry a bearer token on every call, over TLS when given a CA."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import grpc

from common.tls import channel_credentials

_Details = namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"))


def _with_token(details, token: str):
    metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
    return _Details(details.method, details.timeout, metadata, details.credentials,
                    getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_with_token(details, self._token), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(_with_token(details, self._token), request)


class _AioBearerUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_with_token(details, self._token), request)


class _AioBearerStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(_with_token(details, self._token), request)


def channel(address: str, token: str, ca_file: Path | None = None) -> grpc.Channel:
    """A blocking channel to `address` sending `token`; TLS when `ca_file` is given."""
    raw = (grpc.secure_channel(address, channel_credentials(ca_file)) if ca_file
           else grpc.insecure_channel(address))
    return grpc.intercept_channel(raw, _Bearer(token))


def aio_channel(address: str, token: str, ca_file: Path | None = None) -> grpc.aio.Channel:
    """An asyncio channel to `address` sending `token`; TLS when `ca_file` is given."""
    interceptors = [_AioBearerUnary(token), _AioBearerStream(token)]
    if ca_file:
        return grpc.aio.secure_channel(address, channel_credentials(ca_file), interceptors=interceptors)
    return grpc.aio.insecure_channel(address, interceptors=interceptors)
