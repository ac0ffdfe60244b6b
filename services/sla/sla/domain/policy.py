"""SLA policies: targets per department and priority (optionally category) on a calendar."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

from sla.domain.calendar import Calendar
from sla.domain.repeats import RepeatRules

ANY = "*"


def _calendar_identity(calendar: Calendar) -> str:
    """Everything that defines a calendar, in a stable order (zone, hours, holidays)."""
    zone = getattr(calendar, "zone", "")
    week = sorted((day, [(a.isoformat(), b.isoformat()) for a, b in windows])
                  for day, windows in getattr(calendar, "week", {}).items())
    holidays = sorted(d.isoformat() for d in getattr(calendar, "holidays", ()))
    return json.dumps([calendar.name, zone, week, holidays])


@dataclass(frozen=True)
class Policy:
    """The targets one leg runs under; `version` is a hash of everything that defines them."""

    department: str
    priority: str
    category: str
    ack_target: timedelta
    resolve_target: timedelta
    calendar: Calendar
    warning_fractions: tuple[float, ...] = (0.5, 0.8)
    pause_states: tuple[str, ...] = ("WAITING_ON_CUSTOMER",)
    max_pause: timedelta | None = None
    version: str = field(default="", compare=False)

    def with_version(self) -> "Policy":
        """This policy with `version` set to the hash of its definition."""
        definition = json.dumps(
            [
                self.department,
                self.priority,
                self.category,
                self.ack_target.total_seconds(),
                self.resolve_target.total_seconds(),
                _calendar_identity(self.calendar),
                self.warning_fractions,
                self.pause_states,
                self.max_pause.total_seconds() if self.max_pause else None,
            ]
        )
        digest = hashlib.sha256(definition.encode()).hexdigest()[:12]
        return Policy(**{**self.__dict__, "version": digest})


@dataclass(frozen=True)
class PolicyBook:
    """Every policy; the most specific match wins (department, then priority, then category).

    `repeats` holds the repeat-contact rules of the same file.
    """

    policies: tuple[Policy, ...]
    repeats: RepeatRules = field(default_factory=RepeatRules)

    def find(self, department: str, priority: str, category: str = "") -> Policy | None:
        """The policy for a leg, or None when no policy covers it."""
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
