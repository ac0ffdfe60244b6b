"""Commands on legs: open one, move it through its states, read one or a filtered list.

Each mutating command sends a request_id (a fresh uuid4 unless `--request-id` is given),
so running it again with the same id is a safe retry.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from handoff.v1 import handoff_service_pb2 as handoff_pb2

from handoffctl.client import all_pages, call, handoff_service
from handoffctl.options import (
    AsJson,
    At,
    CaFile,
    Customer,
    CustomerId,
    EveryPage,
    HandoffAddress,
    HandoffId,
    NotifyAddress,
    PageToken,
    PriorityName,
    RequestId,
    StatusName,
    Token,
    Wide,
    WorkStatus,
    idempotency_key,
    one_customer,
    priority_pb,
    status_pb,
    timestamp,
)
from handoffctl.notifications import acknowledge_notification
from handoffctl.notify_client import DEFAULT_NOTIFY
from handoffctl.output import show_leg, show_legs, show_transfer

DEFAULT_HANDOFF = "127.0.0.1:50051"


def create(
    department: Annotated[str, typer.Option(help="Receiving department, e.g. billing.", show_default=False)],
    case: Annotated[str, typer.Option(help="Case id in the CRM.", show_default=False)],
    customer: Customer = "",
    customer_id: CustomerId = "",
    priority: Annotated[PriorityName, typer.Option(help="Leg priority.")] = PriorityName.normal,
    category: Annotated[str, typer.Option(help="Optional category, e.g. refund.")] = "",
    summary: Annotated[str, typer.Option(help="What the department should do.")] = "",
    at: At = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Hand a case to a department: opens a leg and starts its SLA clocks."""
    key = idempotency_key(request_id)
    request = handoff_pb2.CreateHandoffRequest(
        request_id=key, case_id=case, department=department, priority=priority_pb(priority),
        category=category, summary=summary, occurred_at=timestamp(at), **one_customer(customer, customer_id),
    )
    show_leg(call(handoff, token, ca, "CreateHandoff", request, key), as_json, "handoff created")


def _change(method: str, title: str, request_type, handoff_id: str, request_id: str,
            handoff: str, token: str, ca, as_json: bool, **fields) -> None:
    """Send one change to a leg and show the leg as it is afterwards."""
    key = idempotency_key(request_id)
    request = request_type(request_id=key, handoff_id=handoff_id, **fields)
    show_leg(call(handoff, token, ca, method, request, key), as_json, title)


def ack(
    handoff_id: Annotated[str, typer.Argument(
        metavar="ID", help="The leg's handoff id, or with --notification a notification id.", show_default=False)],
    notification: Annotated[bool, typer.Option(
        "--notification", metavar="", help="Acknowledge a notification (stops its escalation) instead of a leg.")] = False,
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Acknowledge a leg (the department has seen it; stops its ack clock and its notifications'
    escalation), or with --notification one notification."""
    if notification:
        acknowledge_notification(handoff_id, request_id, notify, token, ca, as_json)
        return
    _change("AcknowledgeHandoff", "handoff acknowledged", handoff_pb2.AcknowledgeHandoffRequest,
            handoff_id, request_id, handoff, token, ca, as_json)


def status(
    handoff_id: HandoffId,
    new_status: Annotated[WorkStatus, typer.Argument(metavar="STATUS", help="in-progress or waiting-on-customer.",
                                                     show_default=False)],
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Start work on a leg, or park it waiting on the customer (pauses its resolve clock)."""
    _change("UpdateHandoffStatus", f"handoff {new_status.value}", handoff_pb2.UpdateHandoffStatusRequest,
            handoff_id, request_id, handoff, token, ca, as_json, status=status_pb(new_status), note=note)


def priority(
    handoff_id: HandoffId,
    new_priority: Annotated[PriorityName, typer.Argument(metavar="PRIORITY", help="low, normal, high or urgent.",
                                                         show_default=False)],
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Change a leg's priority; its SLA deadlines are recomputed."""
    _change("ChangePriority", f"priority {new_priority.value}", handoff_pb2.ChangePriorityRequest,
            handoff_id, request_id, handoff, token, ca, as_json, priority=priority_pb(new_priority))


def transfer(
    handoff_id: HandoffId,
    to: Annotated[str, typer.Option("--to", help="Department that takes the case over.", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why; becomes the new leg's summary.")] = "",
    new_priority: Annotated[Optional[PriorityName], typer.Option(
        "--priority", help="Priority of the new leg. Default: the ended leg's.", show_default=False)] = None,
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Move a case to another department: ends this leg and opens a linked one there."""
    key = idempotency_key(request_id)
    request = handoff_pb2.TransferHandoffRequest(
        request_id=key, handoff_id=handoff_id, to_department=to, reason=reason,
        priority=priority_pb(new_priority) if new_priority else 0,
    )
    show_transfer(call(handoff, token, ca, "TransferHandoff", request, key), as_json)


def resolve(
    handoff_id: HandoffId,
    resolution: Annotated[str, typer.Option(help="What was done.")] = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Resolve a leg: the department has done its part; stops its resolve clock."""
    _change("ResolveHandoff", "handoff resolved", handoff_pb2.ResolveHandoffRequest,
            handoff_id, request_id, handoff, token, ca, as_json, resolution=resolution)


def reopen(
    handoff_id: HandoffId,
    reason: Annotated[str, typer.Option(help="Why the issue came back.")] = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Reopen a resolved leg: it needs acknowledging again and gets a new resolve clock."""
    _change("ReopenHandoff", "handoff reopened", handoff_pb2.ReopenHandoffRequest,
            handoff_id, request_id, handoff, token, ca, as_json, reason=reason)


def cancel(
    handoff_id: HandoffId,
    reason: Annotated[str, typer.Option(help="Why the leg is no longer needed.")] = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Cancel an unresolved leg: it was raised in error or is no longer needed."""
    _change("CancelHandoff", "handoff cancelled", handoff_pb2.CancelHandoffRequest,
            handoff_id, request_id, handoff, token, ca, as_json, reason=reason)


def get(
    handoff_id: HandoffId,
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Show one leg: status, priority, breach, times and the legs before and after it."""
    request = handoff_pb2.GetHandoffRequest(handoff_id=handoff_id)
    show_leg(call(handoff, token, ca, "GetHandoff", request), as_json, f"handoff {handoff_id}")


def list_handoffs(
    department: Annotated[str, typer.Option(
        help="Only this department's legs (a department token sees only its own).")] = "",
    status: Annotated[Optional[StatusName], typer.Option(help="Only legs in this status.", show_default=False)] = None,
    breached: Annotated[Optional[bool], typer.Option(
        "--breached/--not-breached", help="Only legs with / without a breached SLA clock.", show_default=False)] = None,
    page_size: Annotated[int, typer.Option(
        min=0, max=500, help="Legs per page; 0 for the service's default (50).")] = 0,
    page_token: PageToken = "",
    every_page: EveryPage = False,
    wide: Wide = False,
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List legs, oldest first, one row each; filter by department, status and breach."""
    request = handoff_pb2.ListHandoffsRequest(
        department=department, status=status_pb(status) if status else 0,
        breached=bool(breached), filter_breached=breached is not None,
        page_size=page_size, page_token=page_token,
    )
    with handoff_service(handoff, token, ca) as rpc:
        page = rpc("ListHandoffs", request)
        if every_page:
            page = all_pages(lambda more: rpc("ListHandoffs", more), request, page, ("handoffs",))
    show_legs(page, as_json, wide)
