"""clocks.breached_by: when a leg's clocks had breached, unemitted, before an instant; held off
by a pause or let through by the pause cap. Breaches emitted (by the timer or with a change)
reach the repeat tracker with their events, so breached_by tells only those not emitted yet."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest

from sla.domain import clocks
from sla.domain.calendar import AlwaysOpen, WorkingHours
from sla.domain.clocks import (
    ACK,
    RESOLVE,
    LegClocks,
    breach_due,
    pause,
    record_breach,
    resume,
    start,
    stop,
)
from tests.unit.conftest import T0, leg_info, policy

MIN, H, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
ALWAYS = AlwaysOpen()
# Monday to Friday, 08:00-17:00 UTC; T0 is Monday 09:00.
OFFICE = WorkingHours("office", "UTC", {day: ((time(8), time(17)),) for day in range(5)})


def only(kind: str, ack: timedelta = 4 * H, resolve: timedelta = 2 * DAY, calendar=ALWAYS) -> LegClocks:
    """A leg running clock `kind` alone, started at T0."""
    rules = replace(policy(ack=ack, resolve=resolve), calendar=calendar).with_version()
    return start(leg_info(), rules, T0, kinds=(kind,))[0]


def both(ack: timedelta = 4 * H, resolve: timedelta = 2 * DAY) -> LegClocks:
    return start(leg_info(), policy(ack=ack, resolve=resolve), T0, kinds=(ACK, RESOLVE))[0]


def breached_by(state: LegClocks, at, calendar=ALWAYS, max_pause=None):
    """clocks.breached_by on the 24x7 calendar unless told otherwise."""
    return clocks.breached_by(state, at, calendar, max_pause)


# --- a running clock --------------------------------------------------------------------


@pytest.mark.parametrize(
    "at, breached_at",
    [
        (T0, None),
        (T0 + 4 * H - MIN, None),
        (T0 + 4 * H, None),
        (T0 + 4 * H + MIN, T0 + 4 * H),
        (T0 + 30 * DAY, T0 + 4 * H),
    ],
    ids=["at-start", "a-minute-before", "at-the-deadline", "a-minute-after", "long-after"],
)
def test_a_running_clock_past_its_deadline_had_breached_at_the_deadline_though_no_breach_was_emitted(
    at, breached_at
):
    # given an ack clock (4 h) the timer has not fired
    state = only(ACK)
    assert not state.clocks[ACK].breached

    # then it had breached by `at` exactly when it ran past the deadline before `at`
    assert breached_by(state, at) == breached_at


def test_asking_does_not_change_the_state():
    state = only(ACK)

    breached_by(state, T0 + DAY)

    assert not state.clocks[ACK].breached and state.clocks[ACK].running


# --- a breach emitted -------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        lambda state: breach_due(state, T0 + 5 * H)[0],
        lambda state: record_breach(state, ACK, 1),
        lambda state: stop(state, ACK, T0 + 5 * H, ALWAYS)[0],
    ],
    ids=["emitted-by-the-timer", "read-back-from-sla-events", "emitted-with-a-late-stop"],
)
def test_a_breach_emitted_is_not_told_again(record):
    # given a breach emitted on the ack clock (its event carried it to the repeat tracker)
    state = record(only(ACK))
    assert state.clocks[ACK].breached

    # then breached_by tells nothing more, at any instant
    assert breached_by(state, T0 + 6 * H) is None
    assert breached_by(state, T0 + 3 * H) is None


# --- a stopped clock --------------------------------------------------------------------


@pytest.mark.parametrize("stopped", [T0 + MIN, T0 + 3 * H, T0 + 4 * H - timedelta(microseconds=1), T0 + 4 * H],
                         ids=["at-once", "an-hour-early", "a-microsecond-early", "exactly-at-the-deadline"])
def test_a_clock_stopped_by_its_deadline_never_breached(stopped):
    state, _ = stop(only(ACK), ACK, stopped, ALWAYS)

    assert breached_by(state, T0 + 4 * H) is None
    assert breached_by(state, T0 + 365 * DAY) is None


# --- pauses -------------------------------------------------------------------------------


def test_a_clock_paused_before_its_deadline_does_not_breach_while_paused():
    # given a resolve clock (2 days) paused after an hour
    state, _ = pause(only(RESOLVE), T0 + H, ALWAYS)

    # then, long past the deadline it had when paused, it has not breached
    assert breached_by(state, T0 + 2 * DAY + H) is None
    assert breached_by(state, T0 + 60 * DAY) is None


def test_a_clock_resumed_after_a_pause_breaches_at_its_moved_deadline():
    # given a resolve clock paused for a day and running again
    state, _ = pause(only(RESOLVE), T0 + H, ALWAYS)
    state, _ = resume(state, T0 + DAY + H, ALWAYS)

    # then it breaches a day later than its first deadline
    assert breached_by(state, T0 + 3 * DAY - MIN) is None
    assert breached_by(state, T0 + 3 * DAY) is None
    assert breached_by(state, T0 + 3 * DAY + H) == T0 + 3 * DAY


@pytest.mark.parametrize(
    "at, breached_at",
    [
        (T0 + 2 * DAY + H, None),  # the first deadline has passed, but an hour of pause counts
        (T0 + 2 * DAY + 2 * H, None),  # at the deadline moved by the 2 h the cap allows
        (T0 + 2 * DAY + 3 * H, T0 + 2 * DAY + 2 * H),  # past it
        (T0 + 10 * DAY, T0 + 2 * DAY + 2 * H),
    ],
    ids=["within-the-allowed-pause", "at-the-moved-deadline", "past-the-moved-deadline", "long-after"],
)
def test_a_paused_clock_whose_pause_cap_is_used_up_breaches_at_its_deadline_moved_by_the_cap(at, breached_at):
    # given a resolve clock paused at T0 + 1 h under a cap of 2 h of pause in all
    state, _ = pause(only(RESOLVE), T0 + H, ALWAYS, max_pause=2 * H)

    # then it runs again at T0 + 3 h and breaches at its deadline plus 2 h
    assert breached_by(state, at, ALWAYS, max_pause=2 * H) == breached_at


def test_the_pause_cap_counts_business_time_on_the_legs_calendar():
    # given an 8 h resolve clock on office hours from Monday 09:00 (due Monday 17:00), paused at
    # 10:00 under a cap of 2 business hours
    state, _ = pause(only(RESOLVE, resolve=8 * H, calendar=OFFICE), T0 + H, OFFICE, max_pause=2 * H)

    # then the pause holds until Monday 12:00 and the clock breaches on Tuesday at 10:00
    assert breached_by(state, T0 + DAY - 30 * MIN, OFFICE, max_pause=2 * H) is None  # Tuesday 08:30
    assert breached_by(state, T0 + DAY + 2 * H, OFFICE, max_pause=2 * H) == T0 + DAY + H  # asked at 11:00


# --- several clocks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ack, resolve, at, breached_at",
    [
        (4 * H, 2 * DAY, T0 + 3 * DAY, T0 + 4 * H),
        (4 * H, 2 * H, T0 + 5 * H, T0 + 2 * H),
        (4 * H, 2 * DAY, T0 + 5 * H, T0 + 4 * H),
        (4 * H, 2 * DAY, T0 + 3 * H, None),
    ],
    ids=["both-due-ack-first", "both-due-resolve-first", "only-ack-due", "neither-due"],
)
def test_the_earliest_breach_among_the_legs_clocks_is_the_one_told(ack, resolve, at, breached_at):
    assert breached_by(both(ack, resolve), at) == breached_at


def test_a_recorded_breach_leaves_the_unemitted_one_told():
    # given an ack breach recorded and a 1-hour resolve clock past due, not emitted
    state = record_breach(both(ack=4 * H, resolve=H), ACK, 1)

    # then the resolve clock's deadline is told
    assert breached_by(state, T0 + 5 * H) == T0 + H


def test_a_target_reached_at_closing_time_breaches_at_the_next_opening():
    # given an 8 h resolve clock on office hours from Monday 09:00: its target is reached at 17:00
    state = only(RESOLVE, resolve=8 * H, calendar=OFFICE)

    # then it has not breached that evening nor at Tuesday's opening, and has once it runs past 08:00
    assert breached_by(state, T0 + 10 * H, OFFICE) is None  # Monday 19:00
    assert breached_by(state, T0 + DAY - H, OFFICE) is None  # Tuesday 08:00
    assert breached_by(state, T0 + DAY, OFFICE) == T0 + DAY - H
