"""Tables for people that fit the terminal, the way kubectl and gh lay out their lists.

Each row is one line: no cell folds. When the table is wider than the terminal, it first
takes the columns' shorter forms (a shorter status, a time without its year and seconds)
and lets a free-text column (a title) be cut short with "…"; then it leaves out columns one
at a time — first those whose value is the same on every row (and says what it is), then
the least useful — until it fits. A note under the table names what was left out, and
`--wide` shows every column in full (the terminal wraps the long lines then). A column that
a reader needs to act on (a leg's id, to acknowledge or resolve it) is never left out.
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
# A free-text column (a title, a comment) is cut short with "…" rather than left out, down to this.
FLEXIBLE_MIN = 16


@dataclass(frozen=True)
class Column:
    name: str
    drop_order: int = KEEP
    short: Callable[[str], str] | None = None
    flexible: bool = False


@dataclass(frozen=True)
class Layout:
    """Which columns to show, whether in their short form, and what the note says."""

    shown: tuple[int, ...]
    short: bool
    same_on_every_row: tuple[tuple[str, str], ...] = ()
    left_out: tuple[str, ...] = ()

    def without(self, index: int, column: Column, value: str | None) -> "Layout":
        """This layout less one column: noted with its value when it is the same on every row."""
        shown = tuple(i for i in self.shown if i != index)
        if value is not None:
            return Layout(shown, self.short, (*self.same_on_every_row, (column.name, value)), self.left_out)
        return Layout(shown, self.short, self.same_on_every_row, (*self.left_out, column.name))


def _cell(column: Column, value: Text, short: bool, measuring: bool) -> Text:
    if short and column.short is not None:
        value = Text(column.short(value.plain), style=value.style)
    if column.flexible:
        # measured at its shortest; printed on one line, cut to the width the table leaves it
        return Text(value.plain[:FLEXIBLE_MIN], style=value.style) if measuring \
            else Text(value.plain, style=value.style, no_wrap=True, overflow="ellipsis")
    return value


def _table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], layout: Layout,
           measuring: bool = False) -> Table:
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for index in layout.shown:
        column = columns[index]
        # only a flexible column may give up width: every other cell stays whole
        table.add_column(column.name, no_wrap=not column.flexible, min_width=min(len(column.name), FLEXIBLE_MIN))
    for row in rows:
        table.add_row(*(_cell(columns[i], row[i], layout.short, measuring) for i in layout.shown))
    return table


def _natural_width(console: Console, table: Table) -> int:
    """How wide `table` is with no cell cut or folded, whatever the terminal's width."""
    return Measurement.get(console, console.options.update_width(_UNLIMITED), table).maximum


def _same_value(column: Column, rows: Sequence[Sequence[Text]], index: int) -> str | None:
    """The value `column` has on every row, when there are several rows and it has one."""
    values = {row[index].plain for row in rows}
    return _cell(column, rows[0][index], True, False).plain if len(rows) > 1 and len(values) == 1 else None


def layout_for(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]],
               wide: bool = False) -> Layout:
    """The fullest layout that fits `console.width` (every column in full when `wide`)."""
    everything = Layout(tuple(range(len(columns))), short=False)

    def fits(layout: Layout, measuring: bool = True) -> bool:
        return _natural_width(console, _table(title, columns, rows, layout, measuring)) <= console.width

    if wide or fits(everything, measuring=False):
        return everything
    layout = Layout(everything.shown, short=True)
    same = {i: _same_value(columns[i], rows, i) for i in layout.shown}
    # a column that says the same on every row goes before one that tells rows apart
    order = sorted((i for i in layout.shown if columns[i].drop_order != KEEP),
                   key=lambda i: (same[i] is None, -columns[i].drop_order))
    for index in order:
        if fits(layout):
            break
        layout = layout.without(index, columns[index], same[index])
    return layout


def print_fitted(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]],
                 wide: bool = False, hint: str = "--wide shows every column") -> None:
    """Print the table laid out for `console`, then a note of what it leaves out and `hint`."""
    layout = layout_for(console, title, columns, rows, wide)
    table = _table(title, columns, rows, layout)
    # --wide (or an id wider than the terminal): lines as long as the table needs, never cut;
    # the terminal wraps them
    needed = _natural_width(console, table if wide else _table(title, columns, rows, layout, measuring=True))
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(table, crop=False)
    finally:
        console.width = width
    if layout.same_on_every_row:
        console.print(Text("every row: " + ", ".join(f"{name} {value}" for name, value in layout.same_on_every_row),
                           style="dim"))
    if layout.left_out:
        console.print(Text(f"hidden: {', '.join(layout.left_out)} ({hint})", style="dim"))
