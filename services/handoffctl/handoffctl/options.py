"""The options every command shares, and the choices a user types turned into proto enums.

Choices are written the way people say them (`in-progress`, `urgent`); the proto names
(`LEG_STATUS_IN_PROGRESS`, `PRIORITY_URGENT`) appear only in JSON output.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from google.protobuf import timestamp_pb2
from handoff.v1 import types_pb2


class PriorityName(str, Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class WorkStatus(str, Enum):
    """The statuses `status` may set; the others have commands of their own."""

    in_progress = "in-progress"
    waiting_on_customer = "waiting-on-customer"


class StatusName(str, Enum):
    open = "open"
    acknowledged = "acknowledged"
    in_progress = "in-progress"
    waiting_on_customer = "waiting-on-customer"
    resolved = "resolved"
    reopened = "reopened"
    transferred = "transferred"
    cancelled = "cancelled"


class ChannelName(str, Enum):
    call = "call"
    chat = "chat"
    email = "email"
    messaging = "messaging"


HandoffAddress = Annotated[
    str, typer.Option("--handoff", envvar="HANDOFF_GRPC", help="Address of the handoff service.")
]
NotifyAddress = Annotated[
    str, typer.Option("--notify", envvar="NOTIFY_GRPC", help="Address of the notify service.")
]
SlaAddress = Annotated[str, typer.Option("--sla", envvar="SLA_GRPC", help="Address of the sla service.")]
Token = Annotated[str, typer.Option("--token", envvar="HANDOFF_TOKEN", help="Bearer token of the caller.")]
CaFile = Annotated[
    Optional[Path], typer.Option("--ca", envvar="HANDOFF_CA", help="CA certificate: connect with TLS.")
]
AsJson = Annotated[bool, typer.Option("--json", metavar="", help="Print plain JSON instead of a table (docs/cli-json.md).")]
Wide = Annotated[bool, typer.Option("--wide", metavar="", help=(
    "Every column in full, however wide the terminal; without it a narrow terminal shows the "
    "most useful columns and says which it left out."))]
RequestId = Annotated[
    str,
    typer.Option(help="Idempotency key (a fresh uuid4 when omitted); a retry with the same id changes nothing twice."),
]
HandoffId = Annotated[str, typer.Argument(metavar="HANDOFF_ID", help="The leg's handoff_id.", show_default=False)]
At = Annotated[
    str,
    typer.Option("--at", help="When it happened: ISO 8601, e.g. 2025-03-01T09:30:00Z (UTC if no offset). Default: now."),
]
Customer = Annotated[str, typer.Option("--customer", help="Pseudonymous customer_ref (or give --customer-id).")]
CustomerId = Annotated[str, typer.Option(help="Raw customer id; the service pseudonymises it and never stores it.")]

PageToken = Annotated[str, typer.Option(help="Continue where a previous page ended.")]
EveryPage = Annotated[bool, typer.Option("--all", metavar="", help="Follow next_page_token to the last page.")]


def idempotency_key(given: str) -> str:
    """The caller's request id, or a fresh one."""
    return given or str(uuid.uuid4())


def _enum_value(enum_type, prefix: str, choice: Enum) -> int:
    return enum_type.Value(prefix + choice.value.upper().replace("-", "_"))


def priority_pb(choice: PriorityName) -> int:
    return _enum_value(types_pb2.Priority, "PRIORITY_", choice)


def status_pb(choice: StatusName | WorkStatus) -> int:
    return _enum_value(types_pb2.LegStatus, "LEG_STATUS_", choice)


def channel_pb(choice: ChannelName) -> int:
    return _enum_value(types_pb2.ContactChannel, "CONTACT_CHANNEL_", choice)


def timestamp(text: str, option: str = "--at") -> timestamp_pb2.Timestamp | None:
    """`text` as a Timestamp (naive times are UTC, as the services read them); None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        example = "e.g. 2025-03-01T09:30:00Z"
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time, {example}", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp


def one_customer(customer_ref: str, customer_id: str) -> dict[str, str]:
    """The request fields naming the customer: exactly one of the two options."""
    if bool(customer_ref) == bool(customer_id):
        raise typer.BadParameter("give exactly one of them", param_hint="'--customer' / '--customer-id'")
    return {"customer_ref": customer_ref} if customer_ref else {"customer_id": customer_id}
