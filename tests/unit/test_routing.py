"""The routing tree: matchers, tree order, `continue`, inheritance; receivers and escalation policies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.domain.routing import (
    DEFAULT_TIMING, EmailChannel, EscalationLevel, EscalationPolicy, InvalidMatcher, LogChannel, Matcher, Receiver,
    Route, SubscriptionChannel, Timing, WebhookChannel, parse_matcher, route,
)


def m(text: str) -> Matcher:
    return parse_matcher(text)


@pytest.mark.parametrize(
    "text, label, op, value",
    [
        ("department=billing", "department", "=", "billing"),
        ("kind!=warning", "kind", "!=", "warning"),
        ('priority=~"HIGH|URGENT"', "priority", "=~", "HIGH|URGENT"),
        ("priority=~HIGH|URGENT", "priority", "=~", "HIGH|URGENT"),
        ("category!~refund.*", "category", "!~", "refund.*"),
        ("  department = field-service ", "department", "=", "field-service"),
        ('category=""', "category", "=", ""),
        ("category=", "category", "=", ""),
        ('category="a=b"', "category", "=", "a=b"),
    ],
)
def test_parse_matcher_reads_label_operator_and_value(text, label, op, value):
    assert m(text) == Matcher(label, op, value)


@pytest.mark.parametrize("text", ["", "billing", "=billing", "Department=billing", "department==billing",
                                  "department<billing", "1abc=x", 'kind=~"("'])
def test_parse_matcher_rejects_anything_else(text):
    with pytest.raises(InvalidMatcher):
        m(text)


@pytest.mark.parametrize(
    "matcher, labels, expected",
    [
        ("department=billing", {"department": "billing"}, True),
        ("department=billing", {"department": "claims"}, False),
        ("department=billing", {}, False),
        ("department!=billing", {"department": "claims"}, True),
        ("department!=billing", {}, True),
        ("department=", {}, True),
        ('priority=~"HIGH|URGENT"', {"priority": "URGENT"}, True),
        ('priority=~"HIGH|URGENT"', {"priority": "NORMAL"}, False),
        # A regex matches the whole value, as in Alertmanager.
        ("department=~bill", {"department": "billing"}, False),
        ("department=~bill.*", {"department": "billing"}, True),
        ("kind!~warn.*", {"kind": "warning"}, False),
        ("kind!~warn.*", {"kind": "breach"}, True),
    ],
)
def test_a_matcher_tests_one_label_and_a_missing_label_is_empty(matcher, labels, expected):
    assert m(matcher).matches(labels) is expected


@pytest.mark.parametrize(
    "regex, negative, op", [(False, False, "="), (False, True, "!="), (True, False, "=~"), (True, True, "!~")]
)
def test_a_matcher_round_trips_the_grpc_flags(regex, negative, op):
    matcher = Matcher.of("kind", "breach", regex=regex, negative=negative)

    assert matcher.op == op
    assert (matcher.is_regex, matcher.is_negative) == (regex, negative)


@pytest.mark.parametrize("label, op, value", [("kind", "==", "x"), ("Kind", "=", "x"), ("kind", "=~", "[")])
def test_a_matcher_refuses_bad_operators_labels_and_regexes(label, op, value):
    with pytest.raises(InvalidMatcher):
        Matcher(label, op, value)


# The example tree: URGENT to on-call (continue), then per department, then a catch-all.
TREE = Route(
    receiver="ops",
    matchers=(m("department=never"),),  # ignored: the root matches everything
    group_by=("department", "kind"),
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(minutes=5),
    repeat_interval=timedelta(hours=4),
    routes=(
        Route(matchers=(m("priority=URGENT"),), continues=True, group_wait=timedelta(0), routes=(
            Route(receiver="billing-oncall", matchers=(m("department=billing"),)),
            Route(receiver="duty-manager"),
        )),
        Route(receiver="billing", matchers=(m("department=billing"),), repeat_interval=timedelta(hours=1), routes=(
            Route(receiver="billing-head", matchers=(m("kind=avoidable_repeat"),), group_by=("department",)),
            Route(receiver="billing-audit", matchers=(m("kind=~breach|warning"),), continues=True),
            Route(receiver="billing-archive", matchers=(m("kind=breach"),)),
        )),
        Route(receiver="claims", matchers=(m("department=claims"),)),
        Route(receiver="never", matchers=(m("department=claims"),)),
    ),
)


@pytest.mark.parametrize(
    "labels, receivers",
    [
        ({"department": "billing", "kind": "new_leg"}, ["billing"]),
        ({"department": "claims", "kind": "breach"}, ["claims"]),
        ({"department": "unknown", "kind": "breach"}, ["ops"]),
        ({}, ["ops"]),
        ({"department": "billing", "kind": "avoidable_repeat"}, ["billing-head"]),
        # continue: the audit route lets later siblings try; archive takes breaches too.
        ({"department": "billing", "kind": "breach"}, ["billing-audit", "billing-archive"]),
        ({"department": "billing", "kind": "warning"}, ["billing-audit"]),
        # URGENT continues past the on-call route into the department routes.
        ({"department": "billing", "priority": "URGENT", "kind": "new_leg"}, ["billing-oncall", "billing"]),
        ({"department": "claims", "priority": "URGENT", "kind": "breach"}, ["duty-manager", "claims"]),
        # The first matching sibling without continue stops the search: "never" is not reached.
        ({"department": "claims", "priority": "LOW"}, ["claims"]),
    ],
)
def test_route_walks_the_tree_in_order_honouring_continue(labels, receivers):
    assert [match.receiver for match in route(TREE, labels)] == receivers


def test_a_match_records_where_in_the_tree_it_was_reached():
    matches = route(TREE, {"department": "billing", "priority": "URGENT", "kind": "breach"})

    assert [match.path for match in matches] == [(0, 0), (1, 1), (1, 2)]


def test_a_route_inherits_unset_settings_and_overrides_set_ones():
    head, = route(TREE, {"department": "billing", "kind": "avoidable_repeat"})
    oncall, _ = route(TREE, {"department": "billing", "priority": "URGENT"})

    assert head.group_by == ("department",)
    assert head.timing == Timing(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=1))
    assert oncall.group_by == ("department", "kind")
    assert oncall.timing == Timing(timedelta(0), timedelta(minutes=5), timedelta(hours=4))


def test_a_route_without_a_receiver_uses_its_parents():
    tree = Route(receiver="ops", routes=(Route(matchers=(m("kind=breach"),), group_by=("department",)),))

    match, = route(tree, {"kind": "breach"})

    assert (match.receiver, match.group_by, match.path) == ("ops", ("department",), (0,))


def test_a_root_that_sets_no_timing_uses_alertmanagers_defaults():
    match, = route(Route(receiver="ops"), {})

    assert match.timing == DEFAULT_TIMING
    assert match.group_by == ()


def test_a_root_without_a_receiver_is_refused():
    with pytest.raises(ValueError, match="root route needs a receiver"):
        route(Route(), {})


labels_strategy = st.dictionaries(
    st.sampled_from(["department", "priority", "kind", "category"]),
    st.sampled_from(["billing", "claims", "URGENT", "LOW", "breach", "warning", "avoidable_repeat", ""]),
)
RECEIVERS = {"ops", "billing-oncall", "duty-manager", "billing", "billing-head", "billing-audit", "billing-archive",
             "claims", "never"}


@given(labels_strategy)
def test_every_notification_reaches_at_least_one_receiver_of_the_tree(labels):
    matches = route(TREE, labels)

    assert matches
    assert {match.receiver for match in matches} <= RECEIVERS
    assert len({match.path for match in matches}) == len(matches)


@pytest.mark.parametrize(
    "channel, kind, target",
    [
        (SubscriptionChannel(), "subscription", ""),
        (WebhookChannel("http://127.0.0.1:8081/hooks/billing", secret="billing-hook"), "webhook",
         "http://127.0.0.1:8081/hooks/billing"),
        (EmailChannel(("a@example.org", "b@example.org")), "email", "a@example.org, b@example.org"),
        (LogChannel("ops"), "log", "ops"),
    ],
)
def test_each_channel_names_its_kind_and_the_gateway_target(channel, kind, target):
    assert (channel.kind, channel.name, channel.target) == (kind, kind, target)


def test_a_receiver_refuses_two_channels_with_one_name():
    with pytest.raises(ValueError, match="distinct"):
        Receiver("billing", (WebhookChannel("http://127.0.0.1/a"), WebhookChannel("http://127.0.0.1/b")))


LEAD, HEAD = EscalationLevel(timedelta(minutes=15), "lead"), EscalationLevel(timedelta(hours=1), "head")


@pytest.mark.parametrize(
    "levels, remind_every",
    [
        ((), None),
        ((HEAD, LEAD), None),
        ((LEAD, EscalationLevel(timedelta(minutes=15), "head")), None),
        ((EscalationLevel(timedelta(0), "lead"),), None),
        ((LEAD,), timedelta(0)),
    ],
    ids=["no-levels", "decreasing", "equal-delays", "zero-delay", "zero-reminder"],
)
def test_an_escalation_policy_needs_levels_with_increasing_positive_delays(levels, remind_every):
    with pytest.raises(ValueError):
        EscalationPolicy(levels, remind_every=remind_every)


@pytest.mark.parametrize(
    "labels, escalates", [({"kind": "breach"}, True), ({"kind": "warning"}, False), ({}, False)]
)
def test_an_escalation_policy_applies_only_to_what_its_when_matchers_accept(labels, escalates):
    policy = EscalationPolicy((LEAD, HEAD), when=(m("kind=breach"),))

    assert policy.applies_to(labels) is escalates
    assert EscalationPolicy((LEAD,)).applies_to(labels)


@given(
    st.sampled_from(["department", "kind", "category"]),
    st.sampled_from(["=", "!="]),
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=20),
)
def test_a_matcher_written_out_parses_back_to_itself(label, op, value):
    matcher = Matcher(label, op, value)

    assert parse_matcher(str(matcher)) == matcher
