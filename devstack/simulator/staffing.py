"""A department's agents: who is on duty when, and which of them picks up the next leg.

Each agent works the hours of one shift and takes one leg at a time: a leg waits in the
department's queue, first come first served, until an agent is on duty and free, and keeps
that agent busy for its handle time (an agent finishes a leg past the end of a shift).
So a short-staffed department acknowledges late, its legs run on, and its customers call
again. Pure: instants in, instants out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A shift repeats weekly, so its next window is at most a week away.
_DAYS_AHEAD = 8


@dataclass(frozen=True)
class Hours:
    """Local working hours on some weekdays (0 = Monday); `end` None means midnight."""

    weekdays: frozenset[int]
    start: time
    end: time | None

    def window(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.start, zone)
        closes = datetime.combine(day + timedelta(days=1), time(0), zone) if self.end is None \
            else datetime.combine(day, self.end, zone)
        return opens, closes

    def next_on_duty(self, at: datetime, zone: ZoneInfo) -> datetime:
        """The first instant at or after `at` inside these hours."""
        first = at.astimezone(zone).date()
        for offset in range(_DAYS_AHEAD):
            day = first + timedelta(days=offset)
            if day.weekday() not in self.weekdays:
                continue
            opens, closes = self.window(day, zone)
            if at < closes:
                return max(at, opens)
        raise ValueError("hours with no weekday")


class Team:
    """The agents of one department, one entry per agent: its hours and when it is next free."""

    def __init__(self, shifts: list[tuple[Hours, int]], zone: ZoneInfo) -> None:
        self._zone = zone
        self._hours = [hours for hours, agents in shifts for _ in range(agents)]
        if not self._hours:
            raise ValueError("a team needs at least one agent")
        self._free_at: list[datetime | None] = [None] * len(self._hours)

    def on_duty(self, at: datetime) -> int:
        """How many agents work at `at` (busy or not)."""
        return sum(hours.next_on_duty(at, self._zone) == at for hours in self._hours)

    def pick_up(self, ready: datetime, handle: timedelta) -> datetime:
        """When the first agent to be on duty and free takes a leg ready at `ready`; it is busy for `handle`."""
        starts = [hours.next_on_duty(max(ready, free or ready), self._zone)
                  for hours, free in zip(self._hours, self._free_at)]
        agent = min(range(len(starts)), key=lambda index: (starts[index], index))
        self._free_at[agent] = starts[agent] + handle
        return starts[agent]
