"""Request field checks: each failure is an InvalidField naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from common import validation as check
from tests.unit.conftest import T0


@pytest.mark.parametrize(
    "value",
    ["a", "R-1", "case_42", "cust:7f3a", "a.b_c:d-e", "0abc", "x" * 128],
)
def test_identifier_accepts_1_to_128_letters_digits_and_separators(value):
    assert check.identifier("case_id", value) == value


@pytest.mark.parametrize(
    "value, reason",
    [
        ("", "is required"),
        ("x" * 129, "1-128"),
        ("-abc", "1-128"),
        (".abc", "1-128"),
        ("has space", "1-128"),
        ("slash/no", "1-128"),
        ("ümlaut", "1-128"),
        ("abc\n", "1-128"),
        ("abc\x00", "1-128"),
    ],
    ids=["empty", "too-long", "leading-dash", "leading-dot", "space", "slash", "non-ascii", "trailing-newline", "nul"],
)
def test_identifier_refuses_anything_else_naming_the_field(value, reason):
    with pytest.raises(check.InvalidField, match=reason) as raised:
        check.identifier("case_id", value)

    assert raised.value.field == "case_id"
    assert str(raised.value).startswith("case_id: ")


@pytest.mark.parametrize("value", ["billing", "field-service", "claims_2", "a", "a" * 64])
def test_label_accepts_lower_case_names_up_to_64(value):
    assert check.label("department", value) == value


@pytest.mark.parametrize(
    "value, reason",
    [
        ("", "is required"),
        ("Billing", "lower case"),
        ("2nd-line", "lower case"),
        ("-billing", "lower case"),
        ("field service", "lower case"),
        ("a" * 65, "lower case"),
        ("billing\n", "lower case"),
    ],
    ids=["empty", "upper-case", "leading-digit", "leading-dash", "space", "too-long", "trailing-newline"],
)
def test_label_refuses_anything_else_naming_the_field(value, reason):
    with pytest.raises(check.InvalidField, match=reason) as raised:
        check.label("department", value)

    assert raised.value.field == "department"


@pytest.mark.parametrize(
    "value, max_length, required",
    [("", 10, False), ("x" * 10, 10, False), ("hello", 10, True), ("ünïcødé", 7, False)],
)
def test_text_accepts_text_up_to_its_maximum(value, max_length, required):
    assert check.text("summary", value, max_length, required) == value


@pytest.mark.parametrize(
    "value, max_length, required, reason",
    [
        ("x" * 11, 10, False, "is 11 characters; at most 10"),
        ("", 10, True, "is required"),
        ("   \n\t", 10, True, "is required"),
    ],
    ids=["too-long", "missing", "blank"],
)
def test_text_refuses_too_long_or_missing_text_naming_the_field(value, max_length, required, reason):
    with pytest.raises(check.InvalidField, match=reason) as raised:
        check.text("summary", value, max_length, required)

    assert raised.value.field == "summary"


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, T0),
        (T0 - timedelta(days=400), T0 - timedelta(days=400)),
        (T0, T0),
        (T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)),
        (datetime(2025, 3, 3, 8, 0), datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)),
    ],
    ids=["unset-is-now", "long-past-import", "now", "within-clock-skew", "naive-read-as-utc"],
)
def test_event_time_accepts_past_and_present_instants(value, expected):
    accepted = check.event_time("occurred_at", value, T0)

    assert accepted == expected
    assert accepted.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [T0 + timedelta(minutes=5, seconds=1), T0 + timedelta(days=1)],
    ids=["just-beyond-skew", "tomorrow"],
)
def test_event_time_refuses_the_future_naming_the_field(value):
    with pytest.raises(check.InvalidField, match="future") as raised:
        check.event_time("occurred_at", value, T0)

    assert raised.value.field == "occurred_at"
