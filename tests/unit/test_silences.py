"""Silences (matchers and a window, set over the API) and inhibition (a source holds back targets)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from common.validation import InvalidField
from notify.domain.routing import parse_matcher
from notify.domain.silences import (
    ACTIVE, DEPARTMENT_INCIDENT, EXPIRED, PENDING, InhibitRule, InvalidSilence, expire, inhibited_by, is_silenced,
    new_silence,
)
from tests.unit.conftest import T0

H = timedelta(hours=1)
BILLING_BREACHES = (parse_matcher("department=billing"), parse_matcher("kind=breach"))


def silence(silence_id="s-1", matchers=BILLING_BREACHES, starts_at=T0, ends_at=T0 + 2 * H, now=T0, **fields):
    return new_silence(silence_id, matchers, starts_at, ends_at, fields.get("created_by", "ada"),
                       fields.get("comment", "billing system migration"), now)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"matchers": ()}, "matchers"),
        ({"matchers": (parse_matcher("department=~.*"), parse_matcher("kind!=breach"))}, "matchers"),
        ({"ends_at": T0}, "ends_at"),
        ({"ends_at": T0 - H}, "ends_at"),
        ({"starts_at": T0 - 3 * H, "ends_at": T0 - H}, "ends_at"),
        ({"starts_at": datetime(2025, 3, 3, 9)}, "starts_at"),
        ({"ends_at": datetime(2025, 3, 3, 11)}, "ends_at"),
        ({"created_by": " "}, "created_by"),
        ({"comment": ""}, "comment"),
    ],
    ids=["no-matchers", "matches-everything", "empty-window", "end-before-start", "window-in-the-past",
         "naive-start", "naive-end", "no-author", "no-comment"],
)
def test_a_silence_that_cannot_work_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidSilence) as raised:
        silence(**changes)

    assert raised.value.field == field
    assert isinstance(raised.value, InvalidField)
    assert str(raised.value).startswith(f"{field}: ")


def test_a_silence_without_a_start_starts_now():
    assert silence(starts_at=None, now=T0 + H).starts_at == T0 + H


@pytest.mark.parametrize(
    "at, status",
    [(T0 - timedelta(seconds=1), PENDING), (T0, ACTIVE), (T0 + 2 * H - timedelta(microseconds=1), ACTIVE),
     (T0 + 2 * H, EXPIRED)],
)
def test_a_silence_is_active_from_its_start_until_just_before_its_end(at, status):
    assert silence().status(at) == status


@pytest.mark.parametrize(
    "labels, at, silenced",
    [
        ({"department": "billing", "kind": "breach", "priority": "HIGH"}, T0 + H, True),
        ({"department": "billing", "kind": "warning"}, T0 + H, False),
        ({"department": "claims", "kind": "breach"}, T0 + H, False),
        ({"department": "billing", "kind": "breach"}, T0 - H, False),
        ({"department": "billing", "kind": "breach"}, T0 + 3 * H, False),
    ],
)
def test_is_silenced_needs_every_matcher_and_the_window(labels, at, silenced):
    assert (is_silenced(labels, [silence()], at) is not None) is silenced


def test_is_silenced_names_the_first_silence_that_applies():
    wide = silence("s-wide", matchers=(parse_matcher("department=billing"),))
    narrow = silence("s-narrow")
    later = silence("s-later", starts_at=T0 + H)

    found = is_silenced({"department": "billing", "kind": "breach"}, [later, narrow, wide], T0)

    assert found.silence_id == "s-narrow"
    assert is_silenced({"department": "billing"}, [], T0) is None


@pytest.mark.parametrize(
    "at, ends_at, active_at_start",
    [
        (T0 + H, T0 + H, True),             # active: ends now
        (T0 - H, T0 - H, False),           # pending: never starts
        (T0 + 3 * H, T0 + 2 * H, True),     # already over: unchanged
    ],
    ids=["active", "pending", "expired"],
)
def test_expire_ends_a_silence_now_and_changes_nothing_once_over(at, ends_at, active_at_start):
    expired = expire(silence(), at)

    assert expired.ends_at == ends_at
    assert expired.status(at) == EXPIRED
    assert (expired.status(T0) == ACTIVE) is active_at_start
    assert expire(expired, at + H) == expired


BILLING_INCIDENT = {"department": "billing", "kind": "incident"}
BILLING_BREACH = {"department": "billing", "kind": "breach", "handoff_id": "h-1", "clock": "ack"}
BREACH_SUPERSEDES_WARNING = InhibitRule(
    "breach-supersedes-warning", (parse_matcher("kind=breach"),), (parse_matcher("kind=warning"),),
    ("handoff_id", "clock"),
)


@pytest.mark.parametrize(
    "labels, sources, rule",
    [
        (BILLING_BREACH, [BILLING_INCIDENT], DEPARTMENT_INCIDENT),
        ({"department": "billing", "kind": "warning"}, [BILLING_INCIDENT], DEPARTMENT_INCIDENT),
        ({"department": "claims", "kind": "breach"}, [BILLING_INCIDENT], None),
        (BILLING_BREACH, [], None),
        (BILLING_BREACH, [{"department": "billing", "kind": "breach"}], None),
        # An incident never holds back an incident, itself included.
        (BILLING_INCIDENT, [BILLING_INCIDENT], None),
        # The same leg and clock: the breach supersedes the warning; another leg's does not.
        ({**BILLING_BREACH, "kind": "warning"}, [BILLING_BREACH], BREACH_SUPERSEDES_WARNING),
        ({**BILLING_BREACH, "kind": "warning", "handoff_id": "h-2"}, [BILLING_BREACH], None),
        ({**BILLING_BREACH, "kind": "warning", "clock": "resolve"}, [BILLING_BREACH], None),
    ],
)
def test_an_active_source_holds_back_matching_targets_that_share_the_equal_labels(labels, sources, rule):
    assert inhibited_by(labels, sources, [DEPARTMENT_INCIDENT, BREACH_SUPERSEDES_WARNING]) == rule


def test_a_notification_matching_both_sides_is_held_back_only_by_one_matching_the_source_alone():
    # Alertmanager's rule: matching both sides, it is not inhibited by others that do too.
    rule = InhibitRule("urgent-first", (parse_matcher("priority=URGENT"),), (parse_matcher("department=billing"),))
    urgent_billing = {"department": "billing", "priority": "URGENT"}

    assert inhibited_by(urgent_billing, [urgent_billing, dict(urgent_billing)], [rule]) is None
    assert inhibited_by(urgent_billing, [{"department": "claims", "priority": "URGENT"}], [rule]) == rule
    assert inhibited_by({"department": "billing", "priority": "LOW"}, [urgent_billing], [rule]) == rule


def test_an_inhibit_rule_needs_both_sides():
    with pytest.raises(ValueError, match="source and target"):
        InhibitRule("half", (parse_matcher("kind=incident"),), ())
