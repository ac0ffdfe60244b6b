"""SLA policies: targets per department and priority (optionally category) on a calendar."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sla.domain.calendar import Calendar
from sla.domain.repeats import RepeatRules

ANY = "*"
# Lookups kept per book (departments and categories come from the records: bounded, emptied when full).
FOUND_KEPT = 10_000


def _calendar_identity(calendar: Calendar) -> str:
    """Everything that defines a calendar, in a stable order (zone, hours, holidays)."""
    zone = getattr(calendar, "zone", "")
    week = sorted((day, [(a.isoformat(), b.isoformat()) for a, b in windows])
                  for day, windows in getattr(calendar, "week", {}).items())
    holidays = getattr(calendar, "holidays", None)
    dates = sorted(d.isoformat() for d in holidays.dates) if holidays else []
    rule = [holidays.rule] if holidays and holidays.rule else []
    return json.dumps([calendar.name, zone, week, dates, *rule])


@dataclass(frozen=True)
class Target:
    """An SLA target: `days` working days, then `time` of business time.

    On a working-hours calendar a day is a working day (`Calendar.add_days`); on 24x7 it is
    24 hours. A plain timedelta given as a policy's target is business time.
    """

    days: int = 0
    time: timedelta = timedelta(0)

    def reached(self, calendar: Calendar, start: datetime) -> datetime:
        """The instant a clock started at `start` reaches this target (its deadline)."""
        return calendar.add(calendar.add_days(start, self.days) if self.days else start, self.time)

    def identity(self) -> float | list[float]:
        """What defines the target, for a policy's version (seconds alone without days)."""
        return [self.days, self.time.total_seconds()] if self.days else self.time.total_seconds()


@dataclass(frozen=True)
class Policy:
    """The targets one leg runs under; `version` is a hash of everything that defines them."""

    department: str
    priority: str
    category: str
    ack_target: Target
    resolve_target: Target
    calendar: Calendar
    warning_fractions: tuple[float, ...] = (0.5, 0.8)
    pause_states: tuple[str, ...] = ("WAITING_ON_CUSTOMER",)
    max_pause: timedelta | None = None
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("ack_target", "resolve_target"):
            if isinstance(getattr(self, name), timedelta):
                object.__setattr__(self, name, Target(time=getattr(self, name)))

    def with_version(self) -> "Policy":
        """This policy with `version` set to the hash of its definition."""
        definition = json.dumps(
            [
                self.department,
                self.priority,
                self.category,
                self.ack_target.identity(),
                self.resolve_target.identity(),
                _calendar_identity(self.calendar),
                self.warning_fractions,
                self.pause_states,
                self.max_pause.total_seconds() if self.max_pause else None,
            ]
        )
        digest = hashlib.sha256(definition.encode()).hexdigest()[:12]
        return replace(self, version=digest)


@dataclass(frozen=True)
class PolicyBook:
    """Every policy; the most specific match wins (department, then priority, then category).

    `repeats` holds the repeat-contact rules of the same file.
    """

    policies: tuple[Policy, ...]
    repeats: RepeatRules = field(default_factory=RepeatRules)
    # The answer for each (department, priority, category) asked: the book never changes.
    _found: dict[tuple[str, str, str], Policy | None] = field(default_factory=dict, init=False, repr=False,
                                                               compare=False)

    def find(self, department: str, priority: str, category: str = "") -> Policy | None:
        """The policy for a leg, or None when no policy covers it."""
        key = (department, priority, category)
        found = self._found
        if key not in found:
            if len(found) >= FOUND_KEPT:
                found.clear()
            found[key] = self._match(department, priority, category)
        return found[key]

    def _match(self, department: str, priority: str, category: str) -> Policy | None:
        candidates = [
            p
            for p in self.policies
            if p.department in (department, ANY)
            and p.priority in (priority, ANY)
            and p.category in (category, ANY)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda p: (p.department != ANY, p.priority != ANY, p.category != ANY))
