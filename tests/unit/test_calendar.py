"""Business time on a 24x7 calendar: every real second counts, DST changes included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sla.domain.calendar import AlwaysOpen

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR = AlwaysOpen("always")

# Spring change in Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (the day has 23 hours).
# Autumn change: 2025-10-26 03:00 CEST -> 02:00 CET (the day has 25 hours).
SAT_NOON_BEFORE_SPRING = datetime(2025, 3, 29, 12, 0, tzinfo=BERLIN)
SAT_NOON_BEFORE_AUTUMN = datetime(2025, 10, 25, 12, 0, tzinfo=BERLIN)


def real_hours(start: datetime, end: datetime) -> float:
    """Elapsed real time, whatever the zones."""
    return (end.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds() / 3600


def test_24_business_hours_across_the_spring_change_end_24_real_hours_later():
    # when
    end = CALENDAR.add(SAT_NOON_BEFORE_SPRING, timedelta(hours=24))

    # then: 24 real hours, which is 13:00 on the Berlin wall clock (25 wall-clock hours)
    assert real_hours(SAT_NOON_BEFORE_SPRING, end) == 24
    assert end == datetime(2025, 3, 30, 13, 0, tzinfo=BERLIN)


def test_24_business_hours_across_the_autumn_change_end_24_real_hours_later():
    end = CALENDAR.add(SAT_NOON_BEFORE_AUTUMN, timedelta(hours=24))

    assert real_hours(SAT_NOON_BEFORE_AUTUMN, end) == 24
    assert end == datetime(2025, 10, 26, 11, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (SAT_NOON_BEFORE_SPRING, datetime(2025, 3, 30, 12, 0, tzinfo=BERLIN), timedelta(hours=23)),
        (SAT_NOON_BEFORE_AUTUMN, datetime(2025, 10, 26, 12, 0, tzinfo=BERLIN), timedelta(hours=25)),
        (
            datetime(2025, 3, 3, 9, 0, tzinfo=BERLIN),
            datetime(2025, 3, 3, 17, 30, tzinfo=BERLIN),
            timedelta(hours=8, minutes=30),
        ),
    ],
    ids=["noon-to-noon-over-spring", "noon-to-noon-over-autumn", "ordinary-day"],
)
def test_between_counts_real_elapsed_time_in_one_zone(start, end, expected):
    assert CALENDAR.between(start, end) == expected


def test_between_counts_real_elapsed_time_across_zones():
    start = datetime(2025, 3, 29, 11, 0, tzinfo=timezone.utc)
    end = datetime(2025, 3, 30, 13, 0, tzinfo=BERLIN)  # 11:00 UTC

    assert CALENDAR.between(start, end) == timedelta(hours=24)


def test_between_is_negative_when_end_is_earlier():
    start = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)

    assert CALENDAR.between(start, start - timedelta(hours=2)) == timedelta(hours=-2)


@pytest.mark.parametrize("hours", [0, 1, 4, 24, 24 * 7])
def test_add_then_between_gives_back_the_business_time(hours):
    start = SAT_NOON_BEFORE_SPRING

    assert CALENDAR.between(start, CALENDAR.add(start, timedelta(hours=hours))) == timedelta(hours=hours)
