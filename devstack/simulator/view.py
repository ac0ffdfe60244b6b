"""The live terminal view of `make run` and the charge-back table it leaves behind.

Rendering only: it draws a Snapshot (monitor), the simulator's Progress and its clock into
rich renderables sized to the terminal at every refresh, so the screen follows a resize.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from devstack.simulator.monitor import CAUSE_NAMES, Snapshot, Told
from devstack.simulator.runner import Progress, SimClock

CAUSES = ("sla_breached", "within_sla", "after_resolution", "unattributed")
CAUSE_SHORT = {"sla_breached": "breached", "within_sla": "in SLA", "after_resolution": "after res.",
               "unattributed": "unattr."}
KIND_STYLE = {"warning": "yellow", "breach": "bold red", "escalation": "magenta", "avoidable_repeat": "bold cyan",
              "digest": "red", "charged": "bold cyan", "resolved_after_breach": "green", "new_leg": "dim", "incident": "bold magenta"}
KEYS = "space pause/resume   + faster   - slower   q quit (Ctrl-C too)"


@dataclass(frozen=True)
class DepartmentName:
    display_name: str
    cost_centre: str = ""


def money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}".strip()


def percent(value: float, n: int) -> str:
    """A share with the number it rests on; '-' when nothing is known yet."""
    return f"{value * 100:.0f}% n={n}" if n else "- n=0"


def _when(at: datetime, clock: SimClock) -> str:
    return at.astimezone(clock.zone).strftime("%a %H:%M")


def header(clock: SimClock, progress: Progress, snapshot: Snapshot) -> Text:
    state = "PAUSED" if clock.paused else ("week done" if clock.finished else "running")
    now = clock.now().astimezone(clock.zone)
    text = Text()
    text.append(" Simulated contact centre ", style="bold reverse")
    text.append(f"  {now:%a %d %b %Y %H:%M} {clock.zone.key}", style="bold")
    text.append(f"   speed {clock.speed:,.0f}x   {state}")
    text.append(f"\n open legs {len(progress.open_legs)}   contacts {progress.contacts}"
                f"   repeat calls made {progress.callbacks}   API calls {progress.calls}"
                f" ({progress.failed_calls} refused)")
    if snapshot.error or progress.last_error:
        text.append(f"\n {snapshot.error or progress.last_error}", style="red")
    return text


def _open_by_department(progress: Progress, snapshot: Snapshot) -> dict[str, tuple[int, int]]:
    """(open legs, legs near breach: warned and not breached) per department."""
    counts: dict[str, list[int]] = {}
    for leg in list(progress.open_legs.values()):
        entry = counts.setdefault(leg.department, [0, 0])
        entry[0] += 1
        entry[1] += snapshot.leg_alerts.get(leg.handoff_id) == "warning"
    return {name: (a, b) for name, (a, b) in counts.items()}


def departments_table(departments: list[str], names: Mapping[str, DepartmentName], progress: Progress,
                      snapshot: Snapshot) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, caption_justify="left",
                  caption="repeats: sla breached/within sla/after resolution/unattributed; n: what a share rests on")
    for column, justify in (("department", "left"), ("open", "right"), ("near", "right"),
                            ("ack met", "right"), ("resolve met", "right"), ("breach", "right"),
                            ("repeats", "right"), ("avoid.", "right"), ("cost", "right"), ("FCR", "right")):
        table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")
    open_counts = _open_by_department(progress, snapshot)
    for department in [*departments, ""]:
        card = snapshot.scorecards.get(department)
        name = names[department].display_name if department in names else (department or "whole centre")
        opened, near = (sum(v[0] for v in open_counts.values()), sum(v[1] for v in open_counts.values())) \
            if not department else open_counts.get(department, (0, 0))
        style = "bold" if not department else ""
        if card is None:
            table.add_row(name, str(opened), str(near), *["…"] * 7, style=style)
            continue
        repeats = {CAUSE_NAMES.get(r.cause, ""): r.count for r in card.repeat_contacts}
        cost_style = "bold red" if card.failure_demand_cost_minor else ""
        table.add_row(
            name, str(opened), Text(str(near), style="yellow" if near else ""),
            percent(card.ack_compliance, card.ack_outcomes), percent(card.resolve_compliance, card.resolve_outcomes),
            Text(str(card.breaches), style="red" if card.breaches else ""),
            "/".join(str(repeats.get(cause, 0)) for cause in CAUSES),
            Text(str(card.avoidable_repeats), style="bold red" if card.avoidable_repeats else ""),
            Text(money(card.failure_demand_cost_minor, card.currency), style=cost_style),
            percent(card.first_contact_resolution, card.fcr_n), style=style)
    return table


def feed_line(told: Told, names: Mapping[str, DepartmentName], clock: SimClock, costs: Mapping[str, str]) -> Text:
    """One thing a department was told, by case id (never a leg's uuid)."""
    department = names[told.department].display_name if told.department in names else told.department
    line = Text(f"{_when(told.at, clock)}  ", no_wrap=True, overflow="ellipsis")
    line.append(f"{told.kind.replace('_', ' '):<17}", style=KIND_STYLE.get(told.kind, ""))
    line.append(f" {department:<14} {told.case_id or '':<11}")
    if told.detail:
        return line.append(f" {told.detail}", style=KIND_STYLE.get(told.kind, ""))
    if told.kind == "avoidable_repeat":
        cost = costs.get(told.case_id, "")
        line.append(f" customer called again after the SLA breached{': ' + cost if cost else ''}", style="bold cyan")
    elif told.kind == "digest":
        line.append(f" {told.items} notices in one")
    elif told.clock:
        line.append(f" {told.clock} clock")
    if told.escalation_level:
        line.append(f" escalated, level {told.escalation_level}", style="magenta")
    line.append(f" -> {told.receiver}")
    if told.suppressed:
        line.append(f" held back: {told.suppressed}", style="dim")
    elif told.channels:
        line.append(f" via {', '.join(told.channels)}", style="dim")
    return line


def render(clock: SimClock, progress: Progress, snapshot: Snapshot, departments: list[str],
           names: Mapping[str, DepartmentName], costs: Mapping[str, str], height: int) -> Layout:
    """The whole screen for a terminal `height` lines tall."""
    table = departments_table(departments, names, progress, snapshot)
    table_height = len(departments) + 6
    feed_room = max(height - table_height - 4 - 4, 1)
    lines = [feed_line(told, names, clock, costs) for told in snapshot.feed[-feed_room:]]
    layout = Layout()
    layout.split_column(
        Layout(header(clock, progress, snapshot), name="header", size=3),
        Layout(Panel(table, title="per department, since the run began", title_align="left"),
               name="departments", size=table_height + 2),
        Layout(Panel(Group(*lines) if lines else Text("waiting for the first notification…", style="dim"),
                     title="what departments are told", title_align="left"), name="feed"),
        Layout(Text(KEYS, style="dim"), name="keys", size=1),
    )
    return layout


def chargeback_table(departments: list[str], names: Mapping[str, DepartmentName],
                     scorecards: Mapping[str, object]) -> Table:
    """Failure demand per department and cost centre: what the run's repeat calls cost."""
    table = Table(title="Charge-back: failure demand by department", box=box.SIMPLE_HEAD)
    for column, justify in (("department", "left"), ("cost centre", "left"), ("legs", "right"),
                            ("breaches", "right"), ("avoidable repeats", "right"), ("cost", "right"),
                            ("FCR", "right")):
        table.add_column(column, justify=justify)
    for department in [*departments, ""]:
        card = scorecards.get(department)
        if card is None:
            continue
        name = names.get(department, DepartmentName(department or "whole centre"))
        table.add_row(name.display_name if department else "whole centre", name.cost_centre if department else "",
                      str(card.legs), str(card.breaches), str(card.avoidable_repeats),
                      money(card.failure_demand_cost_minor, card.currency),
                      percent(card.first_contact_resolution, card.fcr_n), style="" if department else "bold")
    return table
