"""ChannelGateway clients: one Deliver call, its outcome classified for the retry policy.

docs/gateways.md: UNAVAILABLE and DEADLINE_EXCEEDED are worth another try; everything
else (FAILED_PRECONDITION, INVALID_ARGUMENT, PERMISSION_DENIED, ...) is permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from handoff.v1 import channel_gateway_pb2_grpc

from common.grpcclient import aio_channel
from notify.adapters.codec import deliver_request
from notify.domain.notifications import Notification

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered (with the receipt), or why not and whether to retry."""

    delivered: bool
    retryable: bool = False
    reason: str = ""
    receipt: str = ""


class NoGateway(LookupError):
    """No gateway is configured for a channel kind."""


class Gateways:
    """One client channel per configured gateway kind (webhook, email, log), made on first use."""

    def __init__(self, addresses: Mapping[str, str], token: str, ca_file: Path | None = None) -> None:
        self._addresses = dict(addresses)
        self._token = token
        self._ca_file = ca_file
        self._stubs: dict[str, channel_gateway_pb2_grpc.ChannelGatewayStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def configured(self, kind: str) -> bool:
        return bool(self._addresses.get(kind))

    def _stub(self, kind: str) -> channel_gateway_pb2_grpc.ChannelGatewayStub:
        if kind not in self._stubs:
            if not self.configured(kind):
                raise NoGateway(f"no {kind} gateway is configured (NOTIFY_GATEWAY_{kind.upper()})")
            channel = aio_channel(self._addresses[kind], self._token, self._ca_file)
            self._channels.append(channel)
            self._stubs[kind] = channel_gateway_pb2_grpc.ChannelGatewayStub(channel)
        return self._stubs[kind]

    async def deliver(self, delivery_id: str, kind: str, target: str, notification: Notification,
                      timeout: float) -> Outcome:
        """One Deliver call with a deadline of `timeout` seconds."""
        try:
            response = await self._stub(kind).Deliver(
                deliver_request(delivery_id, kind, target, notification), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
            return Outcome(False, retryable=error.code() in RETRYABLE, reason=reason)
        return Outcome(True, receipt=response.receipt)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
