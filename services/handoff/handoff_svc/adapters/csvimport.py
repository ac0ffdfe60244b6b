"""Historical handoffs and contacts from CSV, checked row by row and turned into the domain
events the service would have written at the time (docs/csv-import.md).

Every problem is collected as `file:line: column: reason` instead of stopping at the
first, so a file is fixed in one round. A transfer has no time column of its own: it
happens when the leg it opens is created, so both legs must be in the same import.
Nothing here talks to Kafka; `ImportPlan.events()` hands the events over in event-time
order, each with an id derived from its row, so importing a file twice yields the same ids.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

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
CONTACT_COLUMNS = ("contact_id", "customer_ref", "case_id", "channel", "contacted_at", "reason")
# A raw customer id may replace customer_ref; it is pseudonymised on reading, never kept.
RAW_CUSTOMER = "customer_id"
MAX_SUMMARY, MAX_REASON = 500, 1000
PRIORITIES = {p.value.lower(): p for p in Priority}
CHANNELS = {c.value.lower(): c for c in Channel}
_EVENT_KINDS = {
    legs.HandoffCreated: "created", legs.HandoffAcknowledged: "acknowledged", legs.HandoffResolved: "resolved",
    legs.HandoffCancelled: "cancelled", legs.HandoffTransferred: "transferred",
}
_PROGRESS_EVERY = 10_000


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
    """One checked row of a handoffs file."""

    line: int
    handoff_id: str
    case_id: str
    customer_ref: str
    department: str
    priority: Priority
    category: str
    summary: str
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    cancelled_at: datetime | None
    transferred_to: str
    next_handoff_id: str
    previous_handoff_id: str


class Imported(NamedTuple):
    """One event to write, with its Kafka key's customer and its deterministic id."""

    at: datetime
    customer_ref: str
    event_id: str
    event: legs.HandoffEvent | ContactRecorded


@dataclass
class ImportPlan:
    """What the files hold once checked; write it only when `errors` is empty."""

    legs: list[LegRow] = field(default_factory=list)
    contacts: list[ContactRecorded] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    chain_position: dict[str, int] = field(default_factory=dict)

    def events(self) -> list[Imported]:
        """Every event of both files, in event-time order (and causal order on ties)."""
        by_id = {row.handoff_id: row for row in self.legs}
        keyed = []
        for seq, row in enumerate(self.legs):
            following = by_id.get(row.next_handoff_id)
            position = self.chain_position.get(row.handoff_id, 0)
            for index, event in enumerate(leg_events(row, following.created_at if following else None)):
                event_id = derived_event_id(ACTOR, row.handoff_id, _EVENT_KINDS[type(event)])
                # At one instant a leg precedes the leg it transfers to, and a leg's own
                # events keep their order: created, acknowledged, ended.
                keyed.append(((event.at, position, index, seq), Imported(event.at, row.customer_ref, event_id, event)))
        for seq, recorded in enumerate(self.contacts):
            contact = recorded.contact
            event_id = derived_event_id(ACTOR, "contact", contact.contact_id)
            keyed.append(((contact.contacted_at, 0, -1, seq),
                          Imported(contact.contacted_at, contact.customer_ref, event_id, recorded)))
        keyed.sort(key=lambda pair: pair[0])
        return [item for _, item in keyed]


def leg_events(row: LegRow, transferred_at: datetime | None) -> list[legs.HandoffEvent]:
    """One leg's history as the service would have recorded it, oldest first."""
    created = legs.create(
        legs.CreateHandoff(
            handoff_id=row.handoff_id, case_id=row.case_id, customer_ref=row.customer_ref,
            department=row.department, priority=row.priority, category=row.category, summary=row.summary,
            created_by=ACTOR, previous_handoff_id=row.previous_handoff_id,
        ),
        row.created_at,
    )
    leg, events = created.leg, [created]
    if row.acknowledged_at:
        events.append(legs.acknowledge(leg, legs.AcknowledgeHandoff(row.handoff_id, ACTOR), row.acknowledged_at))
    # Every ending is allowed from OPEN as from ACKNOWLEDGED, so the new leg serves for both.
    if row.resolved_at:
        events.append(legs.resolve(leg, legs.ResolveHandoff(row.handoff_id, ACTOR), row.resolved_at))
    elif row.cancelled_at:
        events.append(legs.cancel(leg, legs.CancelHandoff(row.handoff_id, ACTOR), row.cancelled_at))
    elif transferred_at:
        transfer = legs.TransferHandoff(row.handoff_id, ACTOR, row.transferred_to, row.next_handoff_id)
        events.append(legs.transfer(leg, transfer, transferred_at)[0])  # the next leg has its own row
    return events


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
        name, seen, errors = str(handoffs), {}, []
        for line, cells in _rows(handoffs, HANDOFF_COLUMNS, customer_ref_key, errors, report):
            row = _leg_row(line, cells, now, customer_ref_key)
            _note_duplicate(cells.values["handoff_id"], line, seen, "handoff_id", cells)
            errors.extend(RowError(name, line, column, reason) for column, reason in cells.problems)
            if row is not None and not cells.problems:
                plan.legs.append(row)
        plan.chain_position = _check_transfers(plan.legs, set(seen), name, errors)
        plan.errors += sorted(errors, key=lambda error: error.line)
    if contacts_file is not None:
        name, seen, errors = str(contacts_file), {}, []
        for line, cells in _rows(contacts_file, CONTACT_COLUMNS, customer_ref_key, errors, report):
            recorded = _contact(cells, now, customer_ref_key)
            _note_duplicate(cells.values["contact_id"], line, seen, "contact_id", cells)
            errors.extend(RowError(name, line, column, reason) for column, reason in cells.problems)
            if recorded is not None and not cells.problems:
                plan.contacts.append(recorded)
        plan.errors += sorted(errors, key=lambda error: error.line)
    return plan


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


def _rows(path: Path, columns: tuple[str, ...], key: bytes | None, errors: list[RowError],
          report: Callable[[int], None]) -> Iterator[tuple[int, _Cells]]:
    """(first line, cells) of each data row; header and file problems go to `errors`."""
    name, line, unreported = str(path), 1, 0
    try:
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and quoted newlines.
        with open(path, encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            header = [column.strip() for column in next(reader, [])]
            problems = _header_problems(header, columns, key)
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
                yield start, _Cells(dict(zip(header, (value.strip() for value in values))))
    except OSError as error:
        errors.append(RowError(name, 0, "", f"cannot read: {error.strerror or error}"))
    except UnicodeDecodeError:
        errors.append(RowError(name, line, "", "is not UTF-8 text (near this line); save the file as UTF-8"))
    except csv.Error as error:
        errors.append(RowError(name, line, "", f"not readable as CSV: {error}"))
    report(unreported)


def _header_problems(header: list[str], columns: tuple[str, ...], key: bytes | None) -> list[str]:
    expected = ", ".join(columns)
    if not any(header):
        return [f"the file is empty; the first line must be the header: {expected}"]
    problems = [f"column {column!r} appears more than once" for column in dict.fromkeys(header)
                if header.count(column) > 1]
    known = set(columns) | {RAW_CUSTOMER}
    problems += [f"unknown column {column!r}; the columns are: {expected} (or {RAW_CUSTOMER} for customer_ref)"
                 for column in header if column not in known]
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
    return check.event_time(column, moment, now)


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


def _customer_ref(cells: _Cells, key: bytes | None) -> str | None:
    raw = cells.values.get(RAW_CUSTOMER, "")
    if raw and cells.values.get("customer_ref"):
        cells.fail(RAW_CUSTOMER, "give customer_ref or customer_id, not both")
        return None
    if raw:
        return customer_ref_for(raw, key)  # the header check made sure there is a key
    return cells.get("customer_ref", check.identifier)


def _leg_row(line: int, cells: _Cells, now: datetime, key: bytes | None) -> LegRow | None:
    get = cells.get
    row = dict(
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
    )
    if cells.problems:
        return None
    _check_leg(row, cells)
    return None if cells.problems else LegRow(line=line, **row)


def _check_leg(row: dict, cells: _Cells) -> None:
    """The rules between one row's columns: one ending at most, times in order, links."""
    endings = [column for column in ("resolved_at", "cancelled_at", "transferred_to") if row[column]]
    if len(endings) > 1:
        cells.fail(endings[1], f"a leg ends at most one way, and this row also gives {endings[0]}")
    if bool(row["transferred_to"]) != bool(row["next_handoff_id"]):
        missing = "next_handoff_id" if row["transferred_to"] else "transferred_to"
        cells.fail(missing, "is required with " + ("transferred_to" if row["transferred_to"] else "next_handoff_id"))
    for column in ("next_handoff_id", "previous_handoff_id"):
        if row[column] == row["handoff_id"]:
            cells.fail(column, "names the leg itself")
    created, acknowledged = row["created_at"], row["acknowledged_at"]
    if acknowledged and acknowledged < created:
        cells.fail("acknowledged_at", "is before created_at")
    last = "acknowledged_at" if acknowledged and acknowledged >= created else "created_at"
    for column in ("resolved_at", "cancelled_at"):
        if row[column] and row[column] < row[last]:
            cells.fail(column, f"is before {last}")


def _check_transfers(rows: list[LegRow], all_ids: set[str], name: str, errors: list[RowError]) -> dict[str, int]:
    """Check that linked legs agree with each other; each leg's place in its transfer chain."""
    by_id = {row.handoff_id: row for row in rows}

    def fail(row: LegRow, column: str, reason: str) -> None:
        errors.append(RowError(name, row.line, column, reason))

    for row in rows:
        before = by_id.get(row.previous_handoff_id)
        if before is not None and before.next_handoff_id != row.handoff_id:
            fail(row, "previous_handoff_id", f"leg {before.handoff_id} (line {before.line}) does not name "
                 "this leg as its next_handoff_id")
        if not row.next_handoff_id or (row.next_handoff_id not in by_id and row.next_handoff_id in all_ids):
            continue  # no transfer, or the next leg's own row is bad and reported already
        after = by_id.get(row.next_handoff_id)
        if after is None:
            fail(row, "next_handoff_id", f"leg {row.next_handoff_id!r} is not in this file; a transfer happens "
                 "when the next leg is created, so import both legs together")
            continue
        where = f"leg {after.handoff_id} (line {after.line})"
        if after.previous_handoff_id != row.handoff_id:
            fail(row, "next_handoff_id", f"{where} does not name this leg as its previous_handoff_id")
        if after.department != row.transferred_to:
            fail(row, "transferred_to", f"is {row.transferred_to!r} but {where} is for {after.department!r}")
        for column in ("case_id", "customer_ref"):
            if getattr(after, column) != getattr(row, column):
                fail(row, column, f"differs from that of {where}; a transfer keeps the case and customer")
        last = row.acknowledged_at or row.created_at
        if after.created_at < last:
            fail(row, "next_handoff_id", f"{where} is created before this leg's "
                 f"{'acknowledged_at' if row.acknowledged_at else 'created_at'}; the transfer happens then")
    return _chain_positions(by_id, name, errors)


def _chain_positions(by_id: dict[str, LegRow], name: str, errors: list[RowError]) -> dict[str, int]:
    """0 for a leg with no earlier leg in the file, 1 for the leg it transferred to, ..."""
    position: dict[str, int] = {}
    for row in by_id.values():
        path: list[str] = []
        current = row.handoff_id
        while current in by_id and current not in position:
            if current in path:
                looped = path[path.index(current):]
                errors.extend(RowError(name, by_id[h].line, "previous_handoff_id", "the transfer chain loops")
                              for h in looped)
                break
            path.append(current)
            current = by_id[current].previous_handoff_id
        base = position[current] + 1 if current in position else 0
        for offset, handoff_id in enumerate(reversed(path)):
            position[handoff_id] = base + offset
    return position


def _contact(cells: _Cells, now: datetime, key: bytes | None) -> ContactRecorded | None:
    get = cells.get
    command = dict(
        contact_id=get("contact_id", check.identifier),
        customer_ref=_customer_ref(cells, key),
        case_id=get("case_id", _OPTIONAL_ID),
        channel=get("channel", _CHANNEL),
        reason=get("reason", check.text, MAX_REASON),
    )
    at = get("contacted_at", _required_instant, now)
    if cells.problems:
        return None
    return contacts.record(contacts.RecordContact(**command), at)
