"""Silences and inhibition: notifications that are recorded but not delivered.

A silence is set by a person over the API: matchers and a time window. An inhibit rule is
set in config: while a *source* notification is active (say, a department-wide incident),
notifications matching the rule's *target* and agreeing on its `equal` labels are held
back. Both only decide; the wiring records a `suppressed` event naming the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from common.validation import InvalidField
from notify.domain.routing import Matcher, matches_all

PENDING, ACTIVE, EXPIRED = "pending", "active", "expired"


class InvalidSilence(InvalidField):
    """A silence that cannot be set; `field` names the culprit (for INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Silence:
    """Matching notifications are not delivered from `starts_at` until `ends_at` (exclusive)."""

    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def status(self, at: datetime) -> str:
        """pending, active or expired at `at`."""
        return PENDING if at < self.starts_at else ACTIVE if at < self.ends_at else EXPIRED

    def silences(self, labels: Mapping[str, str], at: datetime) -> bool:
        """Whether this silence holds back a notification with `labels` at `at`."""
        return self.status(at) == ACTIVE and matches_all(self.matchers, labels)


def new_silence(
    silence_id: str,
    matchers: Iterable[Matcher],
    starts_at: datetime | None,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
) -> Silence:
    """A validated silence; it starts at `now` when `starts_at` is None."""
    matchers = tuple(matchers)
    start = now if starts_at is None else starts_at
    if not matchers:
        raise InvalidSilence("matchers", "at least one matcher is required")
    if all(matcher.matches({}) for matcher in matchers):
        # Like Alertmanager: matchers that all accept an empty label would silence everything.
        raise InvalidSilence("matchers", "at least one matcher must require a non-empty value")
    for name, value in (("starts_at", start), ("ends_at", ends_at)):
        if value.tzinfo is None:
            raise InvalidSilence(name, "must carry a time zone")
    if ends_at <= start:
        raise InvalidSilence("ends_at", "must lie after starts_at")
    if ends_at <= now:
        raise InvalidSilence("ends_at", "lies in the past")
    if not created_by.strip():
        raise InvalidSilence("created_by", "is required")
    if not comment.strip():
        raise InvalidSilence("comment", "is required: say why notifications are silenced")
    return Silence(silence_id, matchers, start, ends_at, created_by, comment)


def expire(silence: Silence, at: datetime) -> Silence:
    """The silence ended at `at` (a pending one never starts); an expired one is unchanged."""
    if silence.status(at) == EXPIRED:
        return silence
    return replace(silence, starts_at=min(silence.starts_at, at), ends_at=at)


def is_silenced(labels: Mapping[str, str], silences: Iterable[Silence], at: datetime) -> Silence | None:
    """The first silence that holds back a notification with `labels` at `at`, else None."""
    return next((silence for silence in silences if silence.silences(labels, at)), None)


@dataclass(frozen=True)
class InhibitRule:
    """While a `source` notification is active, matching `target`s with `equal` labels are held back."""

    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.source or not self.target:
            raise ValueError(f"inhibit rule {self.name!r} needs source and target matchers")


# A department-wide incident suppresses the department's per-leg notifications.
DEPARTMENT_INCIDENT = InhibitRule(
    name="department-incident",
    source=(Matcher("kind", "=", "incident"),),
    target=(Matcher("kind", "!=", "incident"),),
    equal=("department",),
)


def inhibited_by(
    labels: Mapping[str, str], active_sources: Iterable[Mapping[str, str]], rules: Iterable[InhibitRule]
) -> InhibitRule | None:
    """The first rule under which an active source holds back a notification with `labels`, else None.

    As in Alertmanager, a notification that matches both sides of a rule is not held back
    by sources that also match both sides (so it never inhibits itself).
    """
    sources = tuple(active_sources)
    for rule in rules:
        if not matches_all(rule.target, labels):
            continue
        both_sides = matches_all(rule.source, labels)
        for source in sources:
            if not matches_all(rule.source, source):
                continue
            if both_sides and matches_all(rule.target, source):
                continue
            if all(source.get(name, "") == labels.get(name, "") for name in rule.equal):
                return rule
    return None
