"""sla's state stays bounded: a leg whose clocks all stopped, and a customer with nothing open
or waiting, are forgotten the repeat window after the last thing that happened to them, on
wall time and on event time; an open leg or a waiting contact keeps them."""

from __future__ import annotations

import pytest

from common.streams.store import ChangelogStore
from tests.unit.conftest import T0
from tests.unit.test_repeat_tracker import CUSTOMER, DAY, EVENT, H, MIN, MODES, RULES, WALL, Worker, contact, created, resolved

WINDOW = RULES.window


def at(worker: Worker, instant) -> None:
    """Time reaches `instant` (the wall clock, or a heartbeat on event time) and the timer runs."""
    worker.caught_up(instant)
    worker.tick(instant)


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
