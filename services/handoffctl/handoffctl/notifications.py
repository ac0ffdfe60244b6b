"""Follow a department's notifications (breaches, warnings) as the notify service sends them."""

from __future__ import annotations

import json
from typing import Annotated

import grpc
import typer
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from rich.markup import escape

from common.grpcclient import channel
from handoffctl.client import fail
from handoffctl.options import AsJson, CaFile, NotifyAddress, Token
from handoffctl.output import as_dict, console


def watch(
    department: Annotated[str, typer.Argument(help="Department whose notifications to print.", show_default=False)],
    cursor: Annotated[str, typer.Option(help="Resume after this cursor (printed with each notification).")] = "",
    count: Annotated[int, typer.Option(help="Stop after this many notifications; 0 runs until Ctrl-C.")] = 0,
    notify: NotifyAddress = "127.0.0.1:50053",
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Print a department's notifications as they arrive (one JSON line each with --json)."""
    received = 0
    with channel(notify, token, ca) as connection:
        stream = notify_grpc.NotificationServiceStub(connection).Subscribe(
            notify_pb2.SubscribeRequest(department=department, cursor=cursor)
        )
        try:
            for response in stream:
                note = response.notification
                if as_json:
                    print(json.dumps({"cursor": response.cursor, **as_dict(note)}), flush=True)
                else:
                    console.print(f"[bold red]{escape(note.title)}[/bold red]  [dim]cursor {response.cursor}[/dim]")
                    console.print(f"  {escape(note.body)}")
                received += 1
                if count and received >= count:
                    stream.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                fail(error, token)
        except KeyboardInterrupt:
            stream.cancel()
