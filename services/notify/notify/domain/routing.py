"""Who hears about a notification: an Alertmanager-like routing tree over its labels.

A notification carries labels (LABELS below). The tree's root matches everything; each
child route is tried in order, and the first whose matchers all match takes the
notification deeper, unless it says `continue`, in which case later siblings are tried
too. The deepest routes reached are the matches; a route that no child takes is itself a
match. Receivers, grouping settings and timings are inherited from the parent when unset.

Receivers own channels (how a message travels) and optionally an escalation policy (whom
to tell next when nobody acknowledges).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import ClassVar

# Labels a notification carries. Values: department and category as in the handoff;
# priority upper case (URGENT); kind and clock lower case (breach, ack).
LABELS = ("department", "priority", "kind", "category", "clock", "handoff_id")
# Labels whose values form a closed set, so a config can be checked against it.
LABEL_VALUES: Mapping[str, tuple[str, ...]] = {
    "priority": ("LOW", "NORMAL", "HIGH", "URGENT"),
    "kind": ("new_leg", "warning", "breach", "avoidable_repeat", "escalation", "resolved_after_breach", "incident"),
    "clock": ("ack", "resolve"),
}
OPERATORS = ("=", "!=", "=~", "!~")
_LABEL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# label, operator, value; the value may be double-quoted, and must be to start with = or ~
# (so that a typo such as department==billing is refused rather than read as "=billing").
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"(.*)"|(?![=~])(.*?))\s*$')


class InvalidMatcher(ValueError):
    """A matcher that cannot be used: a bad label name, operator or regular expression."""


@dataclass(frozen=True)
class Matcher:
    """One condition on one label. A missing label has the value ''. Regexes match the whole value."""

    label: str
    op: str
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.label):
            raise InvalidMatcher(f"label {self.label!r} is not a name like department or kind")
        if self.op not in OPERATORS:
            raise InvalidMatcher(f"operator {self.op!r} is not one of {', '.join(OPERATORS)}")
        if self.is_regex:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.value))
            except re.error as error:
                raise InvalidMatcher(f"{self.value!r} is not a valid regular expression: {error}") from None

    @classmethod
    def of(cls, label: str, value: str, regex: bool = False, negative: bool = False) -> Matcher:
        """A matcher from the flags the gRPC `Matcher` message carries."""
        return cls(label, {(False, False): "=", (False, True): "!=", (True, False): "=~", (True, True): "!~"}[
            (regex, negative)], value)

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_negative(self) -> bool:
        return self.op in ("!=", "!~")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the labels satisfy this condition."""
        actual = labels.get(self.label, "")
        hit = self._pattern.fullmatch(actual) is not None if self._pattern else actual == self.value
        return hit != self.is_negative

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """'department=billing', 'priority=~"HIGH|URGENT"', 'kind!=warning' -> Matcher."""
    found = _MATCHER.match(text) if isinstance(text, str) else None
    if not found:
        raise InvalidMatcher(f"{text!r} is not a matcher like department=billing, kind!=warning "
                             f"or priority=~\"HIGH|URGENT\"")
    label, op, quoted, plain = found.groups()
    return Matcher(label, op, quoted if quoted is not None else plain)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Whether every matcher holds (true for no matchers)."""
    return all(matcher.matches(labels) for matcher in matchers)


@dataclass(frozen=True)
class Timing:
    """When a group of notifications is sent: see notify.domain.grouping."""

    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta


# Alertmanager's defaults, for a root route that sets none.
DEFAULT_TIMING = Timing(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4))


@dataclass(frozen=True)
class Route:
    """A node of the tree; None means 'as the parent'. The root's matchers are ignored."""

    receiver: str | None = None
    matchers: tuple[Matcher, ...] = ()
    continues: bool = False
    group_by: tuple[str, ...] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class RouteMatch:
    """A route a notification reached, with the settings in effect there.

    `path` is the route's position: child indexes from the root, () for the root itself.
    """

    receiver: str
    group_by: tuple[str, ...]
    timing: Timing
    path: tuple[int, ...] = ()


# A receiver of this name stands for each department that has no receiver of its own: a
# route to it reaches the receiver named after the notification's department.
DEPARTMENT_RECEIVER = "{department}"
# Department receivers kept once made (Receivers).
RECEIVERS_MADE = 4096


def route(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """The routes a notification with `labels` reaches, in tree order; never empty."""
    if root.receiver is None:
        raise ValueError("the root route needs a receiver")
    found = _reach(root, labels, _effective(root, RouteMatch("", (), DEFAULT_TIMING), ()))
    department = labels.get("department", "")
    return [replace(match, receiver=department) if match.receiver == DEPARTMENT_RECEIVER and department else match
            for match in found]


def matcher_labels(node: Route) -> set[str]:
    """Every label a matcher of `node` or of a route below it names."""
    names = {matcher.label for matcher in node.matchers}
    for child in node.routes:
        names |= matcher_labels(child)
    return names


def _reach(node: Route, labels: Mapping[str, str], here: RouteMatch) -> list[RouteMatch]:
    found: list[RouteMatch] = []
    for index, child in enumerate(node.routes):
        if not matches_all(child.matchers, labels):
            continue
        found += _reach(child, labels, _effective(child, here, here.path + (index,)))
        if not child.continues:
            break
    return found or [here]


def _effective(node: Route, parent: RouteMatch, path: tuple[int, ...]) -> RouteMatch:
    timing = Timing(
        node.group_wait if node.group_wait is not None else parent.timing.group_wait,
        node.group_interval if node.group_interval is not None else parent.timing.group_interval,
        node.repeat_interval if node.repeat_interval is not None else parent.timing.repeat_interval,
    )
    group_by = node.group_by if node.group_by is not None else parent.group_by
    return RouteMatch(node.receiver or parent.receiver, group_by, timing, path)


# --- receivers and their channels ---------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionChannel:
    """The receiver's gRPC Subscribe stream: delivered by being written to notifications.v1."""

    name: str = "subscription"
    kind: ClassVar[str] = "subscription"
    target: ClassVar[str] = ""


@dataclass(frozen=True)
class WebhookChannel:
    """An HTTP POST through the webhook gateway; `secret` names a secret (never holds one)."""

    url: str
    name: str = "webhook"
    secret: str | None = None
    kind: ClassVar[str] = "webhook"

    @property
    def target(self) -> str:
        return self.url


@dataclass(frozen=True)
class EmailChannel:
    """An e-mail through the SMTP gateway to every address in `to`."""

    to: tuple[str, ...]
    name: str = "email"
    kind: ClassVar[str] = "email"

    @property
    def target(self) -> str:
        return ", ".join(self.to)


@dataclass(frozen=True)
class LogChannel:
    """A structured log line through the log gateway, tagged with `stream` (e.g. ops)."""

    stream: str
    name: str = "log"
    kind: ClassVar[str] = "log"

    @property
    def target(self) -> str:
        return self.stream


Channel = SubscriptionChannel | WebhookChannel | EmailChannel | LogChannel
CHANNEL_KINDS = ("subscription", "webhook", "email", "log")


@dataclass(frozen=True)
class EscalationLevel:
    """Tell `receiver` when nobody acknowledged within `after` of the notification."""

    after: timedelta
    receiver: str


@dataclass(frozen=True)
class EscalationPolicy:
    """Ordered levels (cumulative delays); only notifications matching `when` escalate.

    `remind_every`: how often the current level is reminded; None takes the route's
    repeat_interval.
    """

    levels: tuple[EscalationLevel, ...]
    when: tuple[Matcher, ...] = ()
    remind_every: timedelta | None = None

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("an escalation policy needs at least one level")
        delays = [level.after for level in self.levels]
        if delays[0] <= timedelta(0) or any(later <= earlier for earlier, later in zip(delays, delays[1:])):
            raise ValueError("escalation delays must be positive and strictly increasing")
        if self.remind_every is not None and self.remind_every <= timedelta(0):
            raise ValueError("remind_every must be positive")

    def applies_to(self, labels: Mapping[str, str]) -> bool:
        """Whether a notification with `labels` escalates under this policy."""
        return matches_all(self.when, labels)


class Receivers(dict):
    """Receivers by name; a name without its own entry takes the DEPARTMENT_RECEIVER's
    channels and escalation, under that name."""

    def __missing__(self, name: str) -> "Receiver":
        # Made once per department (every notification asks), a bounded number of them.
        made = self.__dict__.setdefault("_made", {})
        receiver = made.get(name)
        if receiver is None:
            template = dict.get(self, DEPARTMENT_RECEIVER)
            if template is None or not name:
                raise KeyError(name)
            if len(made) >= RECEIVERS_MADE:
                made.clear()
            receiver = made[name] = replace(template, name=name)
        return receiver

    def get(self, name: str, default: "Receiver | None" = None) -> "Receiver | None":
        try:
            return self[name]
        except KeyError:
            return default


@dataclass(frozen=True)
class Receiver:
    """A named audience: the channels that reach it and how it escalates."""

    name: str
    channels: tuple[Channel, ...]
    escalation: EscalationPolicy | None = None

    def __post_init__(self) -> None:
        names = [channel.name for channel in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"receiver {self.name!r}: channel names must be distinct, got {names}")
