"""A grpc.aio server with what every server of ours carries: health, reflection, metrics.

Health answers two questions. The health service name `liveness` is SERVING while the
process runs (liveness and start-up probes ask it); the overall name "" and each service's
name are SERVING only once the process is ready to answer: its tables and read models have
recovered (readiness probes ask "").
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.auth import EXEMPT_SERVICES
from common.limits import LimitsInterceptor
from common.metrics import MetricsInterceptor
from common.requestguard import RequestGuard
from common.security import ServerSecurity

LIVENESS = "liveness"
NOT_READY = "not ready yet: tables and read models are recovering; retry shortly"
_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


async def _refuse(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAVAILABLE, NOT_READY)


async def _refuse_stream(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAVAILABLE, NOT_READY)
    yield  # an async generator, as a streaming handler must be


class ReadinessGate(grpc.aio.ServerInterceptor):
    """Answers UNAVAILABLE to every call but health and reflection until the server is ready."""

    def __init__(self) -> None:
        self.ready = False

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if self.ready or handler is None or details.method.lstrip("/").rpartition("/")[0] in EXEMPT_SERVICES:
            return handler
        factory = _FACTORIES[handler.request_streaming, handler.response_streaming]
        return factory(_refuse_stream if handler.response_streaming else _refuse,
                       request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


@dataclass
class RunningServer:
    """A started server: the port it listens on and the health state it reports."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    gate: ReadinessGate
    reloads_tokens_on_sighup: bool = False

    async def set_serving(self) -> None:
        """Take calls, and report ready: "" and every service name SERVING."""
        self.gate.ready = True
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, refuse new calls, let running ones finish within `grace`."""
        if self.reloads_tokens_on_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for name in ("", LIVENESS, *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


async def start_server(
    host: str,
    port: int,
    registrations: Iterable[tuple[Callable[[object, grpc.aio.Server], None], object, str]],
    security: ServerSecurity,
    serving: bool = True,
) -> RunningServer:
    """Start a server for `(add_servicer_to_server, servicer, full service name)` triples.

    With `serving` False it is alive but not ready (NOT_SERVING) until `set_serving()`.
    Metrics come first among the interceptors, so refused calls are counted too; the limits
    come after the token check, so they only meet callers of the token book.
    """
    gate = ReadinessGate()
    registrations = list(registrations)
    names = [name for _, _, name in registrations]
    limits = security.limits
    # The guard is innermost, so a request that does not parse is refused as INVALID_ARGUMENT
    # after the gate, authentication and the limits have had their say.
    guard = RequestGuard(frozenset(names))
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), gate, security.interceptor, LimitsInterceptor(limits), guard],
        options=limits.server_options(),
    )
    for add, servicer, _ in registrations:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{host}:{port}"
    if security.credentials is not None:
        bound = server.add_secure_port(address, security.credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    running = RunningServer(server, bound, health_servicer, tuple(names), gate, security.token_file is not None)
    if security.token_file is not None:
        # `kill -HUP` reloads the token book at once (it also reloads by itself within a second).
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, security.token_file.reload)
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    if serving:
        await running.set_serving()
    return running
