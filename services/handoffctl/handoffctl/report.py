"""`handoffctl report`: the charge-back report of a period, as a static HTML page (or PDF).

Every figure comes from SlaService.GetScorecard: one scorecard per department over the
whole period, and one per department and day for the trends, so the report says exactly
what `handoffctl scorecard` says. Departments are named by their display name and charged
to their cost centre (config/departments.yaml). Plots are matplotlib PNGs embedded in the
page; the figures are also embedded as JSON (`<script id="figures">`) for machines.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from handoff.v1 import sla_service_pb2 as sla_pb2
from handoff.v1 import types_pb2

from common.codec import to_timestamp
from common.departments import DEFAULT_FILE, load_departments
from handoffctl.options import CaFile, SlaAddress, Token
from handoffctl.sla import DEFAULT_SLA, _call, money_text

MAX_BUCKETS = 31
CAUSES = [types_pb2.RepeatCause.Name(v).removeprefix("REPEAT_CAUSE_").lower()
          for v in types_pb2.RepeatCause.values() if v != types_pb2.REPEAT_CAUSE_UNSPECIFIED]


def figures_of(card: sla_pb2.Scorecard) -> dict:
    """A scorecard's figures, plain: shares as fractions with their n, durations in seconds."""
    repeats = {types_pb2.RepeatCause.Name(r.cause).removeprefix("REPEAT_CAUSE_").lower(): r.count
               for r in card.repeat_contacts}
    return {
        "legs": card.legs, "open_legs": card.open_legs, "breaches": card.breaches,
        "ack_compliance": card.ack_compliance, "ack_outcomes": card.ack_outcomes,
        "resolve_compliance": card.resolve_compliance, "resolve_outcomes": card.resolve_outcomes,
        "business_tta_p50_seconds": card.tta_p50.ToTimedelta().total_seconds(),
        "business_ttr_p50_seconds": card.ttr_p50.ToTimedelta().total_seconds(),
        "business_ttr_p90_seconds": card.ttr_p90.ToTimedelta().total_seconds(),
        "tta_n": card.tta_n, "ttr_n": card.ttr_n,
        "repeat_contacts": {cause: repeats.get(cause, 0) for cause in CAUSES},
        "avoidable_repeats": card.avoidable_repeats,
        "failure_demand_cost_minor": card.failure_demand_cost_minor, "currency": card.currency,
        "first_contact_resolution": card.first_contact_resolution, "fcr_n": card.fcr_n,
        "costliest_legs": [{"case_id": leg.case_id, "handoff_id": leg.handoff_id, "department": leg.department,
                            "avoidable_repeats": leg.avoidable_repeats, "cost_minor": leg.cost_minor}
                           for leg in card.costliest_legs],
    }


def buckets(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Days of the period (longer spans when it has more than MAX_BUCKETS days)."""
    step = max(timedelta(days=1), (end - start) / MAX_BUCKETS)
    edges = []
    at = start
    while at < end:
        edges.append((at, min(at + step, end)))
        at += step
    return edges


def collect(scorecard, departments: list[str], start: datetime, end: datetime) -> dict:
    """Figures per department over the period and per bucket; `scorecard(department, start, end)` asks the service."""
    periods = buckets(start, end)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "departments": {d: figures_of(scorecard(d, start, end)) for d in departments},
        "trend": {"starts": [a.isoformat() for a, _ in periods],
                  "departments": {d: [figures_of(scorecard(d, a, b)) for a, b in periods] for d in departments}},
    }


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plots(data: dict, names: dict[str, str]) -> list:
    """matplotlib figures: cost by department, breaches and avoidable repeats over time, time to resolve."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    departments = list(data["departments"])
    labels = [names.get(d, d) for d in departments]
    figures = []
    cost, axes = pyplot.subplots(figsize=(7, 3.2))
    currency = next(iter(data["departments"].values()), {}).get("currency", "")
    axes.bar(labels, [data["departments"][d]["failure_demand_cost_minor"] / 100 for d in departments], color="#c0392b")
    axes.set_title("Failure-demand cost by department")
    axes.set_ylabel(currency)
    figures.append(cost)
    trend, (top, middle, bottom) = pyplot.subplots(3, 1, figsize=(7, 7), sharex=True)
    days = [datetime.fromisoformat(s) for s in data["trend"]["starts"]]
    for department, label in zip(departments, labels):
        series = data["trend"]["departments"][department]
        top.plot(days, [f["breaches"] for f in series], marker="o", label=label)
        middle.plot(days, [f["avoidable_repeats"] for f in series], marker="o", label=label)
        bottom.plot(days, [f["failure_demand_cost_minor"] / 100 for f in series], marker="o", label=label)
    top.set_title("Breaches per day")
    middle.set_title("Avoidable repeat contacts per day")
    bottom.set_title(f"Failure-demand cost per day ({currency})")
    top.legend(fontsize="small")
    trend.autofmt_xdate()
    figures.append(trend)
    ttr, axes = pyplot.subplots(figsize=(7, 3.2))
    hours = [(data["departments"][d]["business_ttr_p50_seconds"] / 3600, data["departments"][d]["business_ttr_p90_seconds"]
              / 3600) for d in departments]
    positions = range(len(departments))
    axes.bar([p - 0.2 for p in positions], [h[0] for h in hours], width=0.4, label="p50")
    axes.bar([p + 0.2 for p in positions], [h[1] for h in hours], width=0.4, label="p90")
    axes.set_xticks(list(positions), [f"{label}\nn={data['departments'][d]['ttr_n']}" for d, label in
                                      zip(departments, labels)])
    axes.set_title("Business time to resolve (hours)")
    axes.legend()
    figures.append(ttr)
    return figures


def _share(value: float, n: int) -> str:
    return f"{value * 100:.1f} % (n={n})" if n else "unknown (n=0)"


def html_page(data: dict, names: dict[str, str], centres: dict[str, str], images: list[str]) -> str:
    """The report as one self-contained HTML page."""
    heads = ("department", "cost centre", "legs", "open", "ack compliance", "resolve compliance", "breaches",
             "repeats (breached / within SLA / after resolution / unattributed)", "avoidable repeats",
             "failure-demand cost", "first contact resolution")
    rows = []
    for department, f in data["departments"].items():
        cells = (names.get(department, department), centres.get(department, ""), f["legs"], f["open_legs"],
                 _share(f["ack_compliance"], f["ack_outcomes"]), _share(f["resolve_compliance"], f["resolve_outcomes"]),
                 f["breaches"], " / ".join(str(f["repeat_contacts"][c]) for c in CAUSES), f["avoidable_repeats"],
                 money_text(f["failure_demand_cost_minor"], f["currency"]),
                 _share(f["first_contact_resolution"], f["fcr_n"]))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    costliest = sorted((leg | {"currency": f["currency"]} for f in data["departments"].values()
                        for leg in f["costliest_legs"]), key=lambda leg: (-leg["cost_minor"], leg["case_id"]))[:10]
    leg_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            leg["case_id"], names.get(leg["department"], leg["department"]), centres.get(leg["department"], ""),
            leg["avoidable_repeats"], money_text(leg["cost_minor"], leg["currency"]))) + "</tr>" for leg in costliest)
    pictures = "".join(f'<img alt="plot" src="data:image/png;base64,{image}">' for image in images)
    period = data["period"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Charge-back report</title>
<style>body{{font-family:DejaVu Sans,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 8px;font-size:13px}} th{{background:#eee}} img{{display:block;margin:1em 0}}</style>
</head><body>
<h1>Charge-back report: failure demand by department</h1>
<p>Period {html.escape(period['from'])} to {html.escape(period['to'])} (end exclusive). A repeat contact is
avoidable when the leg it is attributed to had breached; its cost is charged to the department's cost centre.
Shares count only legs and clocks whose outcome is known (n); open legs are shown as open.</p>
<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{''.join(rows)}</table>
<h2>The ten costliest legs</h2>
<table><tr><th>case</th><th>department</th><th>cost centre</th><th>avoidable repeats</th><th>cost</th></tr>
{leg_rows or '<tr><td colspan="5">no avoidable repeat in the period</td></tr>'}</table>
{pictures}
<script type="application/json" id="figures">{html.escape(json.dumps(data))}</script>
</body></html>
"""


def report(
    start: Annotated[str, typer.Option("--from", help="Start of the period, ISO 8601 (UTC if no offset).")],
    end: Annotated[str, typer.Option("--to", help="End of the period (exclusive), ISO 8601.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the report (HTML, or PDF with --pdf).")],
    department: Annotated[str, typer.Option(help="Only this department (default: every department).")] = "",
    pdf: Annotated[bool, typer.Option("--pdf", metavar="", help="Write a PDF instead of HTML.")] = False,
    departments_file: Annotated[Optional[Path], typer.Option(help="The departments file.")] = None,
    sla_address: SlaAddress = DEFAULT_SLA,
    token: Token = "",
    ca: CaFile = None,
) -> None:
    """Write the charge-back report of a period: per department legs, compliance, breaches, repeat contacts, avoidable repeats, failure-demand cost and FCR, with plots."""
    begin, finish = _instant(start, "--from"), _instant(end, "--to")
    if finish <= begin:
        raise typer.BadParameter("--to must be after --from")
    known = load_departments(departments_file or DEFAULT_FILE)
    chosen = [department] if department else list(known.names)
    names = {d.name: d.display_name for d in known.departments}
    centres = {d.name: d.cost_centre for d in known.departments}

    def scorecard(name: str, a: datetime, b: datetime) -> sla_pb2.Scorecard:
        return _call(sla_address, token, ca, "GetScorecard", sla_pb2.GetScorecardRequest(
            department=name, period_start=to_timestamp(a), period_end=to_timestamp(b)))

    data = collect(scorecard, chosen, begin, finish)
    figures = plots(data, names)
    if pdf:
        _write_pdf(out, data, names, centres, figures)
    else:
        out.write_text(html_page(data, names, centres, [_png(f) for f in figures]), encoding="utf-8")
    print(f"wrote {out}")


def _write_pdf(out: Path, data: dict, names: dict[str, str], centres: dict[str, str], figures: list) -> None:
    from matplotlib import pyplot
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(out) as pages:
        cover, axes = pyplot.subplots(figsize=(8.3, 5.8))
        axes.axis("off")
        axes.set_title(f"Charge-back report {data['period']['from']} to {data['period']['to']}")
        rows = [[names.get(d, d), centres.get(d, ""), f["legs"], f["breaches"], f["avoidable_repeats"],
                 money_text(f["failure_demand_cost_minor"], f["currency"]),
                 _share(f["first_contact_resolution"], f["fcr_n"])] for d, f in data["departments"].items()]
        axes.table(cellText=rows, colLabels=["department", "cost centre", "legs", "breaches", "avoidable repeats",
                                             "cost", "FCR"], loc="center")
        pages.savefig(cover)
        for figure in figures:
            pages.savefig(figure)


def _instant(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO 8601 instant: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
