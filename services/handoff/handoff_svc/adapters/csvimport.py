"""Historical handoffs and contacts from CSV, checked row by row and turned into the domain
events the service would have written at the time (docs/csv-import.md).

Every problem is collected as `file:line: column: reason` instead of stopping at the
first, so a file is fixed in one round. A transfer has no time column of its own: it
happens when the leg it opens is created, so both legs must be in the same import.
Nothing here talks to Kafka: `ImportPlan.schedule()` puts the events in event-time order
and `ImportPlan.event()` builds each one with an id derived from its row, so importing a
file twice yields the same ids.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, NamedTuple, TypeVar

from common import validation as check
from common.auth import customer_ref_for
from common.ids import derived_event_id
from common.validation import InvalidField
from handoff_svc.domain import contacts, legs
from handoff_svc.domain.contacts import Channel, ContactRecorded
from handoff_svc.domain.legs import Priority

ACTOR = "import"
HANDOFF_COLUMNS = (
    "handoff_id", "case_id", "customer_ref", "department", "priority", "category", "summary",
    "created_at", "acknowledged_at", "resolved_at", "cancelled_at", "transferred_to",
    "next_handoff_id", "previous_handoff_id",
)
# Columns a handoffs file may have: a leg's one priority change, when and to what.
OPTIONAL_HANDOFF_COLUMNS = ("priority_changed_at", "changed_priority")
CONTACT_COLUMNS = ("contact_id", "customer_ref", "case_id", "channel", "contacted_at", "reason")
# A raw customer id may replace customer_ref; it is pseudonymised on reading, never kept.
RAW_CUSTOMER = "customer_id"
MAX_SUMMARY, MAX_REASON = 500, 1000
PRIORITIES = {p.value.lower(): p for p in Priority}
CHANNELS = {c.value.lower(): c for c in Channel}
_PROGRESS_EVERY = 10_000
T = TypeVar("T")


@dataclass(frozen=True)
class RowError:
    """One problem in an input file; `line` 0 means the file as a whole."""

    file: str
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LegRow:
    """One checked row of a handoffs file: the leg as created, then what became of it."""

    line: int
    created: legs.HandoffCreated
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    cancelled_at: datetime | None
    transferred_to: str
    next_handoff_id: str
    priority_changed_at: datetime | None = None
    changed_priority: Priority | None = None

    @property
    def leg(self) -> legs.Leg:
        return self.created.leg


class Imported(NamedTuple):
    """One event to write, with its Kafka key's customer and its deterministic id."""

    at: datetime
    customer_ref: str
    event_id: str
    event: legs.HandoffEvent | ContactRecorded


# When, in which transfer chain position, which of the row's events, which row, what:
# sorting these puts events in event-time order, and on ties a leg before the leg it
# transferred to and a leg's own events in their order. The first four fields are unique.
Moment = tuple[datetime, int, int, int, str]
CONTACT = "contact"


@dataclass
class ImportPlan:
    """What the files hold once checked; write it only when `errors` is empty."""

    legs: list[LegRow] = field(default_factory=list)
    contacts: list[ContactRecorded] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    chain_position: dict[str, int] = field(default_factory=dict)

    def schedule(self) -> list[Moment]:
        """Every event to write, in order; `event` builds each (so millions need not be held)."""
        by_id = {row.leg.handoff_id: row for row in self.legs}
        moments = []
        for seq, row in enumerate(self.legs):
            following = by_id.get(row.next_handoff_id)
            position = self.chain_position.get(row.leg.handoff_id, 0)
            for index, (kind, at) in enumerate(leg_history(row, following.leg.created_at if following else None)):
                moments.append((at, position, index, seq, kind))
        moments += [(recorded.contact.contacted_at, 0, -1, seq, CONTACT) for seq, recorded in enumerate(self.contacts)]
        moments.sort()
        return moments

    def event(self, moment: Moment) -> Imported:
        """The event a moment of `schedule()` stands for."""
        at, _, _, seq, kind = moment
        if kind == CONTACT:
            recorded = self.contacts[seq]
            contact = recorded.contact
            event_id = derived_event_id(ACTOR, CONTACT, contact.contact_id, "recorded")
            return Imported(at, contact.customer_ref, event_id, recorded)
        row = self.legs[seq]
        leg = row.leg
        return Imported(at, leg.customer_ref, derived_event_id(ACTOR, leg.handoff_id, kind), leg_event(row, kind, at))

    def events(self) -> list[Imported]:
        """Every event, in order (for small plans: each event is held in memory)."""
        return [self.event(moment) for moment in self.schedule()]


def leg_history(row: LegRow, transferred_at: datetime | None) -> list[tuple[str, datetime]]:
    """What happened to a leg and when, oldest first: created, acknowledged, its ending."""
    history = [("created", row.leg.created_at)]
    if row.acknowledged_at:
        history.append(("acknowledged", row.acknowledged_at))
    if row.priority_changed_at:
        history.append(("priority_changed", row.priority_changed_at))
        history.sort(key=lambda event: event[1])  # stable: at one instant, the order above
    if row.resolved_at:
        history.append(("resolved", row.resolved_at))
    elif row.cancelled_at:
        history.append(("cancelled", row.cancelled_at))
    elif transferred_at:
        history.append(("transferred", transferred_at))
    return history


# How each later event arises from the newly created leg. Acknowledging needs an OPEN leg
# and every ending is allowed from OPEN as from ACKNOWLEDGED, so the new leg serves for all.
_CHANGES = {
    "acknowledged": lambda leg, row, at: legs.acknowledge(leg, legs.AcknowledgeHandoff(leg.handoff_id, ACTOR), at),
    "resolved": lambda leg, row, at: legs.resolve(leg, legs.ResolveHandoff(leg.handoff_id, ACTOR), at),
    "cancelled": lambda leg, row, at: legs.cancel(leg, legs.CancelHandoff(leg.handoff_id, ACTOR), at),
    "priority_changed": lambda leg, row, at: legs.change_priority(
        leg, legs.ChangePriority(leg.handoff_id, ACTOR, row.changed_priority), at)[0],
    # transfer() also opens the next leg; that leg has its own row, created from there.
    "transferred": lambda leg, row, at: legs.transfer(
        leg, legs.TransferHandoff(leg.handoff_id, ACTOR, row.transferred_to, row.next_handoff_id), at)[0],
}


def leg_event(row: LegRow, kind: str, at: datetime) -> legs.HandoffEvent:
    """The `kind` event of a leg's history, as the service would have recorded it."""
    return row.created if kind == "created" else _CHANGES[kind](row.leg, row, at)


def validate(
    handoffs: Path | None,
    contacts_file: Path | None,
    now: datetime,
    customer_ref_key: bytes | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> ImportPlan:
    """Read and check both files completely; `on_rows(n)` is told of rows read as it goes."""
    if customer_ref_key is not None and len(customer_ref_key) < 16:
        raise ValueError(f"customer ref key has {len(customer_ref_key)} bytes; at least 16 are needed")
    plan = ImportPlan()
    report = on_rows or (lambda count: None)
    if handoffs is not None:
        errors: list[RowError] = []
        plan.legs, ids = _read(handoffs, HANDOFF_COLUMNS, "handoff_id", customer_ref_key, errors, report,
                               lambda line, cells: _leg_row(line, cells, now, customer_ref_key),
                               OPTIONAL_HANDOFF_COLUMNS)
        plan.chain_position = _check_transfers(plan.legs, ids, str(handoffs), errors)
        plan.errors += sorted(errors, key=lambda error: error.line)
    if contacts_file is not None:
        errors = []
        plan.contacts, _ = _read(contacts_file, CONTACT_COLUMNS, "contact_id", customer_ref_key, errors, report,
                                 lambda line, cells: _contact(cells, now, customer_ref_key))
        plan.errors += sorted(errors, key=lambda error: error.line)
    return plan


def _read(path: Path, columns: tuple[str, ...], id_column: str, key: bytes | None, errors: list[RowError],
          report: Callable[[int], None], parse: Callable[[int, _Cells], T | None],
          optional: tuple[str, ...] = ()) -> tuple[list[T], set[str]]:
    """The rows of one file that pass every check, and every id the file uses (good or bad)."""
    name, seen, good = str(path), {}, []
    for line, cells in _rows(path, columns, key, errors, report, optional):
        parsed = parse(line, cells)
        _note_duplicate(cells.values[id_column], line, seen, id_column, cells)
        if cells.problems:
            errors += [RowError(name, line, column, reason) for column, reason in cells.problems]
        elif parsed is not None:
            good.append(parsed)
    return good, set(seen)


# Reading files ----------------------------------------------------------------------


class _Cells:
    """One data row's values by column; failed checks are collected, not raised."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.problems: list[tuple[str, str]] = []

    def get(self, column: str, checked: Callable, *args: object):
        try:
            return checked(column, self.values.get(column, ""), *args)
        except InvalidField as problem:
            self.fail(column, str(problem).removeprefix(f"{column}: "))
            return None

    def fail(self, column: str, reason: str) -> None:
        self.problems.append((column, reason))


class _NotUtf8(ValueError):
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is not UTF-8")
        self.line = line


def _text_lines(stream: BinaryIO) -> Iterator[str]:
    """The file's lines as text, a byte-order mark dropped; decoded line by line so that
    bytes which are not UTF-8 are reported at their own line."""
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _NotUtf8(number) from None


def _rows(path: Path, columns: tuple[str, ...], key: bytes | None, errors: list[RowError],
          report: Callable[[int], None], optional: tuple[str, ...] = ()) -> Iterator[tuple[int, _Cells]]:
    """(first line, cells) of each data row; header and file problems go to `errors`."""
    name, line, unreported = str(path), 1, 0
    try:
        with open(path, "rb") as stream:
            reader = csv.reader(_text_lines(stream))  # csv itself copes with CRLF and quoted newlines
            header = [column.strip() for column in next(reader, [])]
            problems = _header_problems(header, columns, key, optional)
            errors.extend(RowError(name, 1, "header", reason) for reason in problems)
            if problems:
                return
            line = reader.line_num + 1
            for values in reader:
                start, line = line, reader.line_num + 1
                unreported += 1
                if unreported == _PROGRESS_EVERY:
                    report(unreported)
                    unreported = 0
                if not values:
                    continue  # a blank line
                if len(values) != len(header):
                    errors.append(RowError(name, start, "", f"has {len(values)} fields; the header has {len(header)}"))
                    continue
                yield start, _Cells(dict(zip(header, [value.strip() for value in values])))
    except OSError as error:
        errors.append(RowError(name, 0, "", f"cannot read: {error.strerror or error}"))
    except _NotUtf8 as error:
        errors.append(RowError(name, error.line, "", "is not UTF-8 text; save the file as UTF-8"))
    except csv.Error as error:
        errors.append(RowError(name, line, "", f"not readable as CSV: {error}"))
    report(unreported)


def _header_problems(header: list[str], columns: tuple[str, ...], key: bytes | None,
                     optional: tuple[str, ...] = ()) -> list[str]:
    expected = ", ".join(columns)
    if not any(header):
        return [f"the file is empty; the first line must be the header: {expected}"]
    known = set(columns) | set(optional) | {RAW_CUSTOMER}
    if known.isdisjoint(header):
        return [f"the first line is not a header; it must name the columns: {expected}"]
    problems = [f"column {column!r} appears more than once" for column in dict.fromkeys(header)
                if header.count(column) > 1]
    also = f"; optional: {', '.join(optional)}" if optional else ""
    problems += [f"unknown column {column!r}; the columns are: {expected} (or {RAW_CUSTOMER} for customer_ref)"
                 f"{also}" for column in header if column not in known]
    needed = [c for c in columns if c not in header and not (c == "customer_ref" and RAW_CUSTOMER in header)]
    if needed:
        problems.append(f"missing column{'s' if len(needed) > 1 else ''} {', '.join(needed)}")
    if RAW_CUSTOMER in header and key is None:
        problems.append(f"column {RAW_CUSTOMER} holds raw customer ids, which need the customer ref key "
                        "to be pseudonymised; give the key, or give customer_ref instead")
    return problems


def _note_duplicate(value: str, line: int, seen: dict[str, int], column: str, cells: _Cells) -> None:
    if not value:
        return
    first = seen.setdefault(value, line)
    if first != line:
        cells.fail(column, f"{value!r} already appears on line {first}")


# Checking rows ----------------------------------------------------------------------


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _instant(column: str, value: str, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField(column, f"{_shown(value)} is not an ISO 8601 time like 2025-03-03T09:30:00+01:00") from None
    if moment.tzinfo is None:
        raise InvalidField(column, f"{_shown(value)} has no UTC offset; add one (+01:00) or Z")
    # One zone for every instant: comparing datetimes of different zones is ten times slower.
    return check.event_time(column, moment.astimezone(timezone.utc), now)


def _required_instant(column: str, value: str, now: datetime) -> datetime:
    if not value:
        raise InvalidField(column, "is required")
    return _instant(column, value, now)


def _optional(checked: Callable[[str, str], str]) -> Callable[[str, str], str]:
    return lambda column, value: checked(column, value) if value else ""


def _choice(options: dict) -> Callable[[str, str], object]:
    def choose(column: str, value: str):
        try:
            return options[value.lower()]
        except KeyError:
            raise InvalidField(column, f"{_shown(value)} is not one of {'|'.join(options)}") from None
    return choose


_OPTIONAL_ID, _OPTIONAL_LABEL = _optional(check.identifier), _optional(check.label)
_CHANNEL, _PRIORITY = _choice(CHANNELS), _choice(PRIORITIES)


def _priority(column: str, value: str) -> Priority:
    return _PRIORITY(column, value) if value else Priority.NORMAL  # as the API: unset is NORMAL


def _optional_priority(column: str, value: str) -> Priority | None:
    return _PRIORITY(column, value) if value else None


def _customer_ref(cells: _Cells, key: bytes | None) -> str | None:
    raw = cells.values.get(RAW_CUSTOMER, "")
    if raw and cells.values.get("customer_ref"):
        cells.fail(RAW_CUSTOMER, "give customer_ref or customer_id, not both")
        return None
    if raw:
        return customer_ref_for(raw, key)  # the header check made sure there is a key
    return cells.get("customer_ref", check.identifier)


_AFTER_CREATION = ("acknowledged_at", "resolved_at", "cancelled_at", "transferred_to", "next_handoff_id",
                   "priority_changed_at", "changed_priority")


def _leg_row(line: int, cells: _Cells, now: datetime, key: bytes | None) -> LegRow | None:
    get = cells.get
    values = dict(  # in column order, so that a row's problems are listed in that order
        handoff_id=get("handoff_id", check.identifier),
        case_id=get("case_id", check.identifier),
        customer_ref=_customer_ref(cells, key),
        department=get("department", check.label),
        priority=get("priority", _priority),
        category=get("category", _OPTIONAL_LABEL),
        summary=get("summary", check.text, MAX_SUMMARY),
        created_at=get("created_at", _required_instant, now),
        acknowledged_at=get("acknowledged_at", _instant, now),
        resolved_at=get("resolved_at", _instant, now),
        cancelled_at=get("cancelled_at", _instant, now),
        transferred_to=get("transferred_to", _OPTIONAL_LABEL),
        next_handoff_id=get("next_handoff_id", _OPTIONAL_ID),
        previous_handoff_id=get("previous_handoff_id", _OPTIONAL_ID),
        priority_changed_at=get("priority_changed_at", _instant, now),
        changed_priority=get("changed_priority", _optional_priority),
    )
    if cells.problems:
        return None
    created_at = values.pop("created_at")
    later = {column: values.pop(column) for column in _AFTER_CREATION}
    row = LegRow(line, legs.create(legs.CreateHandoff(**values, created_by=ACTOR), created_at), **later)
    _check_leg(row, cells)
    return None if cells.problems else row


def _check_leg(row: LegRow, cells: _Cells) -> None:
    """The rules between one row's columns: one ending at most, times in order, links."""
    endings = [column for column in ("resolved_at", "cancelled_at", "transferred_to") if getattr(row, column)]
    if len(endings) > 1:
        cells.fail(endings[1], f"a leg ends at most one way, and this row also gives {endings[0]}")
    if bool(row.transferred_to) != bool(row.next_handoff_id):
        given = "transferred_to" if row.transferred_to else "next_handoff_id"
        cells.fail("next_handoff_id" if row.transferred_to else "transferred_to", f"is required with {given}")
    leg = row.leg
    for column, linked in (("next_handoff_id", row.next_handoff_id), ("previous_handoff_id", leg.previous_handoff_id)):
        if linked == leg.handoff_id:
            cells.fail(column, "names the leg itself")
    if row.acknowledged_at and row.acknowledged_at < leg.created_at:
        cells.fail("acknowledged_at", "is before created_at")
        return
    last, last_at = ("acknowledged_at", row.acknowledged_at) if row.acknowledged_at else ("created_at", leg.created_at)
    for column, moment in (("resolved_at", row.resolved_at), ("cancelled_at", row.cancelled_at)):
        if moment and moment < last_at:
            cells.fail(column, f"is before {last}")
    _check_priority_change(row, cells)


def _check_priority_change(row: LegRow, cells: _Cells) -> None:
    """A priority change comes with its new priority, another than the leg's, while the leg is open."""
    changed_at, leg = row.priority_changed_at, row.leg
    if bool(changed_at) != bool(row.changed_priority):
        given = "priority_changed_at" if changed_at else "changed_priority"
        cells.fail("changed_priority" if changed_at else "priority_changed_at", f"is required with {given}")
        return
    if not changed_at:
        return
    if row.changed_priority == leg.priority:
        cells.fail("changed_priority", f"is the leg's priority already ({leg.priority.value.lower()})")
    if changed_at < leg.created_at:
        cells.fail("priority_changed_at", "is before created_at")
    ended = [(column, at) for column, at in (("resolved_at", row.resolved_at), ("cancelled_at", row.cancelled_at))
             if at and at < changed_at]
    for column, _ in ended:
        cells.fail("priority_changed_at", f"is after {column}; the leg had ended")


def _check_transfers(rows: list[LegRow], all_ids: set[str], name: str, errors: list[RowError]) -> dict[str, int]:
    """Check that linked legs agree with each other; each leg's place in its transfer chain."""
    by_id = {row.leg.handoff_id: row for row in rows}

    def fail(row: LegRow, column: str, reason: str) -> None:
        errors.append(RowError(name, row.line, column, reason))

    for row in rows:
        leg = row.leg
        before = by_id.get(leg.previous_handoff_id)
        if before is not None and before.next_handoff_id != leg.handoff_id:
            fail(row, "previous_handoff_id", f"leg {before.leg.handoff_id} (line {before.line}) does not name "
                 "this leg as its next_handoff_id")
        if not row.next_handoff_id or (row.next_handoff_id not in by_id and row.next_handoff_id in all_ids):
            continue  # no transfer, or the next leg's own row is bad and reported already
        after = by_id.get(row.next_handoff_id)
        if after is None:
            fail(row, "next_handoff_id", f"leg {row.next_handoff_id!r} is not in this file; a transfer happens "
                 "when the next leg is created, so import both legs together")
            continue
        where, next_leg = f"leg {after.leg.handoff_id} (line {after.line})", after.leg
        if next_leg.previous_handoff_id != leg.handoff_id:
            fail(row, "next_handoff_id", f"{where} does not name this leg as its previous_handoff_id")
        if next_leg.department != row.transferred_to:
            fail(row, "transferred_to", f"is {row.transferred_to!r} but {where} is for {next_leg.department!r}")
        for column in ("case_id", "customer_ref"):
            if getattr(next_leg, column) != getattr(leg, column):
                fail(row, column, f"differs from that of {where}; a transfer keeps the case and customer")
        last = "acknowledged_at" if row.acknowledged_at else "created_at"
        if next_leg.created_at < (row.acknowledged_at or leg.created_at):
            fail(row, "next_handoff_id", f"{where} is created before this leg's {last}; the transfer happens then")
    return _chain_positions(by_id, name, errors)


def _chain_positions(by_id: dict[str, LegRow], name: str, errors: list[RowError]) -> dict[str, int]:
    """0 for a leg with no earlier leg in the file, 1 for the leg it transferred to, ..."""
    position: dict[str, int] = {}
    for row in by_id.values():
        path: list[str] = []
        current = row.leg.handoff_id
        while current in by_id and current not in position:
            if current in path:
                looped = path[path.index(current):]
                errors.extend(RowError(name, by_id[h].line, "previous_handoff_id", "the transfer chain loops")
                              for h in looped)
                break
            path.append(current)
            current = by_id[current].leg.previous_handoff_id
        base = position[current] + 1 if current in position else 0
        for offset, handoff_id in enumerate(reversed(path)):
            position[handoff_id] = base + offset
    return position


def _contact(cells: _Cells, now: datetime, key: bytes | None) -> ContactRecorded | None:
    get = cells.get
    values = dict(  # in column order, so that a row's problems are listed in that order
        contact_id=get("contact_id", check.identifier),
        customer_ref=_customer_ref(cells, key),
        case_id=get("case_id", _OPTIONAL_ID),
        channel=get("channel", _CHANNEL),
        contacted_at=get("contacted_at", _required_instant, now),
        reason=get("reason", check.text, MAX_REASON),
    )
    if cells.problems:
        return None
    at = values.pop("contacted_at")
    return contacts.record(contacts.RecordContact(**values), at)
