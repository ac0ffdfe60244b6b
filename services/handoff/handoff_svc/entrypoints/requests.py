"""API requests -> domain commands, checking every field (INVALID_ARGUMENT names it).

Ids a command opens (a new leg, a contact) derive from the caller, the kind of request and
its request id, so a retried request names the same leg or contact while two callers who
happen to pick the same request id never share one.
"""

from __future__ import annotations

from datetime import datetime

from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common import validation as check
from common.request_fields import instant
from common.departments import Departments
from common.ids import derived_event_id
from handoff_svc.adapters.codec import CHANNEL_FROM_PB, PRIORITY_FROM_PB, STATUS_FROM_PB
from handoff_svc.domain import contacts, legs

MAX_NOTE = 1000
# Departments an INVALID_ARGUMENT names at most (the message travels in gRPC metadata).
MAX_NAMED = 20


def occurred_at(request, now: datetime, field: str = "occurred_at") -> datetime:
    """The request's event time, or `now`."""
    return check.event_time(field, instant(request, field), now)


def request_id(request) -> str:
    return check.identifier("request_id", request.request_id)


def new_id(kind: str, actor: str, request_id_: str) -> str:
    """The id of the leg or contact that request `request_id_` of `actor` opens."""
    return derived_event_id(kind, actor, request_id_)


def _priority(value: int, field: str = "priority") -> legs.Priority:
    if value not in PRIORITY_FROM_PB:
        raise check.InvalidField(field, "must be one of LOW, NORMAL, HIGH, URGENT")
    return PRIORITY_FROM_PB[value]


def known_department(field: str, name: str, departments: Departments) -> str:
    """`name` if the departments file lists it; metric labels stay bounded by that file."""
    if name not in departments:
        known = ", ".join(departments.names[:MAX_NAMED])
        more = len(departments.names) - MAX_NAMED
        raise check.InvalidField(field, f"{name!r} is not a known department; known: {known}"
                                        + (f" and {more} more" if more > 0 else ""))
    return name


def create_command(request: api_pb2.CreateHandoffRequest, actor: str, customer_ref: str | None = None) -> legs.CreateHandoff:
    """A CreateHandoff command; `customer_ref` overrides the request's (from a raw customer id)."""
    # Unset priority means NORMAL, the common case for a handoff.
    priority = _priority(request.priority or types_pb2.PRIORITY_NORMAL)
    return legs.CreateHandoff(
        handoff_id=new_id("create", actor, request_id(request)),
        case_id=check.identifier("case_id", request.case_id),
        customer_ref=customer_ref or check.pseudonym("customer_ref", request.customer_ref),
        department=check.label("department", request.department),
        priority=priority,
        category=check.label("category", request.category) if request.category else "",
        summary=check.text("summary", request.summary, 500),
        created_by=actor,
    )


def _leg(request, actor: str) -> dict:
    request_id(request)
    return {"handoff_id": check.identifier("handoff_id", request.handoff_id), "actor": actor}


def acknowledge_command(request: api_pb2.AcknowledgeHandoffRequest, actor: str) -> legs.AcknowledgeHandoff:
    return legs.AcknowledgeHandoff(**_leg(request, actor))


def update_status_command(request: api_pb2.UpdateHandoffStatusRequest, actor: str) -> legs.UpdateHandoffStatus:
    status = STATUS_FROM_PB.get(request.status)
    if status not in legs.SETTABLE_STATUS:
        raise check.InvalidField(
            "status", "must be IN_PROGRESS or WAITING_ON_CUSTOMER (resolve, reopen, transfer and cancel have RPCs of their own)"
        )
    return legs.UpdateHandoffStatus(**_leg(request, actor), status=status, note=check.text("note", request.note, MAX_NOTE))


def change_priority_command(request: api_pb2.ChangePriorityRequest, actor: str) -> legs.ChangePriority:
    return legs.ChangePriority(**_leg(request, actor), priority=_priority(request.priority))


def transfer_command(request: api_pb2.TransferHandoffRequest, actor: str) -> legs.TransferHandoff:
    fields = _leg(request, actor)
    return legs.TransferHandoff(
        **fields,
        to_department=check.label("to_department", request.to_department),
        new_handoff_id=new_id("transfer", actor, request.request_id),
        reason=check.text("reason", request.reason, MAX_NOTE),
        priority=_priority(request.priority) if request.priority else None,
    )


def resolve_command(request: api_pb2.ResolveHandoffRequest, actor: str) -> legs.ResolveHandoff:
    return legs.ResolveHandoff(**_leg(request, actor), resolution=check.text("resolution", request.resolution, MAX_NOTE))


def reopen_command(request: api_pb2.ReopenHandoffRequest, actor: str) -> legs.ReopenHandoff:
    return legs.ReopenHandoff(**_leg(request, actor), reason=check.text("reason", request.reason, MAX_NOTE))


def cancel_command(request: api_pb2.CancelHandoffRequest, actor: str) -> legs.CancelHandoff:
    return legs.CancelHandoff(**_leg(request, actor), reason=check.text("reason", request.reason, MAX_NOTE))


def record_contact_command(
    request: api_pb2.RecordContactRequest, actor: str, customer_ref: str | None = None
) -> contacts.RecordContact:
    channel = CHANNEL_FROM_PB.get(request.channel)
    if channel is None:
        raise check.InvalidField("channel", "must be one of CALL, CHAT, EMAIL, MESSAGING")
    return contacts.RecordContact(
        contact_id=new_id("record_contact", actor, request_id(request)),
        customer_ref=customer_ref or check.pseudonym("customer_ref", request.customer_ref),
        case_id=check.identifier("case_id", request.case_id) if request.case_id else "",
        channel=channel,
        reason=check.text("reason", request.reason, MAX_NOTE),
    )


# Each leg command: the request field of HandoffCommand, its converter and its domain handler.
LEG_COMMANDS = {
    "acknowledge": (acknowledge_command, legs.acknowledge),
    "update_status": (update_status_command, legs.update_status),
    "change_priority": (change_priority_command, legs.change_priority),
    "transfer": (transfer_command, legs.transfer),
    "resolve": (resolve_command, legs.resolve),
    "reopen": (reopen_command, legs.reopen),
    "cancel": (cancel_command, legs.cancel),
}
