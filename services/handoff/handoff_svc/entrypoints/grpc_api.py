"""HandoffService over gRPC: check the request, send the command to the partition owner,
answer with its reply; reads come from this replica's read model once it has caught up."""

from __future__ import annotations

import base64

import grpc
from handoff.v1 import handoff_commands_pb2 as commands_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common import validation as check
from common.auth import CustomerRefKeys, Role, authorize, current_principal
from common.clock import Clock
from common.codec import new_envelope, to_timestamp
from common.departments import Departments
from common.ids import new_event_id
from handoff_svc.adapters.codec import STATUS_FROM_PB, contact_to_pb, leg_to_pb
from handoff_svc.adapters.commandbus import CommandBus, CommandTimeout
from handoff_svc.adapters.legstore import LegFeed, LegStore
from handoff_svc.domain.legs import Leg
from handoff_svc.entrypoints.access import RULES
from handoff_svc.entrypoints.requests import (
    LEG_COMMANDS,
    create_command,
    known_department,
    occurred_at,
    record_contact_command,
)

STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
COMMAND_TIMEOUT = 10.0
MAX_PAGE = 500


def _actor(context: grpc.aio.ServicerContext) -> str:
    return current_principal().name


def _allow(kind: str, department: str | None = None) -> None:
    """Raise PermissionDenied (PERMISSION_DENIED) unless the caller may do `kind`."""
    authorize(current_principal(), RULES[kind], department)


class HandoffApi(api_grpc.HandoffServiceServicer):
    def __init__(
        self, store: LegStore, feed: LegFeed, bus: CommandBus, clock: Clock, customer_ref_keys: CustomerRefKeys | None,
        departments: Departments,
    ) -> None:
        self._customer_ref_keys = customer_ref_keys
        self._departments = departments
        self._store = store
        self._feed = feed
        self._bus = bus
        self._clock = clock

    # -- writes -------------------------------------------------------------------------

    async def _send(self, kind: str, request, customer_ref: str, at, context) -> commands_pb2.CommandReply:
        now = self._clock.now()
        command = commands_pb2.HandoffCommand(
            envelope=new_envelope("handoff", at, now, event_id=new_event_id(), request_id=request.request_id),
            customer_ref=customer_ref, actor=_actor(context), occurred_at=to_timestamp(at), **{kind: request},
        )
        try:
            reply = await self._bus.send(command, COMMAND_TIMEOUT)
        except CommandTimeout as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{error}; retry with the same request_id")
        if reply.code:
            await context.abort(STATUS_CODES[reply.code], reply.message)
        return reply

    async def _leg_command(self, kind: str, request, context) -> commands_pb2.CommandReply:
        convert, _ = LEG_COMMANDS[kind]
        try:
            command = convert(request, _actor(context))
            if kind == "transfer":
                known_department("to_department", command.to_department, self._departments)
            at = occurred_at(request, self._clock.now())
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        leg = await self._known_leg(request.handoff_id, context)
        _allow(kind, leg.department)
        return await self._send(kind, request, leg.customer_ref, at, context)

    async def _customer_refs(self, request, context) -> list[str]:
        """The customer_refs a request names: its customer_ref, or its raw customer_id's
        pseudonyms (the current key's first; during a key rotation, the previous key's too)."""
        if not request.customer_id:
            return [request.customer_ref]
        if request.customer_ref:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "customer_id: give customer_ref or customer_id, not both")
        if self._customer_ref_keys is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "customer_id: this service has no CUSTOMER_REF_KEY to pseudonymise it"
            )
        try:
            return self._customer_ref_keys.lookups(request.customer_id, self._clock.now())
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"customer_id: {error}")

    async def _pseudonymise(self, request, context):
        """A copy of `request` whose raw customer_id, if any, is replaced by its customer_ref."""
        if not request.customer_id:
            return request
        safe = type(request)()
        safe.CopyFrom(request)
        safe.customer_ref = (await self._customer_refs(request, context))[0]
        safe.customer_id = ""
        return safe

    async def CreateHandoff(self, request, context) -> api_pb2.Handoff:
        _allow("create")
        request = await self._pseudonymise(request, context)
        try:
            command = create_command(request, _actor(context))
            known_department("department", command.department, self._departments)
            at = occurred_at(request, self._clock.now())
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return (await self._send("create", request, command.customer_ref, at, context)).handoffs[0]

    async def AcknowledgeHandoff(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("acknowledge", request, context)).handoffs[0]

    async def UpdateHandoffStatus(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("update_status", request, context)).handoffs[0]

    async def ChangePriority(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("change_priority", request, context)).handoffs[0]

    async def TransferHandoff(self, request, context) -> api_pb2.TransferHandoffResponse:
        reply = await self._leg_command("transfer", request, context)
        return api_pb2.TransferHandoffResponse(ended=reply.handoffs[0], opened=reply.handoffs[-1])

    async def ResolveHandoff(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("resolve", request, context)).handoffs[0]

    async def ReopenHandoff(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("reopen", request, context)).handoffs[0]

    async def CancelHandoff(self, request, context) -> api_pb2.Handoff:
        return (await self._leg_command("cancel", request, context)).handoffs[0]

    async def RecordContact(self, request, context) -> api_pb2.Contact:
        _allow("record_contact")
        request = await self._pseudonymise(request, context)
        try:
            command = record_contact_command(request, _actor(context))
            at = occurred_at(request, self._clock.now(), field="contacted_at")
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return (await self._send("record_contact", request, command.customer_ref, at, context)).contact

    # -- reads --------------------------------------------------------------------------

    async def _caught_up(self, context, include_open: bool = False) -> None:
        try:
            await self._feed.caught_up(include_open=include_open)
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica is catching up; retry shortly")

    async def _known_leg(self, handoff_id: str, context) -> Leg:
        try:
            check.identifier("handoff_id", handoff_id)
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        leg = self._store.get(handoff_id)
        if leg is None:
            # The caller may hold the leg's id from a reply whose transaction is still making
            # the leg's own events readable: wait for the transactions under way too.
            await self._caught_up(context, include_open=True)
            leg = self._store.get(handoff_id)
        if leg is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"handoff {handoff_id} not found")
        return leg

    def _pb(self, leg: Leg) -> api_pb2.Handoff:
        return leg_to_pb(leg, breached=self._store.is_breached(leg.handoff_id))

    async def GetHandoff(self, request, context) -> api_pb2.Handoff:
        await self._caught_up(context)
        leg = await self._known_leg(request.handoff_id, context)
        _allow("read", leg.department)
        return self._pb(leg)

    async def ListHandoffs(self, request, context) -> api_pb2.ListHandoffsResponse:
        try:
            department = check.label("department", request.department) if request.department else ""
            status = STATUS_FROM_PB.get(request.status) if request.status else None
            if request.status and status is None:
                raise check.InvalidField("status", "is not a leg status")
            if not 0 <= request.page_size <= MAX_PAGE:
                raise check.InvalidField("page_size", f"must be 0..{MAX_PAGE}")
            after = _decode_token(request.page_token)
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        principal = current_principal()
        if principal.role is Role.DEPARTMENT:
            # A department lists its own legs; asking for another's is refused, not emptied.
            _allow("read", department or principal.department)
            department = principal.department
        await self._caught_up(context)
        selected = sorted(
            (
                leg for leg in self._store.legs()
                if (not department or leg.department == department)
                and (status is None or leg.status == status)
                and (not request.filter_breached or self._store.is_breached(leg.handoff_id) == request.breached)
                and (after is None or _order(leg) > after)
            ),
            key=_order,
        )
        size = request.page_size or 50
        page = selected[:size]
        token = _encode_token(_order(page[-1])) if len(selected) > size else ""
        return api_pb2.ListHandoffsResponse(handoffs=[self._pb(leg) for leg in page], next_page_token=token)

    async def GetCustomerTimeline(self, request, context) -> api_pb2.CustomerTimeline:
        _allow("timeline")
        refs = await self._customer_refs(request, context)
        try:
            customer_ref = check.pseudonym("customer_ref", refs[0])
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        await self._caught_up(context)
        entries = [(c.contacted_at, api_pb2.TimelineEntry(contact=contact_to_pb(c)))
                   for ref in refs for c in self._store.customer_contacts(ref)]
        entries += [(leg.created_at, api_pb2.TimelineEntry(handoff=self._pb(leg)))
                    for ref in refs for leg in self._store.customer_legs(ref)]
        entries.sort(key=lambda pair: pair[0])
        for at, entry in entries:
            entry.at.CopyFrom(to_timestamp(at))
        return api_pb2.CustomerTimeline(customer_ref=customer_ref, entries=[e for _, e in entries])


def _order(leg: Leg) -> tuple[str, str]:
    return leg.created_at.isoformat(), leg.handoff_id


def _encode_token(order: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("|".join(order).encode()).decode()


def _decode_token(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        created, _, handoff_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
    except (ValueError, UnicodeDecodeError):
        raise check.InvalidField("page_token", "is not a token this service handed out") from None
    if not handoff_id:
        raise check.InvalidField("page_token", "is not a token this service handed out")
    return created, handoff_id
