"""gRPC health as the probes read it: `liveness` is SERVING while the process runs; "" and each
service are SERVING, and calls are taken, only once the process says it is ready."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common.auth import AuthInterceptor
from common.grpcserver import LIVENESS, start_server
from common.security import ServerSecurity
from common.tokenbook import TokenBook

pytestmark = pytest.mark.integration

SERVICE = "handoff.v1.HandoffService"
SECURITY = ServerSecurity(AuthInterceptor(TokenBook.parse_env("tok-ops=ops:admin")), None, None)


class OneLeg(api_grpc.HandoffServiceServicer):
    async def GetHandoff(self, request, context):
        return api.Handoff(handoff_id=request.handoff_id, department="billing")


async def statuses(address: str, names: tuple[str, ...] = ("", LIVENESS, SERVICE)) -> dict[str, str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {name or "(overall)": health_pb2.HealthCheckResponse.ServingStatus.Name(
            (await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status)
            for name in names}


async def call_code(address: str) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await api_grpc.HandoffServiceStub(channel).GetHandoff(
                api.GetHandoffRequest(handoff_id="h-1"), metadata=[("authorization", "Bearer tok-ops")], timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def test_a_server_not_yet_ready_is_alive_refuses_calls_and_becomes_ready_when_told():
    async def scenario():
        registrations = [(api_grpc.add_HandoffServiceServicer_to_server, OneLeg(), SERVICE)]
        server = await start_server("127.0.0.1", 0, registrations, SECURITY, serving=False)
        address = f"127.0.0.1:{server.port}"
        try:
            before = await statuses(address), await call_code(address)
            await server.set_serving()
            after = await statuses(address), await call_code(address)
        finally:
            await server.stop(grace=1)
        return before, after

    (health_before, call_before), (health_after, call_after) = asyncio.run(scenario())
    assert health_before == {"(overall)": "NOT_SERVING", LIVENESS: "SERVING", SERVICE: "NOT_SERVING"}
    assert call_before == (grpc.StatusCode.UNAVAILABLE,
                           "not ready yet: tables and read models are recovering; retry shortly")
    assert health_after == {"(overall)": "SERVING", LIVENESS: "SERVING", SERVICE: "SERVING"}
    assert call_after == (grpc.StatusCode.OK, "")


def test_a_server_started_serving_is_ready_at_once():
    async def scenario():
        server = await start_server("127.0.0.1", 0, [], SECURITY)
        try:
            return await statuses(f"127.0.0.1:{server.port}", names=("", LIVENESS))
        finally:
            await server.stop(grace=0)

    assert asyncio.run(scenario()) == {"(overall)": "SERVING", LIVENESS: "SERVING"}
