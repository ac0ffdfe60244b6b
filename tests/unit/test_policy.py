"""SLA policies: the most specific match wins; the version hash tracks the definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.conftest import policy
from sla.domain.calendar import AlwaysOpen
from sla.domain.policy import ANY, PolicyBook

FALLBACK = policy(department=ANY, ack=timedelta(days=1))
BILLING = policy(department="billing", ack=timedelta(hours=4))
BILLING_URGENT = policy(department="billing", priority="URGENT", ack=timedelta(minutes=30))
BILLING_URGENT_FRAUD = policy(
    department="billing", priority="URGENT", category="fraud", ack=timedelta(minutes=10)
)
ANY_DEPARTMENT_URGENT = policy(department=ANY, priority="URGENT", ack=timedelta(hours=1))
BILLING_ANY_PRIORITY_FRAUD = policy(department="billing", category="fraud", ack=timedelta(minutes=20))

BOOK = PolicyBook(
    (FALLBACK, ANY_DEPARTMENT_URGENT, BILLING_ANY_PRIORITY_FRAUD, BILLING_URGENT_FRAUD, BILLING_URGENT, BILLING)
)


@pytest.mark.parametrize(
    "department, priority, category, expected",
    [
        ("billing", "NORMAL", "", BILLING),
        ("billing", "URGENT", "", BILLING_URGENT),
        ("billing", "URGENT", "fraud", BILLING_URGENT_FRAUD),
        ("billing", "NORMAL", "fraud", BILLING_ANY_PRIORITY_FRAUD),
        ("claims", "URGENT", "", ANY_DEPARTMENT_URGENT),
        ("claims", "LOW", "", FALLBACK),
    ],
    ids=[
        "department",
        "department+priority",
        "department+priority+category",
        "department+category",
        "priority-only-for-other-department",
        "fallback",
    ],
)
def test_find_picks_the_most_specific_policy(department, priority, category, expected):
    assert BOOK.find(department, priority, category) == expected


def test_find_prefers_a_named_department_over_a_named_priority():
    # "department, then priority, then category": billing/* beats */URGENT for billing URGENT.
    book = PolicyBook((ANY_DEPARTMENT_URGENT, BILLING))

    assert book.find("billing", "URGENT") == BILLING


def test_find_does_not_depend_on_the_order_of_the_policies():
    reordered = PolicyBook(tuple(reversed(BOOK.policies)))

    assert reordered.find("billing", "URGENT", "fraud") == BILLING_URGENT_FRAUD
    assert reordered.find("billing", "NORMAL") == BILLING


def test_find_returns_none_when_no_policy_covers_the_leg():
    book = PolicyBook((BILLING, BILLING_URGENT))

    assert book.find("claims", "NORMAL") is None


def test_version_is_a_stable_hash_of_the_definition():
    assert policy().version == policy().version
    assert len(policy().version) == 12
    assert all(c in "0123456789abcdef" for c in policy().version)


@pytest.mark.parametrize(
    "change",
    [
        {"ack_target": timedelta(hours=5)},
        {"resolve_target": timedelta(days=3)},
        {"priority": "HIGH"},
        {"category": "refund"},
        {"calendar": AlwaysOpen("other")},
        {"warning_fractions": (0.75,)},
        {"pause_states": ()},
        {"max_pause": timedelta(days=5)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_version_changes_when_the_definition_changes(change):
    base = policy()

    changed = replace(base, **change).with_version()

    assert changed.version != base.version


def test_version_ignores_a_previously_set_version():
    base = policy()

    assert replace(base, version="stale").with_version().version == base.version
