"""ChannelGateway clients: deliveries sent in batches, each outcome classified for the retry
policy, each delivery to the gateway replica its id names.

docs/gateways.md: UNAVAILABLE and DEADLINE_EXCEEDED are worth another try; everything
else (FAILED_PRECONDITION, INVALID_ARGUMENT, PERMISSION_DENIED, ...) is permanent. A gateway
that does not implement DeliverBatch (UNIMPLEMENTED) is sent one Deliver per delivery from
then on.

A gateway replica remembers the ids it has sent (its journal), and only its own. With the
addresses of several replicas, a delivery goes to the replica `replica_for` picks from its
id alone, so every attempt at it, from any notify replica (after a takeover too), reaches the
replica whose journal knows it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from handoff.v1 import channel_gateway_pb2, channel_gateway_pb2_grpc

from common.grpcclient import aio_channel
from notify.adapters.codec import deliver_request, fill_deliver_request

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# A DeliverBatch carries at most this many deliveries (the gateways' limit) and bytes of
# requests (a gRPC message may hold 4 MiB).
MAX_BATCH = 1000
MAX_BATCH_BYTES = 1 << 20
# A DeliverRequest's framing within a batch: a tag and a length before it and before each of
# its four fields, a length taking at most three bytes below 2 MiB.
FRAMING = 20


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered (with the receipt), or why not and whether to retry."""

    delivered: bool
    retryable: bool = False
    reason: str = ""
    receipt: str = ""

    @classmethod
    def refused(cls, code: grpc.StatusCode, details: str) -> Outcome:
        return cls(False, retryable=code in RETRYABLE, reason=f"{code.name}: {details}")


@dataclass(frozen=True)
class Delivery:
    """One delivery to make: what, to whom, under which stable id."""

    delivery_id: str
    target: str
    # The notification serialized (codec.notification_bytes), as it is sent.
    notification: bytes = field(repr=False)

    def size_bound(self, kind: str) -> int:
        """At least the bytes of its DeliverRequest (through `kind`) within a DeliverBatch."""
        return len(self.notification) + len(self.delivery_id) + len(self.target) + len(kind) + FRAMING


class NoGateway(LookupError):
    """No gateway is configured for a channel kind."""


def replica_for(delivery_id: str, addresses: Sequence[str]) -> str:
    """The replica, of `addresses`, that delivers `delivery_id`: the same wherever and whenever
    it is asked (rendezvous hashing: the address that scores highest with the id). Adding a
    replica moves only the ids it now wins; removing one moves only the ids it had."""
    if len(addresses) == 1:
        return addresses[0]
    return max(addresses, key=lambda address: hashlib.blake2b(
        f"{address}\n{delivery_id}".encode(), digest_size=8).digest())


class Gateways:
    """A client channel per gateway replica (`addresses`: for each kind, webhook, email, log, the
    addresses of its replicas), made on first use."""

    def __init__(self, addresses: Mapping[str, Sequence[str]], token: str, ca_file: Path | None = None) -> None:
        self._addresses = {kind: tuple(replicas) for kind, replicas in addresses.items()}
        self._token = token
        self._ca_file = ca_file
        self._stubs: dict[str, channel_gateway_pb2_grpc.ChannelGatewayStub] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._unbatched: set[str] = set()  # replicas that answered DeliverBatch UNIMPLEMENTED

    def configured(self, kind: str) -> bool:
        return bool(self._addresses.get(kind))

    def _stub(self, address: str) -> channel_gateway_pb2_grpc.ChannelGatewayStub:
        if address not in self._stubs:
            channel = aio_channel(address, self._token, self._ca_file)
            self._channels.append(channel)
            self._stubs[address] = channel_gateway_pb2_grpc.ChannelGatewayStub(channel)
        return self._stubs[address]

    async def deliver(self, kind: str, deliveries: Sequence[Delivery], timeout: float) -> list[Outcome]:
        """Deliver each of `deliveries` through the `kind` gateway within `timeout` seconds, each
        to its replica (replica_for); their outcomes in the same order."""
        if not self.configured(kind):
            raise NoGateway(f"no {kind} gateway is configured (NOTIFY_GATEWAY_{kind.upper()})")
        replicas = self._addresses[kind]
        shares: dict[str, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            shares.setdefault(replica_for(delivery.delivery_id, replicas), []).append(index)
        answers = await asyncio.gather(*(
            self._deliver_to(address, kind, [deliveries[i] for i in indexes], timeout)
            for address, indexes in shares.items()))
        by_index = {index: outcome for indexes, answer in zip(shares.values(), answers)
                    for index, outcome in zip(indexes, answer)}
        return [by_index[index] for index in range(len(deliveries))]

    async def _deliver_to(self, address: str, kind: str, deliveries: Sequence[Delivery],
                          timeout: float) -> list[Outcome]:
        """One DeliverBatch per megabyte of requests to the replica at `address`, all at once."""
        stub = self._stub(address)
        if address not in self._unbatched:
            answers = await asyncio.gather(*(self._batch(stub, address, batch, timeout)
                                             for batch in deliver_batches(kind, deliveries)))
            if address not in self._unbatched:  # else: UNIMPLEMENTED just now, so one Deliver each below
                return [outcome for answer in answers for outcome in answer]
        return list(await asyncio.gather(*(
            self._one(stub, deliver_request(d.delivery_id, kind, d.target, d.notification), timeout)
            for d in deliveries)))

    async def _batch(self, stub: channel_gateway_pb2_grpc.ChannelGatewayStub, address: str,
                     batch: channel_gateway_pb2.DeliverBatchRequest, timeout: float) -> list[Outcome]:
        count = len(batch.deliveries)
        try:
            response = await stub.DeliverBatch(batch, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                self._unbatched.add(address)
            return [Outcome.refused(error.code(), error.details())] * count
        if len(response.results) != count:
            reason = f"the gateway answered {len(response.results)} results for {count} deliveries"
            return [Outcome(False, retryable=True, reason=reason)] * count
        return [Outcome(True, receipt=result.receipt) if result.code == 0
                else Outcome.refused(_CODES.get(result.code, grpc.StatusCode.UNKNOWN), result.message)
                for result in response.results]

    async def _one(self, stub: channel_gateway_pb2_grpc.ChannelGatewayStub,
                   request: channel_gateway_pb2.DeliverRequest, timeout: float) -> Outcome:
        try:
            response = await stub.Deliver(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return Outcome.refused(error.code(), error.details())
        return Outcome(True, receipt=response.receipt)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def deliver_batches(kind: str, deliveries: Sequence[Delivery]) -> Iterator[channel_gateway_pb2.DeliverBatchRequest]:
    """The DeliverBatch requests of `deliveries`, in order: at most MAX_BATCH deliveries and
    MAX_BATCH_BYTES each (a bigger delivery goes alone)."""
    batch = channel_gateway_pb2.DeliverBatchRequest()
    size = 0
    for delivery in deliveries:
        length = delivery.size_bound(kind)
        if batch.deliveries and (size + length > MAX_BATCH_BYTES or len(batch.deliveries) == MAX_BATCH):
            yield batch
            batch, size = channel_gateway_pb2.DeliverBatchRequest(), 0
        fill_deliver_request(batch.deliveries.add(), delivery.delivery_id, kind, delivery.target, delivery.notification)
        size += length
    if batch.deliveries:
        yield batch
