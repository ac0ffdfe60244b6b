"""Read config/routing.yaml into the routing tree, receivers, inhibit rules and retry policy.

Every mistake stops start-up with `file:line: reason`: unknown keys,
bad durations, matchers or URLs, receivers that are defined twice or referenced but not
defined, a root route without a receiver. docs/routing.md describes the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.validation import InvalidField, label
from common.yamlfile import ConfigProblem, LineMap, mapping, parse_duration, read_yaml, sequence
from notify.domain.delivery import RetryPolicy
from notify.domain.routing import (
    CHANNEL_KINDS, DEPARTMENT_RECEIVER, LABEL_VALUES, LABELS, Channel, EmailChannel, EscalationLevel, EscalationPolicy, InvalidMatcher,
    LogChannel, Matcher, Receiver, Receivers, Route, RouteMatch, SubscriptionChannel, WebhookChannel, matcher_labels,
    parse_matcher, route,
)
from notify.domain.silences import DEPARTMENT_INCIDENT, InhibitRule

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_CHANNEL_KEYS = {
    "subscription": {"type", "name"},
    "webhook": {"type", "name", "url", "secret"},
    "email": {"type", "name", "to"},
    "log": {"type", "name", "stream"},
}
_ROUTE_KEYS = {"receiver", "matchers", "continue", "group_by", "group_wait", "group_interval", "repeat_interval",
               "routes"}
# Distinct label combinations whose routes are remembered (RoutingConfig.route).
ROUTES_REMEMBERED = 4096
_RETRY_DURATIONS = ("initial_backoff", "max_backoff", "max_elapsed", "call_timeout")


class RoutingFileError(ValueError):
    """The routing file is unusable; the message starts with `file:line:`."""


@dataclass(frozen=True)
class RoutingConfig:
    """Everything config/routing.yaml says. The built-in DEPARTMENT_INCIDENT rule comes first."""

    root: Route
    receivers: Mapping[str, Receiver]
    inhibit_rules: tuple[InhibitRule, ...]
    retry: RetryPolicy

    def route(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        """The routes a notification with `labels` reaches (notify.domain.routing.route).

        Walking the tree is the costliest step of a notification; its answer depends only
        on the labels the tree's matchers name (and the department, which names a
        department's receiver), so it is remembered by those, a bounded number of them."""
        key = tuple(labels.get(name, "") for name in self._routed_labels)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= ROUTES_REMEMBERED:
                self._routes.clear()
            found = self._routes[key] = tuple(route(self.root, labels))
        return list(found)

    @cached_property
    def _routed_labels(self) -> tuple[str, ...]:
        return tuple(sorted(matcher_labels(self.root) | {"department"}))

    @cached_property
    def _routes(self) -> dict[tuple[str, ...], tuple[RouteMatch, ...]]:
        return {}


def load_routing(path: Path) -> RoutingConfig:
    """Parse and validate the routing file, or raise RoutingFileError naming file and line."""
    try:
        document = mapping(read_yaml(path), 1, "the routing file",
                           {"route", "receivers", "inhibit_rules", "delivery"}, required=("receivers", "route"))
        receivers = _receivers(document["receivers"], document.line_of("receivers"))
        return RoutingConfig(
            root=_route(document["route"], document.line_of("route"), receivers, is_root=True),
            receivers=receivers,
            inhibit_rules=(DEPARTMENT_INCIDENT,) + _inhibit_rules(document.get("inhibit_rules"),
                                                                  document.line_of("inhibit_rules")),
            retry=_retry(document.get("delivery"), document.line_of("delivery")),
        )
    except ConfigProblem as problem:
        raise RoutingFileError(problem.located(path)) from None


# --- receivers -------------------------------------------------------------------------


def _receivers(value: Any, line: int) -> dict[str, Receiver]:
    items = sequence(value, line, "receivers")
    if not items:
        raise ConfigProblem(line, "receivers: at least one receiver is required")
    specs = [mapping(item, items.line_of(index), "receiver", {"name", "channels", "escalation"},
                     required=("name", "channels")) for index, item in enumerate(items)]
    names: dict[str, int] = {}
    for spec in specs:
        name = _name(spec, "name", "receiver name")
        if name in names:
            raise ConfigProblem(spec.line_of("name"),
                                f"receiver {name!r} is defined twice (first at line {names[name]})")
        names[name] = spec.line_of("name")
    return Receivers(
        {spec["name"]: Receiver(spec["name"], _channels(spec), _escalation(spec, names)) for spec in specs})


def _channels(spec: LineMap) -> tuple[Channel, ...]:
    items = sequence(spec["channels"], spec.line_of("channels"), "channels")
    if not items:
        raise ConfigProblem(spec.line_of("channels"), f"receiver {spec['name']!r} needs at least one channel")
    channels: list[Channel] = []
    for index, item in enumerate(items):
        channel = _channel(item, items.line_of(index), spec["name"])
        if any(other.name == channel.name for other in channels):
            raise ConfigProblem(items.line_of(index), f"receiver {spec['name']!r} has two channels named "
                                f"{channel.name!r}; give each a distinct name")
        channels.append(channel)
    return tuple(channels)


def _channel(item: Any, line: int, receiver: str) -> Channel:
    spec = mapping(item, line, "channel", set().union(*_CHANNEL_KEYS.values()), required=("type",))
    kind = spec["type"]
    if kind not in CHANNEL_KINDS:
        raise ConfigProblem(spec.line_of("type"), f"channel type {kind!r} is not one of {', '.join(CHANNEL_KINDS)}")
    spec = mapping(spec, line, f"{kind} channel", _CHANNEL_KEYS[kind],
                   required={"webhook": ("url",), "email": ("to",)}.get(kind, ()))
    name = _name(spec, "name", "channel name") if "name" in spec else kind
    if kind == "webhook":
        secret = spec.get("secret")
        if secret is not None and not (isinstance(secret, str) and _SECRET_NAME.fullmatch(secret)):
            raise ConfigProblem(spec.line_of("secret"), f"secret {secret!r} must be the name of a secret "
                                "(letters, digits, _ . -), never the secret itself")
        return WebhookChannel(_url(spec["url"], spec.line_of("url")), name, secret)
    if kind == "email":
        addresses = [spec["to"]] if isinstance(spec["to"], str) else sequence(spec["to"], spec.line_of("to"), "to")
        if not addresses:
            raise ConfigProblem(spec.line_of("to"), "an email channel needs at least one address in 'to'")
        for address in addresses:
            if not (isinstance(address, str) and _EMAIL.fullmatch(address)):
                raise ConfigProblem(spec.line_of("to"), f"{address!r} is not an e-mail address like team@example.org")
        return EmailChannel(tuple(addresses), name)
    if kind == "log":
        return LogChannel(_name(spec, "stream", "log stream") if "stream" in spec else receiver, name)
    return SubscriptionChannel(name)


def _url(value: Any, line: int) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        valid = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname) \
            and not any(c.isspace() for c in value) and (parts.port or 0) >= 0
    except ValueError:
        valid = False
    if not valid:
        raise ConfigProblem(line, f"{value!r} is not an http(s) URL like http://127.0.0.1:8081/hooks/billing")
    return value


def _escalation(spec: LineMap, receivers: Mapping[str, int]) -> EscalationPolicy | None:
    if "escalation" not in spec:
        return None
    line = spec.line_of("escalation")
    policy = mapping(spec["escalation"], line, "escalation", {"when", "remind_every", "levels"}, required=("levels",))
    when = _matchers(policy, "when")
    levels = sequence(policy["levels"], policy.line_of("levels"), "levels")
    if not levels:
        raise ConfigProblem(policy.line_of("levels"), "escalation needs at least one level")
    parsed: list[EscalationLevel] = []
    for index, item in enumerate(levels):
        level = mapping(item, levels.line_of(index), "escalation level", {"after", "receiver"},
                        required=("after", "receiver"))
        after = _duration(level, "after")
        if parsed and after <= parsed[-1].after:
            raise ConfigProblem(level.line_of("after"), f"after {level['after']!r} must be later than the level "
                                "before it (delays count from the notification)")
        target = _receiver_ref(level, receivers)
        if target == spec["name"]:
            raise ConfigProblem(level.line_of("receiver"), f"receiver {target!r} cannot escalate to itself")
        parsed.append(EscalationLevel(after, target))
    return EscalationPolicy(
        levels=tuple(parsed),
        when=when,
        remind_every=_duration(policy, "remind_every") if "remind_every" in policy else None,
    )


# --- routes, inhibit rules, delivery -----------------------------------------------------


def _route(value: Any, line: int, receivers: Mapping[str, Receiver], is_root: bool = False) -> Route:
    if is_root and isinstance(value, LineMap) and ("matchers" in value or "continue" in value):
        key = "matchers" if "matchers" in value else "continue"
        raise ConfigProblem(value.line_of(key), f"the root route matches everything; it takes no {key!r}")
    spec = mapping(value, line, "route", _ROUTE_KEYS)
    if is_root and "receiver" not in spec:
        raise ConfigProblem(line, "the root route needs a receiver: it takes what no other route does")
    continues = spec.get("continue", False)
    if not isinstance(continues, bool):
        raise ConfigProblem(spec.line_of("continue"), f"continue must be true or false, not {continues!r}")
    children = sequence(spec.get("routes"), spec.line_of("routes"), "routes")
    return Route(
        receiver=_receiver_ref(spec, receivers) if "receiver" in spec else None,
        matchers=_matchers(spec, "matchers"),
        continues=continues,
        group_by=_group_by(spec) if "group_by" in spec else None,
        group_wait=_duration(spec, "group_wait", allow_zero=True) if "group_wait" in spec else None,
        group_interval=_duration(spec, "group_interval") if "group_interval" in spec else None,
        repeat_interval=_duration(spec, "repeat_interval") if "repeat_interval" in spec else None,
        routes=tuple(_route(child, children.line_of(index), receivers) for index, child in enumerate(children)),
    )


def _group_by(spec: LineMap) -> tuple[str, ...]:
    names = sequence(spec["group_by"], spec.line_of("group_by"), "group_by")
    for index, name in enumerate(names):
        if name not in LABELS:
            raise ConfigProblem(names.line_of(index), f"group_by: unknown label {name!r}; one of {', '.join(LABELS)}")
        if name in names[:index]:
            raise ConfigProblem(names.line_of(index), f"group_by: label {name!r} is listed twice")
    return tuple(names)


def _inhibit_rules(value: Any, line: int) -> tuple[InhibitRule, ...]:
    rules: list[InhibitRule] = []
    items = sequence(value, line, "inhibit_rules")
    for index, item in enumerate(items):
        spec = mapping(item, items.line_of(index), "inhibit rule", {"name", "source", "target", "equal"},
                       required=("name", "source", "target"))
        name = _name(spec, "name", "inhibit rule name")
        if name == DEPARTMENT_INCIDENT.name or any(rule.name == name for rule in rules):
            raise ConfigProblem(spec.line_of("name"), f"inhibit rule {name!r} is already defined"
                                + (" (it is built in)" if name == DEPARTMENT_INCIDENT.name else ""))
        source, target = _matchers(spec, "source"), _matchers(spec, "target")
        for key, matchers in (("source", source), ("target", target)):
            if not matchers:
                raise ConfigProblem(spec.line_of(key), f"inhibit rule {name!r} needs {key} matchers")
        equal = sequence(spec.get("equal"), spec.line_of("equal"), "equal")
        unknown = [other for other in equal if other not in LABELS]
        if unknown:
            raise ConfigProblem(spec.line_of("equal"),
                                f"equal: unknown label {unknown[0]!r}; one of {', '.join(LABELS)}")
        rules.append(InhibitRule(name, source, target, tuple(equal)))
    return tuple(rules)


def _retry(value: Any, line: int) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    spec = mapping(value, line, "delivery", {*_RETRY_DURATIONS, "multiplier", "jitter", "max_attempts"})
    settings: dict[str, Any] = {key: _duration(spec, key) for key in _RETRY_DURATIONS if key in spec}
    for key, kind in (("multiplier", (int, float)), ("jitter", (int, float)), ("max_attempts", int)):
        if key in spec:
            if isinstance(spec[key], bool) or not isinstance(spec[key], kind):
                raise ConfigProblem(spec.line_of(key), f"{key} must be a number, not {spec[key]!r}")
            settings[key] = spec[key]
    try:
        return RetryPolicy(**settings)
    except ValueError as error:
        raise ConfigProblem(spec.line, f"delivery: {error}") from None


# --- values -------------------------------------------------------------------------------


def _name(spec: LineMap, key: str, what: str) -> str:
    if spec[key] == DEPARTMENT_RECEIVER:
        return DEPARTMENT_RECEIVER
    try:
        return label(what, spec[key] if isinstance(spec[key], str) else "")
    except InvalidField as error:
        raise ConfigProblem(spec.line_of(key), f"{error} (got {spec[key]!r})") from None


def _receiver_ref(spec: LineMap, receivers: Mapping[str, Any]) -> str:
    name = spec["receiver"]
    if not isinstance(name, str) or name not in receivers:
        raise ConfigProblem(spec.line_of("receiver"), f"receiver {name!r} is not defined under 'receivers'")
    return name


def _duration(spec: LineMap, key: str, allow_zero: bool = False) -> timedelta:
    try:
        return parse_duration(spec[key], allow_zero=allow_zero)
    except ValueError as error:
        raise ConfigProblem(spec.line_of(key), f"{key}: {error}") from None


def _matchers(spec: LineMap, key: str) -> tuple[Matcher, ...]:
    items = sequence(spec.get(key), spec.line_of(key), key)
    return tuple(_matcher(text, items.line_of(index)) for index, text in enumerate(items))


def _matcher(text: Any, line: int) -> Matcher:
    try:
        matcher = parse_matcher(text)
    except InvalidMatcher as error:
        raise ConfigProblem(line, str(error)) from None
    if matcher.label not in LABELS:
        raise ConfigProblem(line, f"unknown label {matcher.label!r} in {text!r}; one of {', '.join(LABELS)}")
    known = LABEL_VALUES.get(matcher.label)
    positive = Matcher(matcher.label, "=~" if matcher.is_regex else "=", matcher.value)
    if known and not any(positive.matches({matcher.label: value}) for value in known):
        raise ConfigProblem(line, f"{matcher.label} {matcher.value!r} in {text!r} matches none of {', '.join(known)}")
    return matcher
