"""API requests -> domain commands, checking every field (INVALID_ARGUMENT names it)."""

from __future__ import annotations

from datetime import datetime

from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common import validation as check
from common.codec import from_timestamp
from common.ids import derived_event_id
from handoff_svc.adapters.codec import PRIORITY_FROM_PB
from handoff_svc.domain.legs import AcknowledgeHandoff, CreateHandoff


def occurred_at(request, now: datetime) -> datetime:
    """The request's event time, or `now`."""
    stamp = from_timestamp(request.occurred_at) if request.HasField("occurred_at") else None
    return check.event_time("occurred_at", stamp, now)


def create_command(request: api_pb2.CreateHandoffRequest, actor: str) -> CreateHandoff:
    """A CreateHandoff command; the handoff id derives from the request id, so retries match."""
    request_id = check.identifier("request_id", request.request_id)
    # Unset priority means NORMAL, the common case for a handoff.
    priority = request.priority or types_pb2.PRIORITY_NORMAL
    if priority not in PRIORITY_FROM_PB:
        raise check.InvalidField("priority", "must be one of LOW, NORMAL, HIGH, URGENT")
    return CreateHandoff(
        handoff_id=derived_event_id("handoff", request_id),
        case_id=check.identifier("case_id", request.case_id),
        customer_ref=check.identifier("customer_ref", request.customer_ref),
        department=check.label("department", request.department),
        priority=PRIORITY_FROM_PB[priority],
        category=check.label("category", request.category) if request.category else "",
        summary=check.text("summary", request.summary, 500),
        created_by=actor,
    )


def acknowledge_command(request: api_pb2.AcknowledgeHandoffRequest, actor: str) -> AcknowledgeHandoff:
    check.identifier("request_id", request.request_id)
    return AcknowledgeHandoff(
        handoff_id=check.identifier("handoff_id", request.handoff_id), acknowledged_by=actor
    )
