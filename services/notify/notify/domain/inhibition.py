"""Open inhibition sources, indexed so that a notification meets only those that can hold it back.

`inhibited_by` (silences.py) scans every source for every rule: with a breach open until it is
acknowledged, that is thousands of sources per notification. A source can hold a target back
under a rule only when it matches the rule's source side and agrees with the target on the
rule's `equal` labels, so each source is filed under (rule, its `equal` values) once, when it
opens, and a notification asks only the buckets of its own values. Whether the source also
matches the rule's target side is filed with it, for the rule that a notification matching
both sides is not held back by sources that do too. The answers are `inhibited_by`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from notify.domain.routing import matches_all
from notify.domain.silences import InhibitRule

# (rule's position, the values of its `equal` labels, whether the source matches its target side too)
Bucket = tuple[int, tuple[str, ...], bool]


class InhibitionSources:
    """The open sources by id, filed under every rule whose source side they match."""

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self._rules = tuple(rules)
        self._buckets: dict[Bucket, set[str]] = {}
        self._filed: dict[str, list[Bucket]] = {}  # source id -> the buckets that hold it

    def __len__(self) -> int:
        return len(self._filed)

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._filed

    def add(self, source_id: str, labels: Mapping[str, str]) -> None:
        """A source opened (or was read back) with `labels`; one already known is filed afresh."""
        self.discard(source_id)
        buckets = [(position, _values(rule, labels), matches_all(rule.target, labels))
                   for position, rule in enumerate(self._rules) if matches_all(rule.source, labels)]
        self._filed[source_id] = buckets
        for bucket in buckets:
            self._buckets.setdefault(bucket, set()).add(source_id)

    def discard(self, source_id: str) -> None:
        """A source closed (acknowledged, forgotten, rolled back); an unknown id is ignored."""
        for bucket in self._filed.pop(source_id, ()):
            ids = self._buckets[bucket]
            ids.discard(source_id)
            if not ids:
                del self._buckets[bucket]

    def clear(self) -> None:
        self._buckets.clear()
        self._filed.clear()

    def inhibited_by(self, labels: Mapping[str, str]) -> InhibitRule | None:
        """The first rule under which an open source holds back a notification with `labels`, else None."""
        for position, rule in enumerate(self._rules):
            if not matches_all(rule.target, labels):
                continue
            values = _values(rule, labels)
            if (position, values, False) in self._buckets:
                return rule
            if (position, values, True) in self._buckets and not matches_all(rule.source, labels):
                return rule
        return None


def _values(rule: InhibitRule, labels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in rule.equal)
