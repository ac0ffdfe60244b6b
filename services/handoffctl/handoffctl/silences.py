"""`handoffctl silence add|list|expire`: hold back notifications for a while (admins).

A silence is label matchers plus a time window, as in Alertmanager: while it is active,
notifications whose labels match every matcher are recorded as suppressed, not delivered.
Labels: department, priority, kind, category, clock, handoff_id.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import typer
from google.protobuf import timestamp_pb2
from handoff.v1 import notification_service_pb2 as notify_pb2
from rich.text import Text

from common.yamlfile import parse_duration
from handoffctl.notify_client import DEFAULT_NOTIFY, notify_call
from handoffctl.fit import Column
from handoffctl.options import AsJson, CaFile, NotifyAddress, RequestId, Token, Wide, idempotency_key, timestamp
from handoffctl.output import cells, print_json, short_time, show_rows, when
from notify.domain.routing import InvalidMatcher, parse_matcher

HELP = """Silence notifications: while a silence is active, notifications whose labels match all its matchers are recorded as suppressed and not delivered. Adding and expiring need an admin token; departments list the silences that name them.

Examples:

  handoffctl silence add --match department=billing --match 'priority=~"HIGH|URGENT"' --for 2h --comment "bank outage, we know"

  handoffctl silence list --all

  handoffctl silence expire SILENCE_ID
"""

app = typer.Typer(help=HELP, short_help="Add, list and expire silences (adding and expiring need an admin).",
                  no_args_is_help=True, add_completion=False)


def _matcher_pb(text: str) -> notify_pb2.Matcher:
    try:
        matcher = parse_matcher(text)
    except InvalidMatcher as error:
        raise typer.BadParameter(str(error), param_hint="--match") from None
    return notify_pb2.Matcher(label=matcher.label, value=matcher.value,
                              is_regex=matcher.is_regex, is_negative=matcher.is_negative)


def _matchers_text(silence) -> str:
    ops = {(False, False): "=", (False, True): "!=", (True, False): "=~", (True, True): "!~"}
    return ", ".join(f'{m.label}{ops[(m.is_regex, m.is_negative)]}"{m.value}"' for m in silence.matchers)


def _status(silence, now: datetime) -> Text:
    if silence.expired:
        return Text("expired", style="dim")
    starts = silence.starts_at.ToDatetime(tzinfo=timezone.utc)
    return Text("pending", style="yellow") if starts > now else Text("active", style="green")


# Silences keep their id whole (`silence expire` takes it); who set it, the start, the
# comment, the end and the matchers go first in a narrow terminal (handoffctl.fit).
SILENCE_COLUMNS = (Column("id"), Column("status", 1), Column("matchers", 2), Column("starts", 5, short=short_time),
                   Column("ends", 3, short=short_time), Column("by", 6), Column("comment", 4, flexible=True))


def _show(silences, as_json: bool, title: str, response, wide: bool = False) -> None:
    if as_json:
        print_json(response)
        return
    now = datetime.now(timezone.utc)
    show_rows(title, SILENCE_COLUMNS,
              [cells((silence.silence_id, _status(silence, now), _matchers_text(silence), when(silence, "starts_at"),
                      when(silence, "ends_at"), silence.created_by, silence.comment)) for silence in silences],
              wide, hint="`silence list --wide` shows every column")


@app.command("add")
def add(
    match: Annotated[list[str], typer.Option(
        "--match", help='A label matcher: label=value, label!=value, label=~"regex" or label!~"regex"; '
        "repeat for several (all must match).", show_default=False)],
    comment: Annotated[str, typer.Option(help="Why: shown to everyone who lists silences.", show_default=False)],
    for_: Annotated[str, typer.Option("--for", help="How long from --starts (or now): 30m, 2h, 1d, 1h30m.")] = "",
    until: Annotated[str, typer.Option(help="When it ends: ISO 8601, e.g. 2025-03-01T18:00:00Z (instead of --for).")] = "",
    starts: Annotated[str, typer.Option(help="When it starts: ISO 8601. Default: now.")] = "",
    request_id: RequestId = "",
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Add a silence: matching notifications are suppressed from --starts (now) for --for or --until."""
    if bool(for_) == bool(until):
        raise typer.BadParameter("give exactly one of them", param_hint="'--for' / '--until'")
    starts_at = timestamp(starts, "--starts")
    if until:
        ends_at = timestamp(until, "--until")
    else:
        try:
            span = parse_duration(for_)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--for") from None
        begin = starts_at.ToDatetime(tzinfo=timezone.utc) if starts_at else datetime.now(timezone.utc)
        ends_at = timestamp_pb2.Timestamp()
        ends_at.FromDatetime(begin + span)
    request_id = idempotency_key(request_id)
    request = notify_pb2.CreateSilenceRequest(
        request_id=request_id, matchers=[_matcher_pb(text) for text in match], starts_at=starts_at,
        ends_at=ends_at, comment=comment,
    )
    silence = notify_call(notify, token, ca, "CreateSilence", request, request_id)
    _show([silence], as_json, "silence added", silence)


@app.command("list")
def list_silences(
    every: Annotated[bool, typer.Option("--all", metavar="", help="Include expired silences.")] = False,
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """List pending and active silences (expired ones too with --all), soonest ending first."""
    response = notify_call(notify, token, ca, "ListSilences", notify_pb2.ListSilencesRequest(include_expired=every))
    count = len(response.silences)
    _show(response.silences, as_json, f"{count} silence{'' if count == 1 else 's'}", response, wide)


@app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(metavar="SILENCE_ID", help="The silence's id (from `silence list`).",
                                              show_default=False)],
    notify: NotifyAddress = DEFAULT_NOTIFY,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """End a silence now (a pending one never starts); expiring an expired silence changes nothing."""
    silence = notify_call(notify, token, ca, "ExpireSilence", notify_pb2.ExpireSilenceRequest(silence_id=silence_id))
    _show([silence], as_json, "silence expired", silence)


