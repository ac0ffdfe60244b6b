"""sla's state stays bounded: a leg whose clocks all stopped, and a customer with nothing open
or waiting, are forgotten the repeat window after the last thing that happened to them, on
wall time and on event time; an open leg or a waiting contact keeps them, and on event time
so do contacts not read that far yet."""

from __future__ import annotations

import pytest

from common.streams.store import ChangelogStore
from tests.unit.conftest import T0
from tests.unit.test_repeat_tracker import (
    CAUSE, CUSTOMER, DAY, EVENT, H, MIN, MODES, OTHER, RULES, WALL, Worker, contact, created, resolved, summary,
)

WINDOW = RULES.window


def at(worker: Worker, instant) -> None:
    """Time reaches `instant` (the wall clock; on event time a heartbeat, and another customer's
    contact at it read) and the timer runs."""
    worker.caught_up(instant)
    if worker.mode == EVENT:
        other_contact(worker, instant)
    worker.tick(instant)


def other_contact(worker: Worker, instant) -> None:
    worker.contact(contact(f"other-{instant:%j%H%M}", instant, customer=OTHER, case_id="case-9"))


@pytest.mark.parametrize("mode", MODES)
def test_a_resolved_leg_and_its_customer_are_forgotten_a_window_after_the_resolution(mode):
    worker = Worker(mode)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), resolved("h-1", T0 + H)])
    at(worker, T0 + H + WINDOW - MIN)
    assert "h-1" in worker.clocks and CUSTOMER in worker.customers
    at(worker, T0 + H + WINDOW + MIN)
    assert "h-1" not in worker.clocks
    assert CUSTOMER not in worker.customers


@pytest.mark.parametrize("mode", MODES)
def test_an_open_leg_keeps_its_clocks_and_its_customer(mode):
    worker = Worker(mode)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN)])
    at(worker, T0 + 3 * WINDOW)
    assert "h-1" in worker.clocks
    assert CUSTOMER in worker.customers


@pytest.mark.parametrize("mode", MODES)
def test_a_later_contact_moves_the_customer_s_time_on(mode):
    worker = Worker(mode)
    worker.feed([created("h-1", T0), resolved("h-1", T0 + H), contact("c-1", T0 + 2 * DAY)])
    at(worker, T0 + H + WINDOW + MIN)
    # the leg's clocks go with the leg's window; the customer stays for the contact's
    assert "h-1" not in worker.clocks
    assert CUSTOMER in worker.customers
    at(worker, T0 + 2 * DAY + WINDOW + MIN)
    assert CUSTOMER not in worker.customers


@pytest.mark.parametrize("mode", MODES)
def test_a_contact_after_the_customer_was_forgotten_starts_afresh_and_repeats_nothing(mode):
    worker = Worker(mode)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), resolved("h-1", T0 + H)])
    at(worker, T0 + H + WINDOW + MIN)
    worker.feed([contact("c-2", T0 + H + WINDOW + 2 * MIN)])
    worker.caught_up(T0 + H + WINDOW + 3 * MIN)
    assert worker.repeats == []
    assert CUSTOMER in worker.customers


def test_forgetting_writes_tombstones_to_the_changelogs():
    clocks, customers = ChangelogStore("clocks", "clocks-changelog"), ChangelogStore("customers", "customers-changelog")
    worker = Worker(WALL, customers=customers, clocks=clocks)
    worker.feed([created("h-1", T0), resolved("h-1", T0 + H)])
    clocks.commit()
    customers.commit()
    at(worker, T0 + H + WINDOW + MIN)
    assert clocks.writes() == [(0, "h-1", None)]
    assert customers.writes() == [(0, CUSTOMER, None)]


def test_event_time_forgets_by_the_watermark_not_the_wall_clock():
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), resolved("h-1", T0 + H)])
    worker.wall.at = T0 + 10 * WINDOW  # the wall clock is far ahead; the watermark is not
    worker.tick(worker.wall.at)
    assert "h-1" in worker.clocks and CUSTOMER in worker.customers


def test_on_event_time_a_customer_is_kept_until_its_partition_s_contacts_are_read_past_its_time():
    # given a customer whose leg was resolved, and leg changes read far past the window after
    # it while its contacts lag behind (contacts.v1 is read apart from handoff.events.v1)
    worker = Worker(EVENT)
    worker.feed([created("h-1", T0), contact("c-1", T0 + 30 * MIN), resolved("h-1", T0 + H)])
    worker.heartbeat(T0 + 3 * WINDOW)
    worker.tick(T0 + 3 * WINDOW)
    assert CUSTOMER in worker.customers

    # when the customer's contact from before the window ran out arrives
    worker.contact(contact("c-2", T0 + 2 * H))

    # then it is a repeat on the resolved leg, as live processing has it
    assert [summary(m) for m in worker.repeats] == [
        ("c-2", "c-1", CAUSE["after_resolution"], "h-1", "billing", 450, "EUR")
    ]

    # and once the partition's contacts are read past the customer's time, it is forgotten
    other_contact(worker, T0 + 2 * H + WINDOW - MIN)
    assert CUSTOMER in worker.customers
    other_contact(worker, T0 + 2 * H + WINDOW + MIN)
    assert CUSTOMER not in worker.customers


def test_on_event_time_the_contacts_read_mark_is_restored_with_the_watermark():
    # given a worker whose partition's contacts were read to a day on, its marks stored
    customers, clocks, marks = {}, {}, {}
    before = Worker(EVENT, customers, clocks, marks=marks)
    before.feed([created("h-1", T0), resolved("h-1", T0 + H)])
    other_contact(before, T0 + DAY)
    before.sla.save_marks()

    # when a worker restarts on the same tables, and time passes the customer's time
    after = Worker(EVENT, customers, clocks, marks=marks)
    after.heartbeat(T0 + H + WINDOW + MIN)
    after.tick(T0 + H + WINDOW + MIN)

    # then it knows the contacts were read to a day on, not past the customer's time: kept
    assert after.sla.contacts_read.mark(0) == T0 + DAY
    assert CUSTOMER in customers
