"""notify's gateway client against real gRPC servers on loopback: deliveries go out in
DeliverBatch calls, each result classified for the retry policy; a gateway that only
implements Deliver is sent one Deliver per delivery; with several replicas, each delivery
goes to the replica its id names."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from handoff.v1 import channel_gateway_pb2, channel_gateway_pb2_grpc

from notify.adapters import gateways as gateway_client
from notify.adapters.codec import notification_bytes
from notify.adapters.gateways import Delivery, Gateways
from notify.domain.notifications import BREACH, Notification
from tests.unit.conftest import T0

pytestmark = pytest.mark.integration

NOTE = Notification("n-1", "breach:h-1:ack", BREACH, "billing", "billing", "HIGH", "h-1", "case-1", "cust-1",
                    "ack", "t", "b", T0)


class OnlyDeliver(channel_gateway_pb2_grpc.ChannelGatewayServicer):
    """A gateway written before DeliverBatch existed."""

    def __init__(self) -> None:
        self.batches = 0
        self.delivered: list[str] = []

    async def Deliver(self, request, context):
        self.delivered.append(request.delivery_id)
        return channel_gateway_pb2.DeliverResponse(delivery_id=request.delivery_id, receipt=f"r-{request.delivery_id}")

    async def DeliverBatch(self, request, context):
        self.batches += 1
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


class Scripted(channel_gateway_pb2_grpc.ChannelGatewayServicer):
    """Answers each delivery with the status its id names: `ok-…`, `busy-…` or `gone-…`."""

    CODES = {"ok": grpc.StatusCode.OK, "busy": grpc.StatusCode.UNAVAILABLE, "gone": grpc.StatusCode.FAILED_PRECONDITION}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def DeliverBatch(self, request, context):
        self.calls.append([item.delivery_id for item in request.deliveries])
        return channel_gateway_pb2.DeliverBatchResponse(results=[
            channel_gateway_pb2.DeliverResult(
                delivery_id=item.delivery_id, code=self.CODES[item.delivery_id.partition("-")[0]].value[0],
                message="" if item.delivery_id.startswith("ok") else f"said no to {item.delivery_id}",
                receipt=f"r-{item.delivery_id}" if item.delivery_id.startswith("ok") else "")
            for item in request.deliveries])


async def delivered_through(servicer, ids: list[str], rounds: int = 1, *more_replicas):
    """Deliver `ids` `rounds` times through the gateway `servicer` serves (and the replicas
    the other servicers serve, in that order); the outcomes of each round."""
    servers, addresses = [], []
    for each in (servicer, *more_replicas):
        server = grpc.aio.server()
        channel_gateway_pb2_grpc.add_ChannelGatewayServicer_to_server(each, server)
        addresses.append(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
        await server.start()
        servers.append(server)
    gateways = Gateways({"log": addresses}, "a-token")
    try:
        return [await gateways.deliver("log", [Delivery(i, "ops", notification_bytes(NOTE)) for i in ids], timeout=10)
                for _ in range(rounds)], addresses
    finally:
        await gateways.close()
        for server in servers:
            await server.stop(None)


def test_a_gateway_without_deliver_batch_is_sent_one_deliver_per_delivery():
    servicer = OnlyDeliver()

    (first, second), _ = asyncio.run(delivered_through(servicer, ["d-1", "d-2", "d-3"], rounds=2))

    assert [o.receipt for o in first] == [o.receipt for o in second] == ["r-d-1", "r-d-2", "r-d-3"]
    assert all(o.delivered for o in first + second)
    assert servicer.batches == 1  # asked once; from then on Deliver only
    assert sorted(servicer.delivered) == ["d-1", "d-1", "d-2", "d-2", "d-3", "d-3"]


def test_each_result_of_a_batch_is_classified_for_the_retry_policy():
    servicer = Scripted()

    [outcomes], _ = asyncio.run(delivered_through(servicer, ["ok-1", "busy-1", "gone-1"]))

    assert servicer.calls == [["ok-1", "busy-1", "gone-1"]]
    ok, busy, gone = outcomes
    assert ok.delivered and ok.receipt == "r-ok-1"
    assert not busy.delivered and busy.retryable and busy.reason == "UNAVAILABLE: said no to busy-1"
    assert not gone.delivered and not gone.retryable and gone.reason.startswith("FAILED_PRECONDITION")


def test_a_batch_is_split_into_calls_of_at_most_a_megabyte(monkeypatch):
    one = Delivery("ok-0", "ops", notification_bytes(NOTE))
    size = one.size_bound("log")
    alone = channel_gateway_pb2.DeliverBatchRequest(
        deliveries=[gateway_client.deliver_request(one.delivery_id, "log", one.target, one.notification)])
    assert alone.ByteSize() <= size  # a bound: no call is bigger than it was meant to be
    monkeypatch.setattr(gateway_client, "MAX_BATCH_BYTES", 2 * size + 1)
    servicer = Scripted()

    [outcomes], _ = asyncio.run(delivered_through(servicer, [f"ok-{n}" for n in range(5)]))

    assert sorted(servicer.calls) == [["ok-0", "ok-1"], ["ok-2", "ok-3"], ["ok-4"]]
    assert [o.receipt for o in outcomes] == [f"r-ok-{n}" for n in range(5)]


def test_with_several_replicas_each_delivery_goes_to_the_replica_its_id_names_every_time():
    replicas = [Scripted(), Scripted(), Scripted()]
    ids = [f"ok-{n}" for n in range(300)]

    # delivered twice over (a retry of each), through three replicas
    (first, second), addresses = asyncio.run(delivered_through(replicas[0], ids, 2, *replicas[1:]))

    # each replica was sent exactly the ids that name it, in one batch each round, and both times
    for replica, address in zip(replicas, addresses):
        named = [i for i in ids if gateway_client.replica_for(i, addresses) == address]
        assert 50 < len(named) < 150
        assert replica.calls == [named, named]
    # and the outcomes come back in the order of the deliveries
    assert [o.receipt for o in first] == [o.receipt for o in second] == [f"r-{i}" for i in ids]
