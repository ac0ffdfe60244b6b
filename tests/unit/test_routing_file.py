"""Reading config/routing.yaml: the shipped file, defaults, durations, and errors naming file:line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from common.yamlfile import parse_duration
from notify.adapters.routing_file import RoutingFileError, load_routing
from notify.domain.delivery import RetryPolicy
from devstack.routing import BREACHES_TO_DEPARTMENTS
from notify.domain.routing import DEFAULT_TIMING, EmailChannel, SubscriptionChannel, WebhookChannel, route
from notify.domain.silences import DEPARTMENT_INCIDENT

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
DEPARTMENTS = ("billing", "field-service", "accounts", "claims")

# Lines 1-5 of most cases below; a case's own text starts on line 6.
RECEIVERS = """\
receivers:
  - name: billing
    channels: [{type: log}]
  - name: billing-lead
    channels: [{type: email, to: [lead@example.org]}]
"""


@pytest.fixture
def routing_file(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "routing.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def shipped():
    return load_routing(SHIPPED)


def receivers_for(config, **labels) -> list[str]:
    return [match.receiver for match in config.route(labels)]


@pytest.mark.parametrize(
    "labels, receivers",
    [
        ({"department": "billing", "priority": "NORMAL", "kind": "warning"}, ["billing"]),
        ({"department": "billing", "priority": "HIGH", "kind": "breach"}, ["billing"]),
        ({"department": "billing", "priority": "URGENT", "kind": "breach"}, ["billing-oncall", "billing"]),
        ({"department": "field-service", "priority": "URGENT", "kind": "new_leg"},
         ["field-service-oncall", "field-service"]),
        ({"department": "claims", "priority": "URGENT", "kind": "breach"}, ["duty-manager", "claims"]),
        ({"department": "accounts", "priority": "LOW", "kind": "avoidable_repeat"}, ["accounts-head"]),
        ({"department": "claims", "priority": "NORMAL", "kind": "avoidable_repeat"}, ["claims-head"]),
        ({"department": "marketing", "priority": "NORMAL", "kind": "breach"}, ["contact-centre-ops"]),
    ],
)
def test_the_shipped_routing_sends_each_kind_where_the_example_says(shipped, labels, receivers):
    assert receivers_for(shipped, **labels) == receivers


@pytest.mark.parametrize("department", DEPARTMENTS)
def test_the_shipped_routing_escalates_breaches_to_lead_head_and_duty_manager(shipped, department):
    team = shipped.receivers[department]

    assert [(level.after, level.receiver) for level in team.escalation.levels] == [
        (timedelta(minutes=15), f"{department}-lead"),
        (timedelta(hours=1), f"{department}-head"),
        (timedelta(hours=4), "duty-manager"),
    ]
    assert team.escalation.applies_to({"kind": "breach"})
    assert not team.escalation.applies_to({"kind": "warning"})
    assert any(isinstance(channel, SubscriptionChannel) for channel in team.channels)
    head = shipped.receivers[f"{department}-head"]
    assert [type(channel) for channel in head.channels] == [EmailChannel]


def test_the_shipped_routing_uses_only_placeholder_targets(shipped):
    channels = [channel for receiver in shipped.receivers.values() for channel in receiver.channels]

    webhooks = [c.url for c in channels if isinstance(c, WebhookChannel)]
    addresses = [a for c in channels if isinstance(c, EmailChannel) for a in c.to]
    assert webhooks and all(url.startswith("http://127.0.0.1:") for url in webhooks)
    assert addresses and all(address.endswith("@example.org") for address in addresses)


def test_the_shipped_routing_adds_its_rules_after_the_built_in_incident_rule(shipped):
    assert [rule.name for rule in shipped.inhibit_rules] == [
        "department-incident", "contact-centre-incident", "breach-supersedes-warning",
    ]
    assert shipped.retry.max_attempts == 12 and shipped.retry.call_timeout == timedelta(seconds=10)


def test_a_minimal_file_takes_alertmanagers_timings_and_the_default_retries(routing_file):
    config = load_routing(routing_file(RECEIVERS + "route:\n  receiver: billing\n"))

    match, = config.route({"department": "billing"})
    assert (match.receiver, match.group_by, match.timing) == ("billing", (), DEFAULT_TIMING)
    assert config.inhibit_rules == (DEPARTMENT_INCIDENT,)
    assert config.retry == RetryPolicy()


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("route:\n  receiver: billing\nrouting: {}\n", 8, "unknown key 'routing'"),
        ("route:\n  receiver: billing\n  group_wait: 3x\n", 8, "group_wait: '3x' is not a duration"),
        ("route:\n  receiver: billing\n  group_interval: 0s\n", 8, "group_interval: '0s' is zero"),
        ("route:\n  receiver: billing\n  repeat_interval: 4\n", 8, "repeat_interval: 4 is not a duration"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: [department==billing]\n", 9, "not a matcher"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: ['category=~\"(\"']\n", 9,
         "not a valid regular expression"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: [team=billing]\n", 9, "unknown label 'team'"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: [priority=urgent]\n", 9,
         "priority 'urgent' in 'priority=urgent' matches none of LOW, NORMAL, HIGH, URGENT"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: ['kind=~breaches|warnings']\n", 9, "matches none"),
        ("route:\n  receiver: billing\n  routes:\n    - matchers: [kind=breach]\n      receiver: billing-team\n", 10,
         "receiver 'billing-team' is not defined under 'receivers'"),
        ("route:\n  group_by: [department]\n", 6, "the root route needs a receiver"),
        ("route:\n  receiver: billing\n  matchers: [kind=breach]\n", 8, "takes no 'matchers'"),
        ("route:\n  receiver: billing\n  continue: true\n", 8, "takes no 'continue'"),
        ("route:\n  receiver: billing\n  routes:\n    - receiver: billing\n      reciever: x\n", 10,
         "unknown key 'reciever'"),
        ("route:\n  receiver: billing\n  routes:\n    - receiver: billing\n      continue: 'yes'\n", 10,
         "continue must be true or false"),
        ("route:\n  receiver: billing\n  group_by: [department, team]\n", 8, "group_by: unknown label 'team'"),
        ("route:\n  receiver: billing\n  group_by: [kind, kind]\n", 8, "listed twice"),
        ("route:\n  receiver: billing\n  receiver: billing-lead\n", 8, "key 'receiver' given twice (first at line 7)"),
        ("route: receiver\n", 6, "route must be a mapping"),
        ("", 1, "'route' is required"),
        ("route:\n  receiver: billing\ninhibit_rules:\n  - name: department-incident\n"
         "    source: [kind=incident]\n    target: [kind=breach]\n", 9, "is already defined (it is built in)"),
        ("route:\n  receiver: billing\ninhibit_rules:\n  - name: quiet\n    source: [kind=incident]\n", 9,
         "'target' is required"),
        ("route:\n  receiver: billing\ninhibit_rules:\n  - name: quiet\n    source: [kind=incident]\n"
         "    target: []\n", 11, "needs target matchers"),
        ("route:\n  receiver: billing\ninhibit_rules:\n  - name: quiet\n    source: [kind=incident]\n"
         "    target: [kind=breach]\n    equal: [dept]\n", 12, "equal: unknown label 'dept'"),
        ("route:\n  receiver: billing\ndelivery:\n  jitter: 2\n", 9, "jitter must lie between 0 and 1"),
        ("route:\n  receiver: billing\ndelivery:\n  max_attempts: ten\n", 9, "max_attempts must be a number"),
        ("route:\n  receiver: billing\ndelivery:\n  call_timeout: soon\n", 9, "call_timeout: 'soon'"),
        ("route:\n  receiver: billing\ndelivery:\n  retries: 3\n", 9, "unknown key 'retries'"),
    ],
)
def test_a_bad_route_or_rule_names_file_line_and_reason(routing_file, text, line, reason):
    path = routing_file(RECEIVERS + text)

    with pytest.raises(RoutingFileError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(reason)):
        load_routing(path)


ROOT = "route:\n  receiver: billing\n"


@pytest.mark.parametrize(
    "receivers, line, reason",
    [
        ("  - name: billing\n    channels: [{type: log}]\n  - name: billing\n    channels: [{type: log}]\n", 4,
         "receiver 'billing' is defined twice (first at line 2)"),
        ("  - name: Billing Team\n    channels: [{type: log}]\n", 2, "receiver name: must be lower case"),
        ("  - name: billing\n", 2, "'channels' is required"),
        ("  - name: billing\n    channels: []\n", 3, "needs at least one channel"),
        ("  - name: billing\n    channels: [{type: log}]\n    pager: x\n", 4, "unknown key 'pager'"),
        ("  - name: billing\n    channels: [{type: sms}]\n", 3, "channel type 'sms' is not one of"),
        ("  - name: billing\n    channels: [{type: log, url: 'http://127.0.0.1/'}]\n", 3,
         "log channel: unknown key 'url'"),
        ("  - name: billing\n    channels: [{type: webhook}]\n", 3, "'url' is required"),
        ("  - name: billing\n    channels: [{type: webhook, url: 'ftp://127.0.0.1/x'}]\n", 3, "not an http(s) URL"),
        ("  - name: billing\n    channels: [{type: webhook, url: 'http://'}]\n", 3, "not an http(s) URL"),
        ("  - name: billing\n    channels: [{type: webhook, url: 'http://127.0.0.1:99999/'}]\n", 3,
         "not an http(s) URL"),
        ("  - name: billing\n    channels: [{type: webhook, url: 'http://127.0.0.1/a b'}]\n", 3, "not an http(s) URL"),
        ("  - name: billing\n    channels:\n      - type: webhook\n        url: http://127.0.0.1/x\n"
         "        secret: 'hunter2 is my password'\n", 6, "must be the name of a secret"),
        ("  - name: billing\n    channels: [{type: email, to: [billing.example.org]}]\n", 3,
         "'billing.example.org' is not an e-mail address"),
        ("  - name: billing\n    channels: [{type: email, to: []}]\n", 3, "at least one address"),
        ("  - name: billing\n    channels: [{type: log}, {type: log}]\n", 3, "two channels named 'log'"),
        ("  - name: billing\n    channels: [{type: log}]\n    escalation:\n      levels:\n        - after: 15m\n"
         "          receiver: billing-lead\n", 7, "receiver 'billing-lead' is not defined under 'receivers'"),
        ("  - name: billing\n    channels: [{type: log}]\n    escalation:\n      levels:\n        - after: 15m\n"
         "          receiver: billing\n", 7, "cannot escalate to itself"),
        ("  - name: billing\n    channels: [{type: log}]\n    escalation:\n      levels: []\n", 5,
         "at least one level"),
        ("  - name: billing\n    channels: [{type: log}]\n  - name: lead\n    channels: [{type: log}]\n"
         "  - name: head\n    channels: [{type: log}]\n    escalation:\n      levels:\n"
         "        - {after: 1h, receiver: lead}\n        - {after: 15m, receiver: billing}\n", 11,
         "after '15m' must be later than the level before it"),
        ("  - name: billing\n    channels: [{type: log}]\n    escalation:\n      levels: [{after: 15, receiver: x}]\n",
         5, "after: 15 is not a duration"),
        ("  - name: billing\n    channels: [{type: log}]\n    escalation:\n      when: [kind=breaches]\n"
         "      levels: [{after: 15m, receiver: x}]\n", 5, "matches none"),
    ],
)
def test_a_bad_receiver_names_file_line_and_reason(routing_file, receivers, line, reason):
    path = routing_file("receivers:\n" + receivers + ROOT)

    with pytest.raises(RoutingFileError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(reason)):
        load_routing(path)


@pytest.mark.parametrize(
    "text, reason",
    [("route: [\n", "not valid YAML"), ("- a\n- b\n", "the routing file must be a mapping")],
)
def test_a_file_that_is_not_a_routing_mapping_is_refused(routing_file, text, reason):
    path = routing_file(text)

    with pytest.raises(RoutingFileError, match=re.escape(f"{path}:") + r"\d+: " + re.escape(reason)):
        load_routing(path)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(RoutingFileError, match=re.escape(f"{path}: cannot read")):
        load_routing(path)


@pytest.mark.parametrize(
    "text, allow_zero, expected",
    [
        ("30s", False, timedelta(seconds=30)),
        ("15m", False, timedelta(minutes=15)),
        ("1h30m", False, timedelta(hours=1, minutes=30)),
        ("2d", False, timedelta(days=2)),
        (" 4h ", False, timedelta(hours=4)),
        ("0s", True, timedelta(0)),
    ],
)
def test_parse_duration_reads_days_hours_minutes_seconds(text, allow_zero, expected):
    assert parse_duration(text, allow_zero=allow_zero) == expected


@pytest.mark.parametrize("text", ["", "4", "4H", "-4h", "1.5h", "30m1h", "PT4H", "0s", 15, None, True])
def test_parse_duration_refuses_anything_else(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_remembered_routes_answer_as_the_tree_does(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(BREACHES_TO_DEPARTMENTS)
    routing = load_routing(path)
    asked = [
        {"department": "billing", "kind": "breach", "priority": "HIGH", "handoff_id": "h-1"},
        {"department": "billing", "kind": "breach", "priority": "LOW", "handoff_id": "h-2"},
        {"department": "claims", "kind": "breach", "priority": "HIGH", "handoff_id": "h-3"},
        {"department": "claims", "kind": "warning", "priority": "HIGH", "handoff_id": "h-4"},
    ]
    for labels in asked + asked:
        assert routing.route(labels) == route(routing.root, labels)
    assert [m.receiver for m in routing.route(asked[2])] == ["claims"]
    assert [m.receiver for m in routing.route(asked[3])] == ["elsewhere"]
    assert routing.receivers["claims"] is routing.receivers["claims"]
    assert routing.receivers["claims"].name == "claims"
