"""Targets in days count working days; a closed instant adds no business time (open_from).

Berlin office hours are Monday to Friday 08:00-12:00 and 13:00-17:00; 2026-11-23 is a Monday.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sla.adapters.policy_file import load_policies
from sla.domain.calendar import AlwaysOpen, Holidays, WorkingHours
from sla.domain.clocks import ACK, RESOLVE, start
from sla.domain.policy import Target
from tests.unit.conftest import leg_info

BERLIN = ZoneInfo("Europe/Berlin")
SPLIT = ((time(8), time(12)), (time(13), time(17)))
OFFICE = WorkingHours("office", "Europe/Berlin", {day: SPLIT for day in range(5)},
                      Holidays(frozenset({date(2026, 12, 24), date(2026, 12, 25)})))
# Mondays run 08:00-17:00 without a break, Fridays end at 12:00.
UNEVEN = WorkingHours("uneven", "Europe/Berlin",
                      {0: ((time(8), time(17)),), 1: SPLIT, 2: SPLIT, 3: SPLIT, 4: ((time(8), time(12)),)})
SHIPPED = Path("config/sla-policies.yaml")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    "calendar, begin, days, deadline",
    [
        (OFFICE, berlin(2026, 11, 23, 9, 0), 2, berlin(2026, 11, 25, 9, 0)),
        (OFFICE, berlin(2026, 11, 27, 10, 30), 1, berlin(2026, 11, 30, 10, 30)),
        (OFFICE, berlin(2026, 11, 28, 14, 0), 2, berlin(2026, 12, 2, 8, 0)),
        (OFFICE, berlin(2026, 11, 23, 12, 30), 1, berlin(2026, 11, 24, 13, 0)),
        (OFFICE, berlin(2026, 11, 23, 18, 0), 1, berlin(2026, 11, 25, 8, 0)),
        (OFFICE, berlin(2026, 12, 23, 9, 0), 2, berlin(2026, 12, 29, 9, 0)),
        (UNEVEN, berlin(2026, 11, 26, 15, 0), 1, berlin(2026, 11, 27, 12, 0)),
        (UNEVEN, berlin(2026, 11, 23, 12, 30), 2, berlin(2026, 11, 25, 17, 0)),
        (OFFICE, berlin(2026, 3, 27, 9, 0), 1, berlin(2026, 3, 30, 9, 0)),
    ],
    ids=["two-working-days-same-time", "friday-to-monday", "saturday-from-monday-opening",
         "lunch-break-from-the-afternoon-opening", "evening-from-next-opening", "holidays-are-not-working-days",
         "shorter-day-allows-the-whole-day", "lunch-break-on-that-day-allows-the-whole-day",
         "across-the-spring-change-same-local-time"],
)
def test_a_day_is_a_working_day_at_the_same_local_time(calendar, begin, days, deadline):
    assert calendar.add_days(begin, days) == deadline


def test_on_24x7_a_day_is_24_hours_of_real_time():
    spring = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)

    assert AlwaysOpen().add_days(spring, 2) == datetime(2026, 3, 30, 11, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "instant, opening",
    [
        (berlin(2026, 11, 23, 9, 0), berlin(2026, 11, 23, 9, 0)),
        (berlin(2026, 11, 23, 8, 0), berlin(2026, 11, 23, 8, 0)),
        (berlin(2026, 11, 23, 12, 0), berlin(2026, 11, 23, 13, 0)),
        (berlin(2026, 11, 23, 17, 0), berlin(2026, 11, 24, 8, 0)),
        (berlin(2026, 11, 27, 17, 0), berlin(2026, 11, 30, 8, 0)),
        (berlin(2026, 12, 23, 17, 0), berlin(2026, 12, 28, 8, 0)),
    ],
    ids=["inside", "at-an-opening", "at-a-closing", "at-the-last-closing", "friday-evening", "before-holidays"],
)
def test_open_from_is_the_instant_itself_in_working_hours_else_the_next_opening(instant, opening):
    assert OFFICE.open_from(instant) == opening
    assert OFFICE.between(instant, opening) == timedelta(0)


def test_a_target_of_days_then_hours_adds_the_hours_after_the_days():
    target = Target(days=1, time=timedelta(hours=4))

    assert target.reached(OFFICE, berlin(2026, 11, 23, 14, 0)) == berlin(2026, 11, 25, 9, 0)


def test_billing_resolve_of_two_days_on_office_hours_comes_due_two_working_days_later():
    # given the shipped policies: billing resolves in 2d on Berlin office hours
    policy = load_policies(SHIPPED).find("billing", "NORMAL")

    # when a leg is created on Monday 2026-11-23 at 09:00 in Berlin
    state, _ = start(leg_info(), policy, berlin(2026, 11, 23, 9, 0), kinds=(RESOLVE,))

    # then it is due on Wednesday at 09:00, with two working days of business time to run
    clock = state.clocks[RESOLVE]
    assert clock.deadline == berlin(2026, 11, 25, 9, 0)
    assert clock.target == timedelta(hours=16)


def test_country_holidays_hold_in_a_year_long_past():
    # given the shipped policies: billing acknowledges in 4h on Berlin office hours, German holidays
    policy = load_policies(SHIPPED).find("billing", "NORMAL")

    # when a leg is created on 2024-12-24 at 16:00 in Berlin
    state, _ = start(leg_info(), policy, berlin(2024, 12, 24, 16, 0), kinds=(ACK,))

    # then an hour runs that evening, Christmas Day and Boxing Day are closed: due Friday 11:00
    assert state.clocks[ACK].deadline == berlin(2024, 12, 27, 11, 0)
