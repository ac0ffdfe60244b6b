"""Tables for people that fit the terminal, the way kubectl and gh lay out their lists.

Each row is one line: no cell folds. When the table is wider than the terminal, it first
takes the columns' shorter forms (a shorter status, a time without its year and seconds),
then leaves out the columns whose value is the same on every row (and says what it is),
then the least useful columns, until it fits; a note under the table names what was left
out, and `--wide` shows every column in full (the terminal wraps the long lines then). A
column that a reader needs to act on (a leg's id, to acknowledge or resolve it) is never
left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

_UNLIMITED = 10_000
# Whenever a column must go, the one with the highest `drop_order` goes first; 0 stays.
KEEP = 0


@dataclass(frozen=True)
class Column:
    name: str
    drop_order: int = KEEP
    short: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Layout:
    """Which columns to show, whether in their short form, and what the note says."""

    shown: tuple[int, ...]
    short: bool
    same_on_every_row: tuple[tuple[str, str], ...] = ()
    left_out: tuple[str, ...] = ()


def _cell(column: Column, value: Text, short: bool) -> Text:
    if short and column.short is not None:
        return Text(column.short(value.plain), style=value.style)
    return value


def _table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], layout: Layout) -> Table:
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for index in layout.shown:
        table.add_column(columns[index].name, no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(columns[i], row[i], layout.short) for i in layout.shown))
    return table


def _natural_width(console: Console, table: Table) -> int:
    """How wide `table` is with no cell cut or folded, whatever the terminal's width."""
    return Measurement.get(console, console.options.update_width(_UNLIMITED), table).maximum


def _width(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]],
           layout: Layout) -> int:
    return _natural_width(console, _table(title, columns, rows, layout))


def layout_for(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]],
               wide: bool = False) -> Layout:
    """The fullest layout that fits `console.width` (every column in full when `wide`)."""
    everything = Layout(tuple(range(len(columns))), short=False)
    if wide or _width(console, title, columns, rows, everything) <= console.width:
        return everything
    layout = Layout(everything.shown, short=True)
    fits = lambda candidate: _width(console, title, columns, rows, candidate) <= console.width  # noqa: E731
    if fits(layout):
        return layout
    if len(rows) > 1:
        same = tuple(i for i in layout.shown if columns[i].drop_order != KEEP
                     and len({row[i].plain for row in rows}) == 1)
        layout = Layout(tuple(i for i in layout.shown if i not in same), True,
                        tuple((columns[i].name, _cell(columns[i], rows[0][i], True).plain) for i in same))
    for index in sorted((i for i in layout.shown if columns[i].drop_order != KEEP),
                        key=lambda i: -columns[i].drop_order):
        if fits(layout):
            break
        layout = Layout(tuple(i for i in layout.shown if i != index), True, layout.same_on_every_row,
                        (*layout.left_out, columns[index].name))
    return layout


def print_fitted(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]],
                 wide: bool = False) -> None:
    """Print the table laid out for `console`, then a note of what it leaves out."""
    layout = layout_for(console, title, columns, rows, wide)
    table = _table(title, columns, rows, layout)
    # --wide (or an id wider than the terminal): lines as long as the table needs, never cut;
    # the terminal wraps them
    width = console.width
    console.width = max(width, _natural_width(console, table))
    try:
        console.print(table, crop=False)
    finally:
        console.width = width
    if layout.same_on_every_row:
        console.print(Text("every row: " + ", ".join(f"{name} {value}" for name, value in layout.same_on_every_row),
                           style="dim"))
    if layout.left_out:
        console.print(Text(f"hidden: {', '.join(layout.left_out)} (--wide shows every column)", style="dim"))
