"""What the commands print: a rich table for people, or `--json` for scripts.

JSON is plain and stable (docs/cli-json.md): the response's fields by their snake_case
proto names, every field present (zero values too, `[]` for an empty list, null for an
unset time or message), enum values without their prefix in lower case (`in_progress`),
numbers as numbers, times in RFC 3339 UTC, durations in seconds. Tables show enums and
times the way the commands take them (`in-progress`) and times in UTC
(`2025-03-01 09:30:00Z`); piped, they are plain columns without borders or colour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timezone

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from handoff.v1 import types_pb2
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from handoffctl.fit import Column, print_fitted

console = Console(highlight=False)
if not console.is_terminal:
    console.width = 1000  # piped: a row is one line, however long, so scripts can cut columns


def _enum_value(enum_type, number: int) -> str | int:
    """`LEG_STATUS_IN_PROGRESS` -> `in_progress`; an unknown number stays a number."""
    value = enum_type.values_by_number.get(number)
    if value is None:
        return number
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum_type.name).upper() + "_"
    return value.name.removeprefix(prefix).lower()


def _value(field: FieldDescriptor, value):
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_value(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return as_dict(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


def as_dict(message: Message) -> dict | str | float:
    """The message as plain JSON values (see the module doc)."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return message.ToDatetime(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
    if name == "google.protobuf.Duration":
        return message.ToTimedelta().total_seconds()
    plain: dict = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name["value"]
            plain[field.name] = {str(k): _value(entry, v) for k, v in value.items()}
        elif field.is_repeated:
            plain[field.name] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
            plain[field.name] = None
        else:
            plain[field.name] = _value(field, value)
    return plain


def print_json(message: Message) -> None:
    """The message as indented plain JSON."""
    print(json.dumps(as_dict(message), indent=2), flush=True)


def enum_text(enum_type, prefix: str, value: int) -> str:
    name = enum_type.Name(value) if value in enum_type.values() else str(value)
    return name.removeprefix(prefix).lower().replace("_", "-")


def priority_text(value: int) -> str:
    return enum_text(types_pb2.Priority, "PRIORITY_", value)


def status_text(value: int) -> str:
    return enum_text(types_pb2.LegStatus, "LEG_STATUS_", value)


def channel_text(value: int) -> str:
    return enum_text(types_pb2.ContactChannel, "CONTACT_CHANNEL_", value)


def when(message: Message, field: str) -> str:
    """A timestamp field in UTC to the second (RFC 3339 with a space, so it wraps); empty when unset."""
    if not message.HasField(field):
        return ""
    moment = getattr(message, field).ToDatetime(tzinfo=timezone.utc)
    return moment.isoformat(sep=" ", timespec="seconds").replace("+00:00", "Z")


SHORT_STATUS = {"waiting-on-customer": "waiting"}


def short_time(text: str) -> str:
    """`2025-03-01 09:30:00Z` -> `03-01 09:30Z`: the short form of a time in a narrow table."""
    return f"{text[5:16]}Z" if text else text


def _breached(leg) -> Text:
    return Text("yes", style="red") if leg.breached else Text("no")


def cells(values) -> list[Text]:
    """Table cells that print user text as it is: a `[word]` in a summary is not markup."""
    return [value if isinstance(value, Text) else Text(value) for value in values]


def leg_rows(leg) -> list[tuple[str, str | Text]]:
    """(label, value) for every field of a Handoff, in reading order."""
    return [
        ("handoff_id", leg.handoff_id),
        ("case", leg.case_id),
        ("customer", leg.customer_ref),
        ("department", leg.department),
        ("priority", priority_text(leg.priority)),
        ("status", status_text(leg.status)),
        ("breached", _breached(leg)),
        ("category", leg.category),
        ("summary", leg.summary),
        ("created", when(leg, "created_at")),
        ("created by", leg.created_by),
        ("acknowledged", when(leg, "acknowledged_at")),
        ("resolved", when(leg, "resolved_at")),
        ("updated", when(leg, "updated_at")),
        ("previous leg", leg.previous_handoff_id),
        ("next leg", leg.next_handoff_id),
        ("reopened", f"{leg.reopen_count} times" if leg.reopen_count else ""),
    ]


def _for_people() -> bool:
    """Whether output goes to a terminal; piped, tables are plain columns a script can cut."""
    return console.is_terminal


def fields_table(title: str, rows: list[tuple[str, str | Text]]) -> Table | Group:
    if not _for_people():
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        for row in rows:
            table.add_row(*cells(row))
        return Group(Text(title), table)
    table = Table(title=Text(title), show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for row in rows:
        table.add_row(*cells(row))
    return table


def show_rows(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], wide: bool = False,
              hint: str = "--wide shows every column") -> None:
    """One row per item: for people, fitted to the terminal (handoffctl.fit); piped, plain
    columns with every column, one row per line, so scripts can cut them."""
    if _for_people():
        print_fitted(console, title, columns, rows, wide, hint)
        return
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column.name.replace(" ", "_"), no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def show_next_page(page) -> None:
    """How to get the page after `page`, if there is one."""
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}  (or --all)", soft_wrap=True, markup=False)


def show_leg(leg, as_json: bool, title: str) -> None:
    """One leg: JSON, or a table of its fields."""
    if as_json:
        print_json(leg)
        return
    console.print(fields_table(title, leg_rows(leg)))


def show_transfer(response, as_json: bool) -> None:
    """The leg a transfer ended, then the leg it opened."""
    if as_json:
        print_json(response)
        return
    console.print(fields_table("ended leg", leg_rows(response.ended)))
    console.print(fields_table("opened leg", leg_rows(response.opened)))


# A page of legs for people, in a narrow terminal: the id stays whole (commands take it); the
# time, priority, breach, department, status and case go in that order. A department sees only
# its own legs, so for it the department column is the same on every row and goes first.
LEG_COLUMNS = (Column("id"), Column("case", 1), Column("department", 3), Column("priority", 5),
               Column("status", 2, short=lambda text: SHORT_STATUS.get(text, text)), Column("breached", 4),
               Column("created", 6, short=short_time))


def show_legs(response, as_json: bool, wide: bool = False) -> None:
    """A page of legs: one row each, and how to get the next page."""
    if as_json:
        print_json(response)
        return
    show_rows(f"{len(response.handoffs)} handoffs", LEG_COLUMNS,
              [cells((leg.handoff_id, leg.case_id, leg.department, priority_text(leg.priority),
                      status_text(leg.status), _breached(leg), when(leg, "created_at"))) for leg in response.handoffs],
              wide)
    show_next_page(response)


def contact_rows(contact) -> list[tuple[str, str]]:
    return [
        ("contact_id", contact.contact_id),
        ("customer", contact.customer_ref),
        ("case", contact.case_id),
        ("channel", channel_text(contact.channel)),
        ("contacted", when(contact, "contacted_at")),
        ("reason", contact.reason),
    ]


def show_contact(contact, as_json: bool) -> None:
    if as_json:
        print_json(contact)
        return
    console.print(fields_table("contact recorded", contact_rows(contact)))


def _timeline_row(entry) -> tuple[str, ...]:
    if entry.WhichOneof("entry") == "contact":
        contact = entry.contact
        return (when(entry, "at"), "contact", contact.contact_id, contact.case_id,
                f"{channel_text(contact.channel)}: {contact.reason}".rstrip(": "))
    leg = entry.handoff
    return (when(entry, "at"), "leg", leg.handoff_id, leg.case_id,
            f"{leg.department}, {status_text(leg.status)}, {priority_text(leg.priority)}")


TIMELINE_COLUMNS = (Column("at", 3, short=short_time), Column("what", 2), Column("id"), Column("case", 1),
                    Column("detail", 4, flexible=True))


def show_timeline(timeline, as_json: bool, wide: bool = False) -> None:
    """A customer's contacts and legs in time order."""
    if as_json:
        print_json(timeline)
        return
    show_rows(f"timeline of {timeline.customer_ref}", TIMELINE_COLUMNS,
              [cells(_timeline_row(entry)) for entry in timeline.entries], wide)
