"""ChannelGateway.Deliver and DeliverBatch over gRPC: check the caller and the request, send
once, map the outcome. A batch is its deliveries side by side, each answered as Deliver
would answer it. Its new deliveries go out together: one journal write and fsync for all,
then the channel sends them (the log channel writes their lines with one flush; webhook and
e-mail send each on its own, side by side), then one journal write of their outcomes.

A delivery_id is sent at most once while the gateway remembers it: a repeat is answered
with the first receipt, and a repeat that arrives while the first is still being sent waits
for that one instead of sending again. The memory is a journal on disk (adapters/journal.py):
a send starts only once the journal holds it, so after a restart, even a kill -9, an id is
answered from its receipt, or, if its send was cut off, refused as in doubt (never sent
twice). The send runs in a task of its own, so a caller that gives up (its deadline passed)
does not cut a send short: the retry then finds the receipt.
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
        self._in_flight: dict[str, asyncio.Future[str]] = {}  # delivery id -> its send's outcome
        self._sending: set[asyncio.Task[None]] = set()

    async def Deliver(
        self, request: channel_gateway_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> channel_gateway_pb2.DeliverResponse:
        authorize(current_principal(), CALLERS)
        [result] = await self._deliver_all([request], context.time_remaining(), _traceparent(context))
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
        results = await self._deliver_all(request.deliveries, context.time_remaining(), _traceparent(context))
        return deliver_batch_response(
            (result.delivery_id, result.code.value[0], result.message, result.receipt) for result in results)

    async def _deliver_all(self, requests, remaining: float | None, trace: str) -> list[Result]:
        """Each delivery checked and answered from memory when it was made or is being made;
        the others sent once, together: one journal write and fsync for all of them."""
        answers: list[Result | asyncio.Future[str] | Delivery] = [self._known(request) for request in requests]
        fresh: dict[str, Delivery] = {}
        for answer in answers:
            if isinstance(answer, Delivery):
                if answer.delivery_id in fresh:  # named twice in one call: sent once
                    self._count("duplicate")
                fresh.setdefault(answer.delivery_id, answer)
        if fresh:
            timeout = downstream_timeout(self._timeout, remaining)
            if timeout <= 0:
                sends = {delivery_id: Result(delivery_id, grpc.StatusCode.DEADLINE_EXCEEDED,
                                             "no time left before the call's deadline") for delivery_id in fresh}
            else:
                sends = self._start(list(fresh.values()), timeout, trace)
            answers = [sends[answer.delivery_id] if isinstance(answer, Delivery) else answer for answer in answers]
        return [answer if isinstance(answer, Result) else await self._outcome(request.delivery_id, answer)
                for request, answer in zip(requests, answers)]

    def _known(self, request: channel_gateway_pb2.DeliverRequest) -> Result | asyncio.Future[str] | Delivery:
        """What the gateway already knows of a delivery: its answer, its send under way, or
        nothing (the checked delivery, to send)."""
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
        sending = self._in_flight.get(delivery.delivery_id)
        if sending is not None:
            self._count("duplicate")
            return sending
        return delivery

    @staticmethod
    async def _outcome(delivery_id: str, sending: asyncio.Future[str]) -> Result:
        try:
            return Result(delivery_id, receipt=await asyncio.shield(sending))
        except DeliveryFailed as failure:
            code = grpc.StatusCode.UNAVAILABLE if failure.retryable else grpc.StatusCode.FAILED_PRECONDITION
            return Result(delivery_id, code, str(failure))
        except Exception as error:  # noqa: BLE001 - logged by the send; the caller hears it broke
            return Result(delivery_id, grpc.StatusCode.UNKNOWN,
                          f"the delivery broke ({type(error).__name__}); the gateway's log says more")

    def _start(self, deliveries: list[Delivery], timeout: float, trace: str) -> dict[str, asyncio.Future[str]]:
        """One send for `deliveries`, in a task of its own (a caller that gives up does not cut
        it short); a future per delivery, which repeats arriving meanwhile wait for."""
        loop = asyncio.get_running_loop()
        sends = {delivery.delivery_id: loop.create_future() for delivery in deliveries}
        for delivery_id, sending in sends.items():
            self._in_flight[delivery_id] = sending
            sending.add_done_callback(lambda done, delivery_id=delivery_id: self._forget(delivery_id, done))
        task = asyncio.create_task(self._send(deliveries, sends, timeout, trace),
                                   name=f"deliver-{deliveries[0].delivery_id}+{len(deliveries) - 1}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return sends

    async def _send(self, deliveries: list[Delivery], sends: dict[str, asyncio.Future[str]], timeout: float,
                    trace: str) -> None:
        try:
            try:
                await self._journal.sending(*(delivery.delivery_id for delivery in deliveries))
            except Exception as error:  # nothing was sent: each caller hears it broke
                self._log.exception("cannot journal the deliveries; none sent", deliveries=len(deliveries))
                for delivery in deliveries:
                    self._count("error")
                    sends[delivery.delivery_id].set_exception(error)
                return
            started = time.perf_counter()
            outcomes = await self._channel_deliver(deliveries, timeout)
        except BaseException:  # cancelled (the loop is closing): the callers are told so
            for sending in sends.values():
                sending.done() or sending.cancel()
            raise
        seconds = time.perf_counter() - started
        self._journal.settled((delivery.delivery_id, outcome if isinstance(outcome, str) else None)
                              for delivery, outcome in zip(deliveries, outcomes))
        duration = metrics.DELIVERY_DURATION.labels(self._kind)
        traced = {"traceparent": trace} if trace else {}
        receipts: dict[str, str] = {}
        for delivery, outcome in zip(deliveries, outcomes):
            duration.observe(seconds)
            sending = sends[delivery.delivery_id]
            if isinstance(outcome, str):
                receipts[delivery.delivery_id] = outcome
                sending.set_result(outcome)
                continue
            log = self._log.bind(delivery_id=delivery.delivery_id, **traced)
            if isinstance(outcome, DeliveryFailed):
                self._count("unavailable" if outcome.retryable else "rejected")
                log.warning("delivery failed", retryable=outcome.retryable, reason=str(outcome))
            else:
                self._count("error")
                log.error("delivery broke", exc_info=outcome)
            sending.set_exception(outcome)
        if receipts:
            # One line for what one send delivered: each delivery id with its receipt.
            self._count("delivered", len(receipts))
            self._log.info("delivered", receipts=receipts, seconds=round(seconds, 4), **traced)

    async def _channel_deliver(self, deliveries: list[Delivery], timeout: float) -> list[str | Exception]:
        """Each delivery's receipt or failure: in one go where the channel can (the log file),
        else each on its own, side by side."""
        deliver_all = getattr(self._channel, "deliver_all", None)
        try:
            if deliver_all is not None:
                return await deliver_all(deliveries, timeout)
            return await asyncio.gather(*(self._channel.deliver(delivery, timeout) for delivery in deliveries),
                                        return_exceptions=True)
        except Exception as error:  # the channel broke: every delivery of the call did
            return [error] * len(deliveries)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for sends whose callers have gone, so none is cut off at exit."""
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=timeout)

    def _forget(self, delivery_id: str, sending: asyncio.Future[str]) -> None:
        self._in_flight.pop(delivery_id, None)
        if not sending.cancelled():
            sending.exception()  # retrieved here, so a send nobody waits for any more is not reported as lost

    def _count(self, outcome: str, deliveries: int = 1) -> None:
        metrics.DELIVERIES.labels(self._kind, outcome).inc(deliveries)


def _traceparent(context: grpc.aio.ServicerContext) -> str:
    """The caller's W3C trace context, so the gateway's log lines join its trace."""
    return next((value for key, value in context.invocation_metadata() or () if key == "traceparent"), "")
