"""sla.adapters.customers: a customer's repeat-contact record <-> its JSON store value."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sla.adapters.customers import CustomerRecord, decode_customer, encode_customer
from sla.domain.repeats import CANCELLED, REOPENED, RESOLVED, TRANSFERRED, Contact, LegHistory
from tests.unit.conftest import T0

CUSTOMER = "cust-1"
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
BERLIN = ZoneInfo("Europe/Berlin")


def contact(contact_id: str, at, case_id: str = "case-1", channel: str = "call") -> Contact:
    return Contact(contact_id, CUSTOMER, case_id, channel, at)


def round_trip(record: CustomerRecord) -> CustomerRecord:
    """Through the table's JSON, as the RocksDB store and its changelog keep it."""
    payload, _ = encode_customer(record)
    return decode_customer(CUSTOMER, json.loads(payload))


RECORDS = {
    "empty": CustomerRecord(partition=0),
    "contacts": CustomerRecord(
        partition=3,
        contacts=(contact("c-1", T0), contact("c-2", T0 + HOUR, case_id="", channel="chat")),
    ),
    "pending": CustomerRecord(
        partition=1,
        contacts=(contact("c-1", T0),),
        pending=(contact("c-2", T0 + DAY, channel="email"), contact("c-3", T0 + DAY + MIN, channel="messaging")),
    ),
    "legs-with-changes-and-breaches": CustomerRecord(
        partition=2,
        legs=(
            LegHistory("h-1", "case-1", "billing", T0),
            LegHistory("h-2", "case-1", "billing", T0 + MIN,
                       ((T0 + HOUR, RESOLVED), (T0 + 2 * HOUR, REOPENED), (T0 + 3 * HOUR, RESOLVED)),
                       breached_at=T0 + 30 * MIN),
            LegHistory("h-3", "case-2", "claims", T0 + 2 * MIN, ((T0 + DAY, TRANSFERRED),)),
            LegHistory("h-4", "case-2", "field-service", T0 + DAY, ((T0 + 2 * DAY, CANCELLED),),
                       breached_at=T0 + DAY + HOUR),
        ),
    ),
    "everything-in-local-time-with-microseconds": CustomerRecord(
        partition=7,
        contacts=(contact("c-1", (T0 + timedelta(microseconds=17)).astimezone(BERLIN)),),
        pending=(contact("c-2", (T0 + DAY).astimezone(timezone(timedelta(hours=-5)))),),
        legs=(
            LegHistory("h-1", "case-1", "billing", T0.astimezone(BERLIN),
                       ((T0.astimezone(BERLIN) + HOUR, RESOLVED),), breached_at=(T0 + MIN).astimezone(BERLIN)),
        ),
    ),
}


@pytest.mark.parametrize("record", RECORDS.values(), ids=RECORDS.keys())
def test_a_customer_record_survives_a_round_trip_through_a_json_table_value(record):
    # when
    decoded = round_trip(record)

    # then the same record, equal field by field
    assert decoded == record
    assert decoded.partition == record.partition
    assert [c.customer_ref for c in (*decoded.contacts, *decoded.pending)] == [CUSTOMER] * (
        len(record.contacts) + len(record.pending))


def test_instants_come_back_timezone_aware_in_utc_as_the_same_instant_to_the_microsecond():
    # given a record whose instants carry UTC, Berlin and UTC-5 offsets
    record = RECORDS["everything-in-local-time-with-microseconds"]

    # when
    decoded = round_trip(record)

    # then every instant is aware, the same instant, kept in UTC
    instants = [
        decoded.contacts[0].contacted_at, decoded.pending[0].contacted_at, decoded.legs[0].created_at,
        decoded.legs[0].changes[0][0], decoded.legs[0].breached_at,
    ]
    originals = [
        record.contacts[0].contacted_at, record.pending[0].contacted_at, record.legs[0].created_at,
        record.legs[0].changes[0][0], record.legs[0].breached_at,
    ]
    assert all(at.tzinfo is not None for at in instants)
    assert instants == originals
    assert all(at.utcoffset() == timedelta(0) for at in instants)
    assert decoded.contacts[0].contacted_at.microsecond == 17


def test_a_leg_comes_back_with_its_changes_in_order_as_tuples_it_can_compare():
    # given a leg resolved, reopened and resolved again, which breached
    record = RECORDS["legs-with-changes-and-breaches"]

    # when
    leg = round_trip(record).legs[1]

    # then the changes are (instant, change) tuples in time order and the breach is kept
    assert leg.changes == ((T0 + HOUR, RESOLVED), (T0 + 2 * HOUR, REOPENED), (T0 + 3 * HOUR, RESOLVED))
    assert all(isinstance(change, tuple) for change in leg.changes)
    assert leg.breached_at == T0 + 30 * MIN
    # and the decoded leg answers as the original does
    assert leg.resolved_at(T0 + 4 * HOUR) == T0 + 3 * HOUR
    assert leg.is_open_at(T0 + 150 * MIN)


def test_a_leg_that_never_breached_comes_back_without_a_breach():
    assert round_trip(RECORDS["legs-with-changes-and-breaches"]).legs[0].breached_at is None


def test_the_table_value_names_its_partition_for_the_rebuild():
    # the tracker's rebuild reads the partition from the raw value, without decoding the rest
    assert json.loads(encode_customer(RECORDS["pending"])[0])["p"] == 1


@pytest.mark.parametrize(
    "contact_id, known",
    [("c-1", True), ("c-2", True), ("c-3", True), ("c-4", False), ("", False)],
    ids=["examined", "pending", "pending-second", "unknown", "empty-id"],
)
def test_a_record_knows_the_contacts_it_has_examined_or_holds_pending(contact_id, known):
    assert RECORDS["pending"].knows_contact(contact_id) is known


def test_an_empty_record_knows_no_contact():
    assert not CustomerRecord(partition=0).knows_contact("c-1")


def test_a_record_does_not_take_a_leg_id_for_a_contact_id():
    record = CustomerRecord(partition=0, legs=(LegHistory("c-1", "case-1", "billing", T0),))

    assert not record.knows_contact("c-1")


def test_a_later_write_reuses_the_forms_of_unchanged_legs_and_writes_the_same_bytes():
    # given a customer's record written once
    before = RECORDS["legs-with-changes-and-breaches"]
    _, known = encode_customer(before)

    # when one leg breaches (a new object), one is added and the rest stay the very same objects
    changed = before.legs[0].with_breach(T0 + HOUR)
    added = LegHistory("h-5", "case-3", "billing", T0 + 3 * DAY)
    after = before._replace(legs=(changed, *before.legs[1:], added))
    payload, forms = encode_customer(after, known)

    # then the unchanged legs keep their forms, the others get new ones
    reused = dict(zip(map(id, known.legs), known.forms))
    assert [reused.get(id(leg)) is form for leg, form in zip(forms.legs, forms.forms)] == [
        False, True, True, True, False]
    # and the value is what a write without any known forms gives, and reads back as the record
    assert payload == encode_customer(after)[0]
    assert decode_customer(CUSTOMER, json.loads(payload)) == after


@pytest.mark.parametrize("name", ["empty", "contacts", "legs-with-changes-and-breaches"])
def test_a_leg_added_is_appended_to_the_known_forms_and_the_bytes_are_those_of_a_fresh_write(name):
    # given a customer's record written once, with or without legs
    before = RECORDS[name]
    _, known = encode_customer(before)

    # when a leg is created for the customer (the common case: every other leg unchanged)
    after = before._replace(legs=(*before.legs, LegHistory("h-new", "case-9", "billing", T0 + 3 * DAY)))
    payload, forms = encode_customer(after, known)

    # then the earlier forms are kept as they were, one is added, and the value is unchanged
    assert forms.forms[:-1] == known.forms and all(a is b for a, b in zip(forms.forms, known.forms))
    assert len(forms.forms) == len(after.legs)
    assert payload == encode_customer(after)[0]
    assert decode_customer(CUSTOMER, json.loads(payload)) == after
    # and the next write of that customer starts from these forms in turn
    again = after._replace(legs=(*after.legs, LegHistory("h-next", "case-9", "billing", T0 + 4 * DAY)))
    assert encode_customer(again, forms)[0] == encode_customer(again)[0]


def test_a_write_that_changes_only_contacts_reuses_every_form():
    before = RECORDS["legs-with-changes-and-breaches"]
    _, known = encode_customer(before)

    after = before._replace(contacts=(contact("c-9", T0 + DAY),))
    payload, forms = encode_customer(after, known)

    assert forms.forms is known.forms
    assert payload == encode_customer(after)[0]


def test_legs_removed_by_pruning_drop_their_forms():
    before = RECORDS["legs-with-changes-and-breaches"]
    _, known = encode_customer(before)

    after = before._replace(legs=before.legs[1:])
    payload, forms = encode_customer(after, known)

    assert len(forms.forms) == len(after.legs)
    assert payload == encode_customer(after)[0]
