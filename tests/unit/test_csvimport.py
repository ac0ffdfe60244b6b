"""Historical import from CSV (docs/csv-import.md): every bad row reported with its line and
reason, good rows turned into the domain events the service would have written, in
event-time order, with ids derived from the rows."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from common.auth import customer_ref_for
from common.ids import derived_event_id
from handoff_svc.adapters import csvimport
from handoff_svc.adapters.csvimport import CONTACT_COLUMNS, HANDOFF_COLUMNS
from handoff_svc.domain import legs
from handoff_svc.domain.contacts import Channel, ContactRecorded
from handoff_svc.entrypoints.importer import ImportRejected

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
KEY = b"0123456789abcdef-test-key"
LEG = dict(
    handoff_id="H-1", case_id="CASE-1", customer_ref="cust-1", department="billing", priority="high",
    category="refund", summary="Refund, not received", created_at="2025-03-03T09:00:00+01:00",
    acknowledged_at="2025-03-03T09:20:00+01:00", resolved_at="2025-03-04T10:00:00Z", cancelled_at="",
    transferred_to="", next_handoff_id="", previous_handoff_id="",
)
CONTACT = dict(contact_id="K-1", customer_ref="cust-1", case_id="CASE-1", channel="call",
               contacted_at="2025-03-03T08:55:00+01:00", reason="refund missing")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def csv_text(columns, rows: list[dict]) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if "," in value else value
    return "\n".join([",".join(columns)] + [",".join(cell(row[c]) for c in columns) for row in rows]) + "\n"


def leg(**changes: str) -> dict:
    return {**LEG, **changes}


def contact(**changes: str) -> dict:
    return {**CONTACT, **changes}


@pytest.fixture
def files(tmp_path: Path):
    """Write handoffs and/or contacts rows (dicts, or raw text) and validate them."""

    def check(handoffs=None, contacts=None, key: bytes | None = None) -> csvimport.ImportPlan:
        paths = []
        inputs = (("legs.csv", HANDOFF_COLUMNS, handoffs), ("contacts.csv", CONTACT_COLUMNS, contacts))
        for name, columns, rows in inputs:
            if rows is None:
                paths.append(None)
                continue
            path = tmp_path / name
            path.write_text(rows if isinstance(rows, str) else csv_text(columns, rows), encoding="utf-8")
            paths.append(path)
        return csvimport.validate(paths[0], paths[1], NOW, key)

    return check


def problems(plan: csvimport.ImportPlan) -> list[str]:
    """Errors without the directory, e.g. 'legs.csv:2: priority: ...'."""
    return [str(error).rpartition("/")[2] for error in plan.errors]


# Good rows become events --------------------------------------------------------------


def test_a_resolved_leg_becomes_created_acknowledged_resolved_at_its_own_times(files):
    plan = files(handoffs=[leg()])

    events = plan.events()

    assert problems(plan) == []
    assert [type(item.event) for item in events] == [
        legs.HandoffCreated, legs.HandoffAcknowledged, legs.HandoffResolved]
    assert [item.at for item in events] == [utc(2025, 3, 3, 8, 0), utc(2025, 3, 3, 8, 20), utc(2025, 3, 4, 10, 0)]
    created = events[0].event.leg
    assert (created.handoff_id, created.case_id, created.customer_ref, created.department) == (
        "H-1", "CASE-1", "cust-1", "billing")
    assert (created.priority, created.category, created.summary) == (
        legs.Priority.HIGH, "refund", "Refund, not received")
    assert created.created_by == "import"
    assert all(item.customer_ref == "cust-1" for item in events)
    assert [item.event.at for item in events] == [item.at for item in events]


def test_event_ids_derive_from_the_row_so_a_second_reading_yields_the_same_ids(files):
    first = [item.event_id for item in files(handoffs=[leg()], contacts=[contact()]).events()]
    second = [item.event_id for item in files(handoffs=[leg()], contacts=[contact()]).events()]

    assert first == second
    assert len(set(first)) == 4
    assert first[1] == derived_event_id("import", "H-1", "created")


def test_a_transfer_ends_the_leg_when_the_next_leg_is_created_and_comes_first_at_that_instant(files):
    plan = files(handoffs=[
        leg(resolved_at="", transferred_to="field-service", next_handoff_id="H-2"),
        leg(handoff_id="H-2", department="field-service", created_at="2025-03-03T10:00:00Z",
            acknowledged_at="2025-03-03T10:00:00Z", resolved_at="", previous_handoff_id="H-1"),
    ])

    events = [(type(item.event).__name__, item.event.handoff_id, item.at) for item in plan.events()]

    assert problems(plan) == []
    assert events == [
        ("HandoffCreated", "H-1", utc(2025, 3, 3, 8, 0)),
        ("HandoffAcknowledged", "H-1", utc(2025, 3, 3, 8, 20)),
        ("HandoffTransferred", "H-1", utc(2025, 3, 3, 10, 0)),
        ("HandoffCreated", "H-2", utc(2025, 3, 3, 10, 0)),
        ("HandoffAcknowledged", "H-2", utc(2025, 3, 3, 10, 0)),
    ]
    transferred, opened = plan.events()[2].event, plan.events()[3].event
    assert (transferred.to_department, transferred.new_handoff_id) == ("field-service", "H-2")
    assert opened.leg.previous_handoff_id == "H-1"


def test_a_transfer_listed_after_its_next_leg_still_comes_first(files):
    plan = files(handoffs=[
        leg(handoff_id="H-2", department="field-service", created_at="2025-03-03T10:00:00Z",
            acknowledged_at="", resolved_at="", previous_handoff_id="H-1"),
        leg(resolved_at="", transferred_to="field-service", next_handoff_id="H-2"),
    ])

    kinds = [(type(item.event).__name__, item.event.handoff_id) for item in plan.events()]

    assert kinds[-2:] == [("HandoffTransferred", "H-1"), ("HandoffCreated", "H-2")]


def test_events_of_both_files_and_all_customers_are_in_event_time_order_whatever_the_offsets(files):
    plan = files(
        handoffs=[
            leg(acknowledged_at="", resolved_at=""),  # 08:00Z
            leg(handoff_id="H-2", customer_ref="cust-2", created_at="2025-03-03T08:30:00Z",
                acknowledged_at="", resolved_at="", cancelled_at="2025-03-03T07:45:00-02:00"),  # 09:45Z
        ],
        contacts=[
            contact(contact_id="K-2", contacted_at="2025-03-03T09:40:00+01:00"),  # 08:40Z
            contact(),  # 07:55Z
        ],
    )

    order = [(type(item.event).__name__, item.at) for item in plan.events()]

    assert order == [
        ("ContactRecorded", utc(2025, 3, 3, 7, 55)),
        ("HandoffCreated", utc(2025, 3, 3, 8, 0)),
        ("HandoffCreated", utc(2025, 3, 3, 8, 30)),
        ("ContactRecorded", utc(2025, 3, 3, 8, 40)),
        ("HandoffCancelled", utc(2025, 3, 3, 9, 45)),
    ]


def test_a_contact_row_becomes_contact_recorded(files):
    plan = files(contacts=[contact(channel="Chat", case_id="")])

    (item,) = plan.events()

    assert isinstance(item.event, ContactRecorded)
    recorded = item.event.contact
    assert (recorded.contact_id, recorded.customer_ref, recorded.case_id, recorded.channel, recorded.reason) == (
        "K-1", "cust-1", "", Channel.CHAT, "refund missing")
    assert recorded.contacted_at == utc(2025, 3, 3, 7, 55)
    assert item.event_id == derived_event_id("import", "contact", "K-1", "recorded")


def test_an_empty_priority_is_normal_and_values_ignore_case_and_surrounding_spaces(files):
    plan = files(handoffs=[leg(priority="", department=" billing "), leg(handoff_id="H-2", priority="URGENT")])

    priorities = [item.event.leg.priority for item in plan.events() if isinstance(item.event, legs.HandoffCreated)]

    assert problems(plan) == []
    assert priorities == [legs.Priority.NORMAL, legs.Priority.URGENT]


def test_an_open_leg_is_only_created(files):
    plan = files(handoffs=[leg(acknowledged_at="", resolved_at="")])

    assert [type(item.event) for item in plan.events()] == [legs.HandoffCreated]


def test_a_raw_customer_id_is_pseudonymised_and_never_kept(files):
    columns = [c for c in HANDOFF_COLUMNS if c != "customer_ref"] + ["customer_id"]
    text = csv_text(columns, [leg(customer_id="+44 7700 900123")])

    plan = files(handoffs=text, key=KEY)

    assert problems(plan) == []
    refs = {item.customer_ref for item in plan.events()} | {item.event.leg.customer_ref for item in plan.events()[:1]}
    assert refs == {customer_ref_for("+44 7700 900123", KEY)}
    assert "900123" not in repr(plan)


def test_a_bad_row_never_shows_a_raw_customer_id(files):
    columns = HANDOFF_COLUMNS + ("customer_id",)

    plan = files(handoffs=csv_text(columns, [leg(customer_id="+44 7700 900123")]), key=KEY)

    assert problems(plan) == ["legs.csv:2: customer_id: give customer_ref or customer_id, not both"]
    assert all("900123" not in line for line in problems(plan))


# Bad rows: each reported with its line, column and reason --------------------------------

BAD_LEGS = [
    (dict(handoff_id=""), "handoff_id: is required"),
    (dict(handoff_id="has space"), "handoff_id: must be 1-128 letters"),
    (dict(case_id=""), "case_id: is required"),
    (dict(customer_ref=""), "customer_ref: is required"),
    (dict(department="Billing Team"), "department: must be lower case"),
    (dict(priority="hgh"), "priority: 'hgh' is not one of low|normal|high|urgent"),
    (dict(category="Refund!"), "category: must be lower case"),
    (dict(summary="x" * 501), "summary: is 501 characters; at most 500"),
    (dict(created_at=""), "created_at: is required"),
    (dict(created_at="yesterday"), "created_at: 'yesterday' is not an ISO 8601 time"),
    (dict(created_at="2025-03-03T09:00:00"), "created_at: '2025-03-03T09:00:00' has no UTC offset"),
    (dict(created_at="2025-03-03"), "created_at: '2025-03-03' has no UTC offset"),
    (dict(created_at="2025-13-03T09:00:00Z"), "created_at: '2025-13-03T09:00:00Z' is not an ISO 8601 time"),
    (dict(created_at="2025-07-01T00:00:00Z", acknowledged_at="", resolved_at=""), "created_at: lies in the future"),
    (dict(acknowledged_at="2025-03-03T07:59:00Z"), "acknowledged_at: is before created_at"),
    (dict(resolved_at="2025-03-03T08:10:00Z"), "resolved_at: is before acknowledged_at"),
    (dict(acknowledged_at="", resolved_at="2025-03-03T07:00:00Z"), "resolved_at: is before created_at"),
    (dict(resolved_at="", cancelled_at="2025-03-03T08:19:59Z"), "cancelled_at: is before acknowledged_at"),
    (dict(cancelled_at="2025-03-05T00:00:00Z"),
     "cancelled_at: a leg ends at most one way, and this row also gives resolved_at"),
    (dict(transferred_to="claims", next_handoff_id="H-9"),
     "transferred_to: a leg ends at most one way, and this row also gives resolved_at"),
    (dict(resolved_at="", transferred_to="claims"), "next_handoff_id: is required with transferred_to"),
    (dict(resolved_at="", next_handoff_id="H-9"), "transferred_to: is required with next_handoff_id"),
    (dict(previous_handoff_id="H-1"), "previous_handoff_id: names the leg itself"),
    (dict(resolved_at="", transferred_to="claims", next_handoff_id="H-9"),
     "next_handoff_id: leg 'H-9' is not in this file; a transfer happens when the next leg is created"),
]


@pytest.mark.parametrize("changes, reason", BAD_LEGS, ids=[f"{n}-{r.split(':')[0]}" for n, (_, r) in enumerate(BAD_LEGS)])
def test_a_bad_leg_row_is_reported_with_its_line_column_and_reason(files, changes, reason):
    plan = files(handoffs=[leg(handoff_id="H-0"), leg(**changes)])

    assert len(plan.errors) == 1
    assert problems(plan)[0].startswith(f"legs.csv:3: {reason}")


BAD_CONTACTS = [
    (dict(contact_id=""), "contact_id: is required"),
    (dict(customer_ref="a/b"), "customer_ref: must be 1-128 letters"),
    (dict(case_id="case 1"), "case_id: must be 1-128 letters"),
    (dict(channel="fax"), "channel: 'fax' is not one of call|chat|email|messaging"),
    (dict(channel=""), "channel: '' is not one of call|chat|email|messaging"),
    (dict(contacted_at=""), "contacted_at: is required"),
    (dict(contacted_at="2025-03-03 08:55"), "contacted_at: '2025-03-03 08:55' has no UTC offset"),
    (dict(reason="r" * 1001), "reason: is 1001 characters; at most 1000"),
]


@pytest.mark.parametrize("changes, reason", BAD_CONTACTS, ids=[reason.split(":")[0] for _, reason in BAD_CONTACTS])
def test_a_bad_contact_row_is_reported_with_its_line_column_and_reason(files, changes, reason):
    plan = files(contacts=[contact(contact_id="K-0"), contact(**changes)])

    assert len(plan.errors) == 1
    assert problems(plan)[0].startswith(f"contacts.csv:3: {reason}")


def test_every_problem_of_every_row_of_both_files_is_reported_in_line_order(files):
    plan = files(
        handoffs=[leg(handoff_id="H-0"), leg(priority="hgh", department="Billing"), leg(handoff_id="H-2"),
                  leg(handoff_id="H-0")],
        contacts=[contact(channel="fax"), contact(contact_id="K-2")],
    )

    assert problems(plan) == [
        "legs.csv:3: department: must be lower case letters, digits, _ or - (up to 64, starting with a letter)",
        "legs.csv:3: priority: 'hgh' is not one of low|normal|high|urgent",
        "legs.csv:5: handoff_id: 'H-0' already appears on line 2",
        "contacts.csv:2: channel: 'fax' is not one of call|chat|email|messaging",
    ]


def test_a_repeated_contact_id_is_reported_at_its_second_line(files):
    plan = files(contacts=[contact(), contact(contact_id="K-2"), contact()])

    assert problems(plan) == ["contacts.csv:4: contact_id: 'K-1' already appears on line 2"]


TRANSFER = dict(resolved_at="", transferred_to="field-service", next_handoff_id="H-2")
NEXT = dict(handoff_id="H-2", department="field-service", created_at="2025-03-03T10:00:00Z",
            acknowledged_at="", resolved_at="", previous_handoff_id="H-1")
BAD_LINKS = [
    (dict(), dict(previous_handoff_id=""),
     ["legs.csv:2: next_handoff_id: leg H-2 (line 3) does not name this leg as its previous_handoff_id"]),
    (dict(), dict(department="claims"),
     ["legs.csv:2: transferred_to: is 'field-service' but leg H-2 (line 3) is for 'claims'"]),
    (dict(), dict(case_id="CASE-2"),
     ["legs.csv:2: case_id: differs from that of leg H-2 (line 3); a transfer keeps the case and customer"]),
    (dict(), dict(customer_ref="cust-2"),
     ["legs.csv:2: customer_ref: differs from that of leg H-2 (line 3); a transfer keeps the case and customer"]),
    (dict(), dict(created_at="2025-03-03T08:10:00Z"),
     ["legs.csv:2: next_handoff_id: leg H-2 (line 3) is created before this leg's acknowledged_at; "
      "the transfer happens then"]),
    (dict(transferred_to="", next_handoff_id="", resolved_at="2025-03-04T10:00:00Z"), dict(),
     ["legs.csv:3: previous_handoff_id: leg H-1 (line 2) does not name this leg as its next_handoff_id"]),
]


@pytest.mark.parametrize("first, second, expected", BAD_LINKS)
def test_linked_legs_must_agree(files, first, second, expected):
    plan = files(handoffs=[leg(**{**TRANSFER, **first}), leg(**{**NEXT, **second})])

    assert problems(plan) == expected


def test_a_previous_leg_outside_the_file_is_accepted(files):
    plan = files(handoffs=[leg(previous_handoff_id="H-0-imported-last-month")])

    assert problems(plan) == []


def test_a_transfer_to_a_bad_row_reports_only_that_row(files):
    plan = files(handoffs=[leg(**TRANSFER), leg(**{**NEXT, "priority": "hgh"})])

    assert problems(plan) == ["legs.csv:3: priority: 'hgh' is not one of low|normal|high|urgent"]


def test_a_transfer_chain_that_loops_is_refused(files):
    at = "2025-03-03T08:00:00Z"
    plan = files(handoffs=[
        leg(handoff_id="H-1", created_at=at, acknowledged_at="", resolved_at="", department="billing",
            transferred_to="claims", next_handoff_id="H-2", previous_handoff_id="H-2"),
        leg(handoff_id="H-2", created_at=at, acknowledged_at="", resolved_at="", department="claims",
            transferred_to="billing", next_handoff_id="H-1", previous_handoff_id="H-1"),
    ])

    assert sorted(problems(plan)) == [
        "legs.csv:2: previous_handoff_id: the transfer chain loops",
        "legs.csv:3: previous_handoff_id: the transfer chain loops",
    ]


# Headers and file shapes ------------------------------------------------------------------


def header_problems(files, header: str) -> list[str]:
    return problems(files(handoffs=header + "\nH-1\n"))


def test_an_unknown_column_is_refused_with_the_expected_columns(files):
    found = header_problems(files, ",".join(HANDOFF_COLUMNS + ("owner",)))

    assert found == ["legs.csv:1: header: unknown column 'owner'; the columns are: " + ", ".join(HANDOFF_COLUMNS)
                     + " (or customer_id for customer_ref); optional: priority_changed_at, changed_priority"]


def test_missing_columns_are_named(files):
    found = header_problems(files, ",".join(c for c in HANDOFF_COLUMNS if c not in ("created_at", "summary")))

    assert found == ["legs.csv:1: header: missing columns summary, created_at"]


def test_a_repeated_column_is_refused(files):
    found = header_problems(files, ",".join(HANDOFF_COLUMNS + ("summary",)))

    assert found == ["legs.csv:1: header: column 'summary' appears more than once"]


def test_a_file_without_a_header_row_is_refused(files):
    found = problems(files(handoffs=csv_text(HANDOFF_COLUMNS, [leg()]).split("\n", 1)[1]))

    assert found == ["legs.csv:1: header: the first line is not a header; it must name the columns: "
                     + ", ".join(HANDOFF_COLUMNS)]


def test_an_empty_file_is_refused(files):
    assert problems(files(contacts="")) == [
        "contacts.csv:1: header: the file is empty; the first line must be the header: " + ", ".join(CONTACT_COLUMNS)]


def test_raw_customer_ids_without_a_key_are_refused_at_the_header(files):
    columns = [c for c in CONTACT_COLUMNS if c != "customer_ref"] + ["customer_id"]

    found = problems(files(contacts=csv_text(columns, [contact(customer_id="alice@example.com")])))

    assert len(found) == 1
    assert found[0].startswith("contacts.csv:1: header: column customer_id holds raw customer ids")


def test_columns_may_come_in_any_order(files):
    columns = tuple(reversed(HANDOFF_COLUMNS))

    plan = files(handoffs=csv_text(columns, [leg()]))

    assert problems(plan) == []
    assert len(plan.events()) == 3


def test_a_byte_order_mark_and_crlf_line_ends_are_read_like_plain_text(tmp_path: Path):
    path = tmp_path / "legs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(HANDOFF_COLUMNS, [leg(), leg(handoff_id="H-2", priority="hgh")])
                     .replace("\n", "\r\n").encode())

    plan = csvimport.validate(path, None, NOW)

    assert [str(error).rpartition("/")[2] for error in plan.errors] == [
        "legs.csv:3: priority: 'hgh' is not one of low|normal|high|urgent"]
    assert [row.leg.handoff_id for row in plan.legs] == ["H-1"]


def test_a_quoted_value_over_two_lines_keeps_later_line_numbers_right(files):
    plan = files(handoffs=[leg(summary='"first line\nsecond line"'), leg(handoff_id="H-2", priority="hgh")])

    assert problems(plan) == ["legs.csv:4: priority: 'hgh' is not one of low|normal|high|urgent"]
    assert plan.legs[0].leg.summary == "first line\nsecond line"


def test_blank_lines_are_skipped_and_a_short_row_is_reported(files):
    text = csv_text(CONTACT_COLUMNS, [contact()]) + "\n\nK-9,cust-9,call\n"

    plan = files(contacts=text)

    assert problems(plan) == ["contacts.csv:5: has 3 fields; the header has 6"]
    assert len(plan.contacts) == 1


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path):
    path = tmp_path / "contacts.csv"
    path.write_bytes(csv_text(CONTACT_COLUMNS, [contact(reason="caf\u00e9")]).encode("latin-1"))

    plan = csvimport.validate(None, path, NOW)

    assert [str(error) for error in plan.errors] == [f"{path}:2: is not UTF-8 text; save the file as UTF-8"]


def test_a_missing_file_is_reported(tmp_path: Path):
    plan = csvimport.validate(tmp_path / "nope.csv", None, NOW)

    assert [str(error) for error in plan.errors] == [f"{tmp_path / 'nope.csv'}: cannot read: No such file or directory"]


def test_a_short_customer_ref_key_is_refused_before_reading():
    with pytest.raises(ValueError, match="at least 16"):
        csvimport.validate(None, None, NOW, customer_ref_key=b"short")


def test_the_rejection_lists_the_first_50_problems_then_counts_the_rest(files):
    plan = files(contacts=[contact(contact_id=f"K-{n}", channel="fax") for n in range(60)])

    listing = ImportRejected(plan.errors).listing()

    assert len(listing) == 51
    assert listing[0] == f"{plan.errors[0]}"
    assert listing[0].endswith("contacts.csv:2: channel: 'fax' is not one of call|chat|email|messaging")
    assert listing[-1] == "... and 10 more"
    assert str(ImportRejected(plan.errors)) == "60 problems found; nothing was written"


# A priority change (optional columns) ------------------------------------------------------

WITH_PRIORITY_CHANGE = HANDOFF_COLUMNS + csvimport.OPTIONAL_HANDOFF_COLUMNS


def changed(**changes: str) -> str:
    """A handoffs file with the optional priority-change columns and one leg."""
    return csv_text(WITH_PRIORITY_CHANGE, [leg(**{"priority": "normal", "priority_changed_at": "",
                                                  "changed_priority": "", **changes})])


def test_a_priority_change_becomes_its_event_at_its_time_among_the_legs_events(files):
    plan = files(handoffs=changed(priority_changed_at="2025-03-03T12:00:00Z", changed_priority="urgent"))

    events = plan.events()

    assert problems(plan) == []
    assert [type(item.event) for item in events] == [
        legs.HandoffCreated, legs.HandoffAcknowledged, legs.HandoffPriorityChanged, legs.HandoffResolved]
    assert events[2].at == events[2].event.at == utc(2025, 3, 3, 12, 0)
    assert (events[2].event.from_priority, events[2].event.to_priority) == (legs.Priority.NORMAL, legs.Priority.URGENT)


def test_a_file_without_the_priority_change_columns_still_reads(files):
    assert problems(files(handoffs=[leg()])) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        (dict(priority_changed_at="2025-03-03T12:00:00Z"), "changed_priority: is required with priority_changed_at"),
        (dict(changed_priority="high"), "priority_changed_at: is required with changed_priority"),
        (dict(priority_changed_at="2025-03-03T12:00:00Z", changed_priority="normal"),
         "changed_priority: is the leg's priority already (normal)"),
        (dict(priority_changed_at="2025-03-03T07:00:00Z", changed_priority="high"),
         "priority_changed_at: is before created_at"),
        (dict(priority_changed_at="2025-03-05T07:00:00Z", changed_priority="high"),
         "priority_changed_at: is after resolved_at; the leg had ended"),
        (dict(priority_changed_at="2025-03-03T12:00:00Z", changed_priority="highest"),
         "changed_priority: 'highest' is not one of low|normal|high|urgent"),
    ],
    ids=["time-without-priority", "priority-without-time", "same-priority", "before-creation", "after-the-end",
         "unknown-priority"],
)
def test_a_bad_priority_change_is_named(files, change, problem):
    assert problems(files(handoffs=changed(**change))) == [f"legs.csv:2: {problem}"]
