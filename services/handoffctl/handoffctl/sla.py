"""Commands on SLAs: a leg's clocks, a department's scorecard, the breaches of a period.

They ask the sla service (--sla, or SLA_GRPC). Tables show durations as business time
(`2h 05m`), shares as percentages and costs in major units of their currency; `--json`
prints the response as the service sent it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from google.protobuf.message import Message
from handoff.v1 import sla_service_pb2 as sla_pb2
from handoff.v1 import sla_service_pb2_grpc as sla_grpc
from handoff.v1 import types_pb2
from rich.text import Text

from handoffctl.client import all_pages, stub_call
from handoffctl.fit import Column
from handoffctl.options import AsJson, CaFile, EveryPage, HandoffId, PageToken, SlaAddress, Token, Wide, timestamp
from handoffctl.output import (
    console, enum_text, fields_table, print_json, priority_text, short_time, show_next_page, show_rows, when,
)

DEFAULT_SLA = "127.0.0.1:50052"
# Currencies whose minor unit is not a hundredth (ISO 4217); all others have two decimals.
_DECIMALS = {"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
             "ISK": 0, "JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "XAF": 0, "XOF": 0}


def _call(address: str, token: str, ca, method: str, request: Message) -> Message:
    return stub_call(sla_grpc.SlaServiceStub, address, token, ca, method, request)


def duration_text(span: timedelta) -> str:
    """`3d 4h`, `2h 05m`, `4m 10s`, `3s`, `0.2s`: the two largest units (tenths under 10 s)."""
    if span < timedelta(seconds=10) and span.microseconds:
        return f"{span.total_seconds():.1f}s"
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def money_text(minor: int, currency: str) -> str:
    decimals = _DECIMALS.get(currency, 2)
    amount = f"{minor / 10 ** decimals:,.{decimals}f}"
    return f"{amount} {currency}".strip()


# In a narrow terminal a leg's clocks keep their name; the policy, start, target, time left,
# deadline and state go in that order (handoffctl.fit).
CLOCK_COLUMNS = (Column("clock"), Column("state", 1), Column("started", 5, short=short_time),
                 Column("deadline", 2, short=short_time), Column("target", 4), Column("left", 3), Column("policy", 6))
# Breaches keep the leg's id whole; the priority, deadline, department, time and case go first.
BREACH_COLUMNS = (Column("breached", 4, short=short_time), Column("id"), Column("case", 1), Column("department", 3),
                  Column("priority", 6), Column("clock", 2), Column("deadline", 5, short=short_time))


def _clock_text(value: int) -> str:
    return enum_text(types_pb2.ClockKind, "CLOCK_KIND_", value)


def _state(clock: sla_pb2.ClockState) -> Text:
    if clock.met:
        return Text("met late", style="red") if clock.late else Text("met", style="green")
    if clock.breached:
        return Text("breached", style="red")
    return Text("paused") if clock.paused else Text("running")


def sla(
    handoff_id: HandoffId,
    sla_address: SlaAddress = DEFAULT_SLA,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Show a leg's SLA clocks: state, deadline, target and the business time left."""
    answer = _call(sla_address, token, ca, "GetHandoffSla", sla_pb2.GetHandoffSlaRequest(handoff_id=handoff_id))
    if as_json:
        print_json(answer)
        return
    show_clocks(answer, wide)


def show_clocks(answer: sla_pb2.HandoffSla, wide: bool = False) -> None:
    """A leg's clocks, one row each."""
    title = f"SLA of {answer.handoff_id} ({answer.department}, {priority_text(answer.priority)})"
    rows = [[Text(_clock_text(clock.clock) + (f" #{clock.sequence}" if clock.sequence > 1 else "")), _state(clock),
             Text(when(clock, "started_at")), Text(when(clock, "deadline")),
             Text(duration_text(clock.target.ToTimedelta())),
             Text(duration_text(clock.business_time_left.ToTimedelta())),
             Text(clock.policy_name or clock.policy_version)] for clock in answer.clocks]
    show_rows(title, CLOCK_COLUMNS, rows, wide)
    if not answer.clocks:
        console.print("no SLA clocks: no policy covers this leg, or its clocks have not started yet")


def _percent(share: float, n: int) -> str:
    """A share with the number it rests on; unknown when that is none."""
    return f"{share * 100:.1f} % (n={n})" if n else "unknown (n=0)"


def _percentiles(p50, p90, n: int) -> str:
    if not n:
        return "none stopped (n=0)"
    return f"{duration_text(p50.ToTimedelta())} / {duration_text(p90.ToTimedelta())} (n={n})"


def scorecard(
    department: Annotated[str, typer.Option(
        help="Department to score; a department token scores its own by default; omit for the whole centre "
        "(admin and service tokens).")] = "",
    start: Annotated[str, typer.Option(
        "--from", help="Start of the period, ISO 8601 (UTC if no offset). Default: 30 days before --to.")] = "",
    end: Annotated[str, typer.Option(
        "--to", help="End of the period (exclusive), ISO 8601. Default: now.")] = "",
    sla_address: SlaAddress = DEFAULT_SLA,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a department's SLA scorecard for a period: legs, compliance, breaches, TTA/TTR, repeat contacts, cost, FCR."""
    request = sla_pb2.GetScorecardRequest(
        department=department, period_start=timestamp(start, "--from"), period_end=timestamp(end, "--to")
    )
    card = _call(sla_address, token, ca, "GetScorecard", request)
    if as_json:
        print_json(card)
        return
    repeats = [(f"repeats {enum_text(types_pb2.RepeatCause, 'REPEAT_CAUSE_', r.cause)}", str(r.count))
               for r in card.repeat_contacts]
    rows = [
        ("department", card.department or "whole centre"),
        ("period", f"{when(card, 'period_start')} to {when(card, 'period_end')}"),
        ("legs", f"{card.legs} ({card.open_legs} open)"),
        ("ack compliance", _percent(card.ack_compliance, card.ack_outcomes) + f", {card.ack_running} running"),
        ("resolve compliance", _percent(card.resolve_compliance, card.resolve_outcomes)
         + f", {card.resolve_running} running"),
        ("breaches", str(card.breaches)),
        ("business time to ack p50 / p90", _percentiles(card.tta_p50, card.tta_p90, card.tta_n)),
        ("business time to resolve p50 / p90", _percentiles(card.ttr_p50, card.ttr_p90, card.ttr_n)),
        *repeats,
        ("avoidable repeats", str(card.avoidable_repeats)),
        ("failure-demand cost", money_text(card.failure_demand_cost_minor, card.currency)),
        ("first contact resolution", _percent(card.first_contact_resolution, card.fcr_n)),
        ("reopens", str(card.reopens)),
    ]
    console.print(fields_table(f"scorecard of {card.department or 'the whole centre'}", rows))


def breaches(
    department: Annotated[str, typer.Option(
        help="Only this department's breaches (a department token lists its own by default).")] = "",
    since: Annotated[str, typer.Option(
        help="Only breaches at or after this instant, ISO 8601. Default: 30 days ago.")] = "",
    page_size: Annotated[int, typer.Option(
        min=0, max=500, help="Breaches per page; 0 for the service's default (50).")] = 0,
    page_token: PageToken = "",
    every_page: EveryPage = False,
    sla_address: SlaAddress = DEFAULT_SLA,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """List SLA breaches, newest first: which leg, which clock, its deadline and when it breached."""
    request = sla_pb2.ListBreachesRequest(
        department=department, since=timestamp(since, "--since"), page_size=page_size, page_token=page_token
    )
    page = _call(sla_address, token, ca, "ListBreaches", request)
    if every_page:
        page = all_pages(lambda more: _call(sla_address, token, ca, "ListBreaches", more), request, page,
                         ("breaches",))
    if as_json:
        print_json(page)
        return
    show_breaches(page, wide)
    show_next_page(page)


def show_breaches(page: sla_pb2.ListBreachesResponse, wide: bool = False) -> None:
    """A page of breaches, one row each."""
    show_rows(f"{len(page.breaches)} breaches", BREACH_COLUMNS,
              [[Text(value) for value in (when(breach, "breached_at"), breach.handoff_id, breach.case_id,
                                          breach.department, priority_text(breach.priority),
                                          _clock_text(breach.clock), when(breach, "deadline"))]
               for breach in page.breaches], wide)
