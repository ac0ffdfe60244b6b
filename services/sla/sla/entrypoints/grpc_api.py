"""SlaService over gRPC: check the request, ask this replica's read model once it has caught
up, answer. Any replica answers any call: each reads the whole stream (adapters.readmodel).

Who may read what (README, "Security"): anyone authenticated may read a leg's clocks,
a department only its own legs'; scorecards and breaches are for departments (their own
only, never the whole centre), admins and services.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from handoff.v1 import sla_service_pb2 as api_pb2
from handoff.v1 import sla_service_pb2_grpc as api_grpc

from common import request_fields
from common import validation as check
from common.auth import PermissionDenied, Role, authorize, current_principal
from common.clock import Clock
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.settings import READ_MODEL_HISTORY
from sla.adapters import readmodel_codec as codec
from sla.adapters.readmodel import SlaFeed
from sla.adapters.readmodel_store import BreachKey, SlaReadModel, breach_key
from sla.domain.calendar import AlwaysOpen
from sla.domain.policy import PolicyBook
from sla.domain.scorecard import WHOLE_CENTRE, MixedCurrencies, Period, business_time_left

SERVICE_NAME = api_pb2.DESCRIPTOR.services_by_name["SlaService"].full_name
DEFAULT_PERIOD = timedelta(days=30)
_REPORT_READERS = {Role.DEPARTMENT, Role.ADMIN, Role.SERVICE}
RULES: dict[str, set[Role]] = {
    "handoff_sla": set(Role),
    "scorecard": _REPORT_READERS,
    "breaches": _REPORT_READERS,
}


def _own(department: str) -> str:
    """The department asked for; a department that names none asks for its own."""
    principal = current_principal()
    return department or (principal.department if principal.role is Role.DEPARTMENT else WHOLE_CENTRE)


def _allow(kind: str, department: str) -> None:
    """Raise PermissionDenied unless the caller may do `kind` for `department` ("" = whole centre)."""
    principal = current_principal()
    if principal.role is Role.DEPARTMENT and department == WHOLE_CENTRE:
        raise PermissionDenied(
            f"department {principal.department} may read only its own figures; ask for department "
            f"{principal.department} (the whole centre needs an admin or service token)"
        )
    authorize(principal, RULES[kind], department or None)


class SlaApi(api_grpc.SlaServiceServicer):
    """Reads only: each call validates, authorizes, waits for the read model, answers."""

    def __init__(
        self, store: SlaReadModel, feed: SlaFeed, policies: PolicyBook, clock: Clock, default_currency: str = ""
    ) -> None:
        self._store = store
        self._feed = feed
        self._policies = policies
        self._clock = clock
        self._default_currency = default_currency

    async def _caught_up(self, context, include_open: bool = False) -> None:
        try:
            await self._feed.caught_up(include_open=include_open)
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica is catching up; retry shortly")

    async def GetHandoffSla(self, request, context) -> api_pb2.HandoffSla:
        try:
            handoff_id = check.identifier("handoff_id", request.handoff_id)
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        await self._caught_up(context)
        leg = self._store.leg(handoff_id)
        if leg is None:
            # The caller may hold the id from a CreateHandoff reply whose transaction is still
            # making the leg's own events readable: wait for the transactions under way too.
            await self._caught_up(context, include_open=True)
            leg = self._store.leg(handoff_id)
        if leg is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"handoff {handoff_id} not found")
        _allow("handoff_sla", leg.department)
        policy = self._policies.find(leg.department, leg.priority, leg.category)
        # A leg no policy covers (any more) counts time as its clocks did without one: 24x7.
        calendar, max_pause = (policy.calendar, policy.max_pause) if policy else (AlwaysOpen(), None)
        now = self._clock.now()
        clocks = [(c, business_time_left(c, calendar, now, max_pause)) for c in self._store.clocks_of(handoff_id)]
        answer = codec.handoff_sla_pb(leg, clocks)
        for state in answer.clocks:
            state.policy_name = policy_name(policy) if policy else ""
        return answer

    async def GetScorecard(self, request, context) -> api_pb2.Scorecard:
        try:
            department = _own(_department(request.department))
            period = _period(request, self._clock.now())
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        _allow("scorecard", department)
        await self._caught_up(context)
        try:
            card = self._store.scorecard(department, period, self._default_currency)
        except MixedCurrencies as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{error}; ask for a shorter period")
        return codec.scorecard_pb(card)

    async def ListBreaches(self, request, context) -> api_pb2.ListBreachesResponse:
        try:
            department = _own(_department(request.department))
            now = self._clock.now()
            since = request_fields.instant(request, "since") or now - DEFAULT_PERIOD
            size = request_fields.page_size(request.page_size)
            after = decode_page_token(request.page_token)
        except check.InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        _allow("breaches", department)
        await self._caught_up(context)
        page, more = self._store.breaches(department, since, after, size)
        return api_pb2.ListBreachesResponse(
            breaches=[codec.breach_pb(leg, clock) for leg, clock in page],
            next_page_token=encode_page_token(breach_key(page[-1][1])) if more else "",
        )


def policy_name(policy) -> str:
    """What a policy matches, as people name it: `billing/URGENT`, `claims/*/motor`."""
    parts = [policy.department, policy.priority] + ([policy.category] if policy.category not in ("", "*") else [])
    return "/".join(parts)


def _department(value: str) -> str:
    return check.label("department", value) if value else WHOLE_CENTRE


def _period(request, now: datetime) -> Period:
    """The requested period: by default the 30 days before `period_end`, which defaults to now."""
    end = request_fields.instant(request, "period_end") or now
    start = request_fields.instant(request, "period_start") or end - DEFAULT_PERIOD
    if end <= start:
        raise check.InvalidField(
            "period_end", f"must be after period_start ({end.isoformat()} is not after {start.isoformat()})"
        )
    return Period(start, end)


def encode_page_token(key: BreachKey) -> str:
    """An opaque token for the page after the breach `key`."""
    breached_at, handoff_id, kind, sequence = key
    return request_fields.encode_page_token(breached_at.isoformat(), handoff_id, kind, str(sequence))


def _breach_key(parts: list[str]) -> BreachKey:
    breached_at, handoff_id, kind, sequence = parts
    key = (datetime.fromisoformat(breached_at), handoff_id, kind, int(sequence))
    if key[0].tzinfo is None or not handoff_id:
        raise ValueError("not a breach's key")
    return key


def decode_page_token(token: str) -> BreachKey | None:
    """The key an `encode_page_token` token names; None for no token; InvalidField for any other text."""
    return request_fields.decode_page_token(token, _breach_key)


def serving(
    bootstrap: str, policies: PolicyBook, clock: Clock, security: KafkaSecurity = PLAINTEXT,
    history: timedelta = READ_MODEL_HISTORY,
) -> dict:
    """SideServer arguments serving SlaService: the read model (keeping `history` of closed
    legs and contacts) is caught up before the server serves (`on_ready`) and closed after
    it has stopped (`on_stopped`)."""
    store = SlaReadModel(history)
    feed = SlaFeed(bootstrap, store, security)
    # A scorecard without avoidable repeats states its cost in the configured currency.
    api = SlaApi(store, feed, policies, clock, policies.repeats.currency)
    return {
        "registrations": [(api_grpc.add_SlaServiceServicer_to_server, api, SERVICE_NAME)],
        "on_ready": feed.start,
        "on_stopped": feed.stop,
    }
