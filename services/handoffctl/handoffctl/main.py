"""handoffctl: create and acknowledge handoffs, watch a department's notifications."""

from __future__ import annotations

import json
import uuid
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from handoff.v1 import handoff_service_pb2 as handoff_pb2
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import types_pb2
from rich.console import Console
from rich.table import Table

from common.grpcclient import channel

app = typer.Typer(
    help="Work with handoffs: create and acknowledge legs, watch notifications.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


class PriorityName(str, Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


HandoffAddress = Annotated[
    str, typer.Option("--handoff", envvar="HANDOFF_GRPC", help="Address of the handoff service.")
]
NotifyAddress = Annotated[
    str, typer.Option("--notify", envvar="NOTIFY_GRPC", help="Address of the notify service.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Token = Annotated[str, typer.Option("--token", envvar="HANDOFF_TOKEN", help="Bearer token of the caller.")]
CaFile = Annotated[
    Optional[Path], typer.Option("--ca", envvar="HANDOFF_CA", help="CA certificate: connect with TLS.")
]


def _fail(error: grpc.RpcError) -> None:
    errors.print(f"[red]error[/red] {error.code().name}: {error.details()}")
    raise typer.Exit(1)


def _show(message, as_json: bool, title: str) -> None:
    document = MessageToDict(message, preserving_proto_field_name=True)
    if as_json:
        print(json.dumps(document, indent=2))
        return
    table = Table(title=title, show_header=False)
    for key, value in document.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def create(
    department: Annotated[str, typer.Option(help="Receiving department, e.g. billing.")],
    case: Annotated[str, typer.Option(help="Case id in the CRM.")],
    customer: Annotated[str, typer.Option(help="Pseudonymous customer_ref.")],
    priority: Annotated[PriorityName, typer.Option(help="Leg priority.")] = PriorityName.normal,
    category: Annotated[str, typer.Option(help="Optional category, e.g. refund.")] = "",
    summary: Annotated[str, typer.Option(help="What the department should do.")] = "",
    request_id: Annotated[str, typer.Option(help="Idempotency key; a retry with the same id creates nothing new.")] = "",
    handoff: HandoffAddress = "127.0.0.1:50051",
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Hand a case to a department: opens a leg and starts its SLA clocks."""
    request = handoff_pb2.CreateHandoffRequest(
        request_id=request_id or str(uuid.uuid4()),
        case_id=case,
        customer_ref=customer,
        department=department,
        priority=types_pb2.Priority.Value(f"PRIORITY_{priority.value.upper()}"),
        category=category,
        summary=summary,
    )
    with channel(handoff, token, ca) as connection:
        try:
            leg = handoff_grpc.HandoffServiceStub(connection).CreateHandoff(request, timeout=10)
        except grpc.RpcError as error:
            _fail(error)
    _show(leg, as_json, "handoff created")


@app.command()
def ack(
    handoff_id: Annotated[str, typer.Argument(help="The leg to acknowledge.")],
    request_id: Annotated[str, typer.Option(help="Idempotency key.")] = "",
    handoff: HandoffAddress = "127.0.0.1:50051",
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Acknowledge a leg: the department has seen it; stops its ack clock."""
    request = handoff_pb2.AcknowledgeHandoffRequest(request_id=request_id or str(uuid.uuid4()), handoff_id=handoff_id)
    with channel(handoff, token, ca) as connection:
        try:
            leg = handoff_grpc.HandoffServiceStub(connection).AcknowledgeHandoff(request, timeout=10)
        except grpc.RpcError as error:
            _fail(error)
    _show(leg, as_json, "handoff acknowledged")


@app.command()
def watch(
    department: Annotated[str, typer.Argument(help="Department whose notifications to print.")],
    cursor: Annotated[str, typer.Option(help="Resume after this cursor (printed with each notification).")] = "",
    count: Annotated[int, typer.Option(help="Stop after this many notifications; 0 runs until Ctrl-C.")] = 0,
    notify: NotifyAddress = "127.0.0.1:50053",
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Print a department's notifications as they arrive."""
    received = 0
    with channel(notify, token, ca) as connection:
        stream = notify_grpc.NotificationServiceStub(connection).Subscribe(
            notify_pb2.SubscribeRequest(department=department, cursor=cursor)
        )
        try:
            for response in stream:
                note = response.notification
                if as_json:
                    document = MessageToDict(note, preserving_proto_field_name=True)
                    print(json.dumps({"cursor": response.cursor, **document}), flush=True)
                else:
                    console.print(f"[bold red]{note.title}[/bold red]  [dim]cursor {response.cursor}[/dim]")
                    console.print(f"  {note.body}")
                received += 1
                if count and received >= count:
                    stream.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                _fail(error)
        except KeyboardInterrupt:
            stream.cancel()


if __name__ == "__main__":
    app()
