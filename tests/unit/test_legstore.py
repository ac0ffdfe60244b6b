"""LegStore: legs by id, fed by events, each event id applied once; breaches by leg, contacts
and legs by customer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handoff_svc.adapters.legstore import LegStore
from handoff_svc.domain.contacts import Channel, Contact
from handoff_svc.domain.legs import (
    AcknowledgeHandoff,
    CreateHandoff,
    HandoffCreated,
    Priority,
    ReopenHandoff,
    ResolveHandoff,
    Status,
    TransferHandoff,
    acknowledge,
    create,
    reopen,
    resolve,
    transfer,
)
from tests.unit.conftest import T0

CREATED = create(
    CreateHandoff("h-1", "case-1", "cust-1", "billing", Priority.NORMAL, "", "Refund", "agent-7"), T0
)
ACKNOWLEDGED = acknowledge(CREATED.leg, AcknowledgeHandoff("h-1", "billing-3"), T0 + timedelta(minutes=5))


def test_an_empty_store_knows_no_leg():
    store = LegStore()

    assert store.get("h-1") is None
    assert len(store) == 0
    assert not store.was_applied("e-1")


def test_applying_events_builds_the_leg_and_remembers_their_ids():
    # given
    store = LegStore()

    # when
    store.apply("e-created", CREATED)
    leg = store.apply("e-ack", ACKNOWLEDGED)

    # then
    assert leg.status is Status.ACKNOWLEDGED
    assert store.get("h-1") == leg
    assert len(store) == 1
    assert store.was_applied("e-created") and store.was_applied("e-ack")


def test_an_event_id_seen_again_is_not_applied_again():
    # given: a leg created and acknowledged, then the create echoed back from Kafka
    store = LegStore()
    store.apply("e-created", CREATED)
    acknowledged = store.apply("e-ack", ACKNOWLEDGED)

    # when
    after_echo = store.apply("e-created", CREATED)

    # then: the echo does not reopen the leg
    assert after_echo == acknowledged
    assert store.get("h-1").status is Status.ACKNOWLEDGED


def test_the_same_event_under_a_new_id_is_applied():
    store = LegStore()
    store.apply("e-created", CREATED)
    store.apply("e-ack", ACKNOWLEDGED)

    leg = store.apply("e-created-again", CREATED)

    assert leg.status is Status.OPEN


def test_an_event_that_cannot_be_applied_is_not_remembered_as_applied():
    # given: an acknowledgement read before the leg it acknowledges
    store = LegStore()
    with pytest.raises(ValueError):
        store.apply("e-ack", ACKNOWLEDGED)

    # then: it may be applied once the leg exists
    assert not store.was_applied("e-ack")
    store.apply("e-created", CREATED)
    assert store.apply("e-ack", ACKNOWLEDGED).status is Status.ACKNOWLEDGED


# Breaches --------------------------------------------------------------------------------


def test_a_leg_is_breached_once_a_breach_is_recorded_and_only_that_leg():
    # given
    store = LegStore()
    store.apply("e-created", CREATED)
    assert not store.is_breached("h-1")

    # when
    store.record_breach("h-1", T0 + timedelta(hours=1))
    store.record_breach("h-1", T0 + timedelta(hours=1))

    # then
    assert store.is_breached("h-1")
    assert not store.is_breached("h-2")


def test_a_breach_read_before_its_leg_still_counts_once_the_leg_arrives():
    # sla.events.v1 and handoff.events.v1 are read independently, so their order is not given.
    store = LegStore()

    store.record_breach("h-1", T0 + timedelta(hours=1))
    store.apply("e-created", CREATED)

    assert store.is_breached("h-1")


# Contacts --------------------------------------------------------------------------------


def contact(contact_id: str, customer_ref: str = "cust-1", minutes: int = 0, reason: str = "refund?") -> Contact:
    return Contact(contact_id, customer_ref, "case-1", Channel.CALL, T0 + timedelta(minutes=minutes), reason)


def test_contacts_are_kept_per_customer_in_arrival_order():
    # given
    store = LegStore()

    # when
    for recorded in (contact("c-1"), contact("c-2", "cust-2"), contact("c-3", minutes=30)):
        store.record_contact(recorded)

    # then
    assert [c.contact_id for c in store.customer_contacts("cust-1")] == ["c-1", "c-3"]
    assert store.customer_contacts("cust-2") == [contact("c-2", "cust-2")]
    assert store.customer_contacts("cust-3") == []


def test_a_contact_read_again_is_kept_once():
    store = LegStore()

    store.record_contact(contact("c-1"))
    store.record_contact(contact("c-1"))

    assert store.customer_contacts("cust-1") == [contact("c-1")]


def test_asking_for_an_unknown_customer_adds_nothing():
    store = LegStore()

    store.customer_contacts("cust-9")
    store.customer_legs("cust-9")

    assert (store.customer_contacts("cust-9"), store.customer_legs("cust-9"), len(store)) == ([], [], 0)


# Legs per customer -----------------------------------------------------------------------


def created_for(handoff_id: str, customer_ref: str):
    return create(CreateHandoff(handoff_id, "case-1", customer_ref, "billing", Priority.NORMAL, "", "s", "agent-7"), T0)


def test_a_customers_legs_are_listed_once_each_in_creation_order_as_they_are_now():
    # given
    store = LegStore()
    store.apply("e-1", created_for("h-1", "cust-1"))
    store.apply("e-2", created_for("h-2", "cust-2"))
    store.apply("e-3", created_for("h-3", "cust-1"))

    # when: h-1 changes after h-3 was created, and its create is replayed under a new id
    store.apply("e-4", acknowledge(store.get("h-1"), AcknowledgeHandoff("h-1", "billing-3"), T0 + timedelta(minutes=1)))
    store.apply("e-5", created_for("h-3", "cust-1"))

    # then
    legs = store.customer_legs("cust-1")
    assert [leg.handoff_id for leg in legs] == ["h-1", "h-3"]
    assert legs[0].status is Status.ACKNOWLEDGED
    assert [leg.handoff_id for leg in store.customer_legs("cust-2")] == ["h-2"]


def test_a_transfer_lists_both_legs_under_the_customer():
    # given
    store = LegStore()
    leg = store.apply("e-created", CREATED)
    command = TransferHandoff("h-1", "billing-3", to_department="collections", new_handoff_id="h-2")

    # when
    ended, opened = transfer(leg, command, T0 + timedelta(hours=1))
    store.apply("e-ended", ended)
    store.apply("e-opened", opened)

    # then
    legs = store.customer_legs("cust-1")
    assert [(leg.handoff_id, leg.status) for leg in legs] == [("h-1", Status.TRANSFERRED), ("h-2", Status.OPEN)]
    assert len(store) == 2
    assert {leg.handoff_id for leg in store.legs()} == {"h-1", "h-2"}


def test_a_refused_event_does_not_list_a_leg_for_the_customer():
    store = LegStore()

    with pytest.raises(ValueError):
        store.apply("e-ack", ACKNOWLEDGED)

    assert store.customer_legs("cust-1") == []


# Retention -------------------------------------------------------------------------------

HISTORY = timedelta(days=90)


def leg_created(number: int, customer_ref: str, at) -> HandoffCreated:
    return create(CreateHandoff(f"h-{number}", f"case-{number}", customer_ref, "billing", Priority.NORMAL, "",
                                "Refund", "agent-7"), at)


def resolved(created, at):
    return resolve(created.leg, ResolveHandoff(created.handoff_id, "billing-3"), at)


def test_a_closed_leg_is_forgotten_once_the_history_has_passed_its_close():
    # given a leg resolved at T0 + 1 h, breached and read with its events
    store = LegStore(HISTORY)
    created = leg_created(1, "cust-1", T0)
    store.apply("e-1", created)
    store.record_breach("h-1", T0 + timedelta(minutes=30))
    store.apply("e-2", resolved(created, T0 + timedelta(hours=1)))

    # when an event just inside the history is read, the leg is kept
    store.apply("e-3", leg_created(2, "cust-2", T0 + timedelta(hours=1) + HISTORY - timedelta(seconds=1)))
    assert store.get("h-1") is not None and store.is_breached("h-1")

    # when an event at the end of its history is read
    store.record_contact(contact("c-9", "cust-2", minutes=60 + int(HISTORY.total_seconds() // 60)))

    # then the leg, its breach mark, its event ids and its customer's index are gone
    assert store.get("h-1") is None
    assert not store.is_breached("h-1")
    assert not store.was_applied("e-1") and not store.was_applied("e-2")
    assert store.customer_legs("cust-1") == []
    assert store.get("h-2") is not None


def test_an_open_leg_is_kept_however_old():
    store = LegStore(HISTORY)
    store.apply("e-1", leg_created(1, "cust-1", T0))
    store.record_contact(contact("c-1", "cust-2", minutes=10 * int(HISTORY.total_seconds() // 60)))
    assert store.get("h-1").status is Status.OPEN


def test_a_leg_reopened_within_the_history_is_kept():
    # given a leg resolved, then reopened a day later
    store = LegStore(HISTORY)
    created = leg_created(1, "cust-1", T0)
    store.apply("e-1", created)
    done = resolved(created, T0 + timedelta(hours=1))
    store.apply("e-2", done)
    store.apply("e-3", reopen(store.get("h-1"), ReopenHandoff("h-1", "agent-7"), T0 + timedelta(days=1)))

    # when the resolution's history has passed
    store.record_contact(contact("c-1", "cust-2", minutes=int((HISTORY + timedelta(days=2)).total_seconds() // 60)))

    # then the reopened (open) leg is still there
    assert store.get("h-1").status is Status.REOPENED


def test_a_late_change_of_a_forgotten_leg_is_refused_not_half_applied():
    # given a leg forgotten after its history
    store = LegStore(HISTORY)
    created = leg_created(1, "cust-1", T0)
    store.apply("e-1", created)
    store.apply("e-2", resolved(created, T0 + timedelta(hours=1)))
    store.record_contact(contact("c-1", "cust-2", minutes=int((HISTORY + timedelta(days=1)).total_seconds() // 60)))
    assert store.get("h-1") is None

    # when a change of it is read (a replay, a late record)
    with pytest.raises(ValueError):
        store.apply("e-4", acknowledge(created.leg, AcknowledgeHandoff("h-1", "billing-3"), T0 + timedelta(days=91)))

    # then nothing of it is kept
    assert store.get("h-1") is None and not store.was_applied("e-4")


def test_memory_levels_off_when_closed_legs_and_contacts_pass_the_history():
    # given a year of closed, breached legs and contacts, one customer each, a day apart
    store = LegStore(HISTORY)
    for day in range(365):
        at = T0 + timedelta(days=day)
        created = leg_created(day, f"cust-{day}", at)
        store.apply(f"e-{day}-1", created)
        store.record_breach(f"h-{day}", at + timedelta(minutes=30))
        store.record_contact(contact(f"c-{day}", f"cust-{day}", minutes=day * 24 * 60))
        store.apply(f"e-{day}-2", resolved(created, at + timedelta(hours=1)))
    # and breaches of legs the store never read
    store.record_breach("h-unknown", T0)

    # then only the last history's worth (90 days) is held, in every structure
    sizes = store.sizes()
    assert sizes["legs"] == sizes["customers"] == sizes["event_ids"] == sizes["breached"] == 90
    assert sizes["applied"] == 2 * 90
    assert sizes["contacts"] == 90
    assert not store.is_breached("h-unknown")
    assert sizes["expiries"] == 3 * 90
