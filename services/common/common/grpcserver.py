"""A grpc.aio server with what every server of ours carries: health, reflection, metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.metrics import MetricsInterceptor
from common.security import ServerSecurity


@dataclass
class RunningServer:
    """A started server: the port it listens on and the health state it reports."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, refuse new calls, let running ones finish within `grace`."""
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


async def start_server(
    host: str,
    port: int,
    registrations: Iterable[tuple[Callable[[object, grpc.aio.Server], None], object, str]],
    security: ServerSecurity,
) -> RunningServer:
    """Start a server for `(add_servicer_to_server, servicer, full service name)` triples.

    Metrics come first among the interceptors, so refused calls are counted too.
    """
    server = grpc.aio.server(interceptors=[MetricsInterceptor(), security.interceptor])
    names: list[str] = []
    for add, servicer, name in registrations:
        add(servicer, server)
        names.append(name)
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
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, bound, health_servicer, tuple(names))
