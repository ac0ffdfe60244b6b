"""Business time: how much of a span counts against an SLA target, and when a target ends.

A 24x7 calendar counts all elapsed (real) time, so 24 business hours across a spring DST
change end 24 real hours later. Working-hours calendars are a later addition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True)
class AlwaysOpen:
    """A 24x7 calendar: every real second is business time."""

    name: str = "24x7"

    def add(self, start: datetime, business: timedelta) -> datetime:
        """The instant at which `business` time has passed since `start`."""
        # Aware datetimes in one zone subtract as wall-clock time; UTC makes it real time.
        return (start.astimezone(timezone.utc) + business).astimezone(start.tzinfo)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (negative when `end` is earlier)."""
        return end.astimezone(timezone.utc) - start.astimezone(timezone.utc)


Calendar = AlwaysOpen
