"""Notifications: follow a department's as they are sent (`watch`), list them
(`notifications`), acknowledge one (`ack --notification`, which stops its escalation).

They ask the notify service (--notify, or NOTIFY_GRPC).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import grpc
import typer
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import notifications_pb2
from rich.markup import escape
from rich.text import Text

from common.grpcclient import channel
from handoffctl.client import all_pages, errors, fail
from handoffctl.fit import Column
from handoffctl.notify_client import DEFAULT_NOTIFY, notify_call
from handoffctl.options import AsJson, CaFile, EveryPage, NotifyAddress, PageToken, Token, Wide, idempotency_key
from handoffctl.output import (
    as_dict, cells, console, print_json, priority_text, short_time, show_next_page, show_rows, when,
)

# Notifications keep their id whole (`ack --notification` takes it); the title, priority,
# receiver, time, department and state go first in a narrow terminal (handoffctl.fit).
NOTIFICATION_COLUMNS = (Column("id"), Column("occurred", 4, short=short_time), Column("kind", 1),
                        Column("department", 3), Column("priority", 6), Column("receiver", 5), Column("title", 7, flexible=True),
                        Column("state", 2))

# A stream the service drops (it restarts, or is unreachable for a while, or ends a stream that
# fell too far behind with ABORTED) is resumed from the last cursor. CANCELLED here comes from
# the server: our own cancel returns first.
_RECONNECT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}
_MAX_BACKOFF = 10.0


def _resume_hint(department: str, cursor: str) -> None:
    if cursor:
        errors.print(f"resume with: handoffctl watch {department} --cursor {cursor}", markup=False, highlight=False)


def watch(
    department: Annotated[str, typer.Argument(metavar="DEPARTMENT", help="Department whose notifications to print.",
                                              show_default=False)],
    cursor: Annotated[str, typer.Option(
        help="Resume after this cursor: each notification prints one, and Ctrl-C prints the last. "
        "Without it, from now on.")] = "",
    count: Annotated[int, typer.Option(help="Stop after this many notifications; 0 runs until Ctrl-C.")] = 0,
    reconnect: Annotated[bool, typer.Option(
        "--reconnect/--no-reconnect", metavar="", help="When the service drops the stream, reconnect from the last cursor.")] = True,
    give_up_after: Annotated[float, typer.Option(
        min=0, help="Stop (exit 1) when the service has been unreachable this many seconds; 0 never stops.")] = 120,
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Print a department's notifications as they arrive (one JSON line each with --json); resumable with --cursor."""
    received, backoff = 0, 0.5
    lost_since: float | None = None
    while True:
        with channel(notify, token, ca) as connection:
            stream = notify_grpc.NotificationServiceStub(connection).Subscribe(
                notify_pb2.SubscribeRequest(department=department, cursor=cursor)
            )
            try:
                for response in stream:
                    _print_notification(response, as_json)
                    cursor, backoff, lost_since = response.cursor or cursor, 0.5, None
                    received += 1
                    if count and received >= count:
                        stream.cancel()
                        return
                return  # the service ended the stream
            except grpc.RpcError as error:
                # The stream is the error, and its traceback holds the frame that raised it:
                # a cycle, which the cyclic collector would finalize at any moment, also in
                # the middle of the next call while grpc holds the lock the finalizer needs
                # (a hang). Without the traceback the stream goes when its name is rebound.
                error.__traceback__ = None
                if not (reconnect and error.code() in _RECONNECT):
                    _resume_hint(department, cursor)
                    fail(error, token)
                lost_since = lost_since if lost_since is not None else time.monotonic()
                if give_up_after and time.monotonic() - lost_since >= give_up_after:
                    errors.print(f"no notify service reachable at {notify} for {give_up_after:.0f}s; giving up",
                                 highlight=False, markup=False)
                    _resume_hint(department, cursor)
                    raise typer.Exit(1)
                errors.print(f"stream lost ({error.code().name}); reconnecting in {backoff:.1f}s", highlight=False)
            except KeyboardInterrupt:
                stream.cancel()
                _resume_hint(department, cursor)
                return
        try:
            time.sleep(backoff)
        except KeyboardInterrupt:
            _resume_hint(department, cursor)
            return
        backoff = min(backoff * 2, _MAX_BACKOFF)


def _print_notification(response, as_json: bool) -> None:
    note = response.notification
    if as_json:
        print(json.dumps({"cursor": response.cursor, **as_dict(note)}), flush=True)
        return
    console.print(f"[bold red]{escape(note.title)}[/bold red]  [dim]cursor {response.cursor}[/dim]")
    console.print(f"  {escape(note.body)}  [dim]id {note.notification_id}[/dim]")
    sys.stdout.flush()


def _kind_text(value: int) -> str:
    kinds = notifications_pb2.NotificationKind
    name = kinds.Name(value) if value in kinds.values() else str(value)
    return name.removeprefix("NOTIFICATION_KIND_").lower().replace("_", "-")


def _state_text(state) -> Text:
    if state.acknowledged:
        return Text(f"acknowledged by {state.acknowledged_by}", style="green")
    if state.suppressed_reason:
        return Text(f"suppressed ({state.suppressed_reason})", style="dim")
    parts = [f"delivered: {', '.join(state.delivered_channels)}"] if state.delivered_channels else []
    parts += [f"failed: {', '.join(sorted(state.failed_channels))}"] if state.failed_channels else []
    parts += [f"escalated to level {state.escalation_level}"] if state.escalation_level else []
    return Text("; ".join(parts) or "requested", style="red" if state.failed_channels else "")


def notifications(
    department: Annotated[str, typer.Option(
        help="This department's notifications; a department token lists its own by default, "
        "admins and services every department's.")] = "",
    page_size: Annotated[int, typer.Option(min=0, max=500, help="Notifications per page; 0 for the default (50).")] = 0,
    page_token: PageToken = "",
    every_page: EveryPage = False,
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """List notifications, newest first, with what became of each (delivered, suppressed, acknowledged)."""
    request = notify_pb2.ListNotificationsRequest(department=department, page_size=page_size, page_token=page_token)
    page = notify_call(notify, token, ca, "ListNotifications", request)
    if every_page:
        page = all_pages(lambda more: notify_call(notify, token, ca, "ListNotifications", more), request, page,
                         ("notifications", "states"))
    if as_json:
        print_json(page)
        return
    show_notifications(page, wide)
    show_next_page(page)


def show_notifications(page: notify_pb2.ListNotificationsResponse, wide: bool = False) -> None:
    """A page of notifications with what became of each, one row each."""
    show_rows(f"{len(page.notifications)} notifications", NOTIFICATION_COLUMNS,
              [cells((note.notification_id, when(note, "occurred_at"), _kind_text(note.kind), note.department,
                      priority_text(note.priority), note.receiver, note.title, _state_text(state)))
               for note, state in zip(page.notifications, page.states)], wide)


def acknowledge_notification(notification_id: str, request_id: str, notify: str, token: str, ca, as_json: bool) -> None:
    """Acknowledge a notification (`ack --notification`): somebody is on it, so its escalation stops."""
    request_id = idempotency_key(request_id)
    answer = notify_call(notify, token, ca, "Acknowledge",
                         notify_pb2.AcknowledgeRequest(request_id=request_id, notification_id=notification_id),
                         request_id)
    if as_json:
        print_json(answer)
    elif answer.already_acknowledged:
        console.print(f"notification {answer.notification_id} was already acknowledged", markup=False)
    else:
        console.print(f"notification {answer.notification_id} acknowledged", markup=False)
