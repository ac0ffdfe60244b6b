"""ChannelGateway.Deliver and DeliverBatch over gRPC: check the caller and the request, send
once, map the outcome. A batch is its deliveries side by side, each answered as Deliver
would answer it; it only saves the caller a call per delivery.

A delivery_id is sent at most once while the gateway remembers it: a repeat is answered
with the first receipt, and a repeat that arrives while the first is still being sent waits
for that one instead of sending again. The memory is a journal on disk (adapters/journal.py):
a send starts only once the journal holds it, so after a restart, even a kill -9, an id is
answered from its receipt, or, if its send was cut off, refused as in doubt (never sent
twice). The send runs in its own task, so a caller that gives up (its deadline passed) does
not cut a send short: the retry then finds the receipt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
from handoff.v1 import channel_gateway_pb2, channel_gateway_pb2_grpc

from common.auth import Role, authorize, current_principal
from common.validation import InvalidField
from gateways import metrics
from gateways.adapters.codec import deliver_batch_response, deliver_response, delivery_from
from gateways.adapters.journal import DeliveryJournal
from gateways.domain.delivery import Channel, Delivery, DeliveryFailed, downstream_timeout
from gateways.domain.targets import valid_delivery

# Notify (a service) delivers; operators (admin) may deliver by hand to test a channel.
CALLERS = {Role.SERVICE, Role.ADMIN}
# Deliveries one DeliverBatch may carry.
MAX_BATCH = 1000


@dataclass(frozen=True)
class Result:
    """What became of one delivery: OK with a receipt, or the status Deliver answers with."""

    delivery_id: str
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    receipt: str = ""


class GatewayServicer(channel_gateway_pb2_grpc.ChannelGatewayServicer):
    """Deliver and DeliverBatch for one kind of channel."""

    def __init__(self, kind: str, channel: Channel, journal: DeliveryJournal, timeout: float, log) -> None:
        self._kind = kind
        self._channel = channel
        self._journal = journal
        self._timeout = timeout
        self._log = log
        self._in_flight: dict[str, asyncio.Task[str]] = {}

    async def Deliver(
        self, request: channel_gateway_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> channel_gateway_pb2.DeliverResponse:
        authorize(current_principal(), CALLERS)
        result = await self._deliver(request, context.time_remaining(), _traceparent(context))
        if result.code is not grpc.StatusCode.OK:
            await context.abort(result.code, result.message)
        return deliver_response(result.delivery_id, result.receipt)

    async def DeliverBatch(
        self, request: channel_gateway_pb2.DeliverBatchRequest, context: grpc.aio.ServicerContext
    ) -> channel_gateway_pb2.DeliverBatchResponse:
        """Every delivery of the batch at once, each answered as Deliver would answer it."""
        authorize(current_principal(), CALLERS)
        if len(request.deliveries) > MAX_BATCH:
            self._count("invalid")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"deliveries: at most {MAX_BATCH} per call, not {len(request.deliveries)}")
        remaining, trace = context.time_remaining(), _traceparent(context)
        results = await asyncio.gather(*(self._deliver(item, remaining, trace) for item in request.deliveries))
        return deliver_batch_response(
            (result.delivery_id, result.code.value[0], result.message, result.receipt) for result in results)

    async def _deliver(self, request: channel_gateway_pb2.DeliverRequest, remaining: float | None,
                       trace: str) -> Result:
        """One delivery: checked, answered from memory when it was made, else sent once."""
        try:
            delivery = valid_delivery(self._kind, delivery_from(request))
        except InvalidField as error:
            self._count("invalid")
            return Result(request.delivery_id, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        receipt = self._journal.ledger.receipt_for(delivery.delivery_id)
        if receipt is not None:
            self._count("duplicate")
            return Result(delivery.delivery_id, receipt=receipt)
        if delivery.delivery_id in self._journal.in_doubt:
            self._count("in_doubt")
            return Result(delivery.delivery_id, grpc.StatusCode.FAILED_PRECONDITION,
                          f"delivery {delivery.delivery_id} was being sent when this gateway stopped; "
                          "whether it arrived is unknown, so it is not sent again")
        task = self._in_flight.get(delivery.delivery_id)
        if task is not None:
            self._count("duplicate")
        else:
            timeout = downstream_timeout(self._timeout, remaining)
            if timeout <= 0:
                return Result(delivery.delivery_id, grpc.StatusCode.DEADLINE_EXCEEDED,
                              "no time left before the call's deadline")
            task = self._start(delivery, timeout, trace)
        try:
            return Result(delivery.delivery_id, receipt=await asyncio.shield(task))
        except DeliveryFailed as failure:
            code = grpc.StatusCode.UNAVAILABLE if failure.retryable else grpc.StatusCode.FAILED_PRECONDITION
            return Result(delivery.delivery_id, code, str(failure))
        except Exception as error:  # noqa: BLE001 - logged by the send; the caller hears it broke
            return Result(delivery.delivery_id, grpc.StatusCode.UNKNOWN,
                          f"the delivery broke ({type(error).__name__}); the gateway's log says more")

    def _start(self, delivery: Delivery, timeout: float, trace: str) -> asyncio.Task[str]:
        log = self._log.bind(delivery_id=delivery.delivery_id)
        if trace:
            log = log.bind(traceparent=trace)
        task = asyncio.create_task(self._send(delivery, timeout, log), name=f"deliver-{delivery.delivery_id}")
        self._in_flight[delivery.delivery_id] = task
        task.add_done_callback(lambda done: self._forget(delivery.delivery_id, done))
        return task

    async def _send(self, delivery: Delivery, timeout: float, log) -> str:
        await self._journal.sending(delivery.delivery_id)
        started = time.perf_counter()
        try:
            receipt = await self._channel.deliver(delivery, timeout)
        except DeliveryFailed as failure:
            self._journal.failed(delivery.delivery_id)
            self._count("unavailable" if failure.retryable else "rejected")
            log.warning("delivery failed", retryable=failure.retryable, reason=str(failure))
            raise
        except Exception:
            self._journal.failed(delivery.delivery_id)
            self._count("error")
            log.exception("delivery broke")
            raise
        finally:
            metrics.DELIVERY_DURATION.labels(self._kind).observe(time.perf_counter() - started)
        self._journal.delivered(delivery.delivery_id, receipt)
        self._count("delivered")
        log.info("delivered", receipt=receipt, seconds=round(time.perf_counter() - started, 4))
        return receipt

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for sends whose callers have gone, so none is cut off at exit."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=timeout)

    def _forget(self, delivery_id: str, task: asyncio.Task[str]) -> None:
        self._in_flight.pop(delivery_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a send nobody waits for any more is not reported as lost

    def _count(self, outcome: str) -> None:
        metrics.DELIVERIES.labels(self._kind, outcome).inc()


def _traceparent(context: grpc.aio.ServicerContext) -> str:
    """The caller's W3C trace context, so the gateway's log lines join its trace."""
    return next((value for key, value in context.invocation_metadata() or () if key == "traceparent"), "")
