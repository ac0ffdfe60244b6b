"""HandoffService over gRPC: decode the request, run the command, publish, answer."""

from __future__ import annotations

import grpc
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common.clock import Clock
from common.ids import derived_event_id
from common.topics import HANDOFF_EVENTS
from common.validation import InvalidField
from handoff_svc import metrics
from handoff_svc.adapters.codec import encode_event, leg_to_pb
from handoff_svc.adapters.legstore import LegStore
from handoff_svc.adapters.publisher import Publisher
from handoff_svc.domain import legs
from handoff_svc.entrypoints.requests import acknowledge_command, create_command, occurred_at


def _actor(context: grpc.aio.ServicerContext) -> str:
    metadata = dict(context.invocation_metadata() or ())
    return str(metadata.get("x-actor", "unknown"))[:128]


class HandoffApi(api_grpc.HandoffServiceServicer):
    """The leg lifecycle. Methods not yet offered answer UNIMPLEMENTED (the generated base)."""

    def __init__(self, store: LegStore, publisher: Publisher, clock: Clock) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def _write(self, event: legs.HandoffEvent, event_id: str, request_id: str) -> legs.Leg:
        value = encode_event(event, event_id, self._clock.now(), request_id)
        await self._publisher.publish(HANDOFF_EVENTS.name, self._store_key(event), value)
        return self._store.apply(event_id, event)

    @staticmethod
    def _store_key(event: legs.HandoffEvent) -> str:
        return event.leg.customer_ref if isinstance(event, legs.HandoffCreated) else event.customer_ref

    async def CreateHandoff(self, request: api_pb2.CreateHandoffRequest, context) -> api_pb2.Handoff:
        try:
            command = create_command(request, _actor(context))
            at = occurred_at(request, self._clock.now())
        except InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        existing = self._store.get(command.handoff_id)
        if existing is not None:
            return leg_to_pb(existing)
        event = legs.create(command, at)
        leg = await self._write(event, derived_event_id("created", command.handoff_id), request.request_id)
        metrics.LEGS_CREATED.labels(leg.department, leg.priority.value.lower()).inc()
        return leg_to_pb(leg)

    async def AcknowledgeHandoff(self, request: api_pb2.AcknowledgeHandoffRequest, context) -> api_pb2.Handoff:
        try:
            command = acknowledge_command(request, _actor(context))
            at = occurred_at(request, self._clock.now())
        except InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        leg = self._store.get(command.handoff_id)
        if leg is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"handoff {command.handoff_id} not found")
        event_id = derived_event_id("acknowledged", command.handoff_id, request.request_id)
        if self._store.was_applied(event_id):
            return leg_to_pb(leg)
        try:
            event = legs.acknowledge(leg, command, at)
        except legs.InvalidTransition as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return leg_to_pb(await self._write(event, event_id, request.request_id))

    async def GetHandoff(self, request: api_pb2.GetHandoffRequest, context) -> api_pb2.Handoff:
        leg = self._store.get(request.handoff_id)
        if leg is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"handoff {request.handoff_id} not found")
        return leg_to_pb(leg)
