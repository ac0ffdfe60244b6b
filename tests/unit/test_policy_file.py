"""Reading config/sla-policies.yaml: durations, the shipped file, and errors naming file:line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from sla.adapters.policy_file import PolicyFileError, load_policies, parse_duration
from sla.domain.policy import ANY

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "sla-policies.yaml"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30s", timedelta(seconds=30)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 8h ", timedelta(hours=8)),
    ],
)
def test_parse_duration_reads_days_hours_minutes_seconds(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "4", "h", "4 h", "4H", "-4h", "1.5h", "30m1h", "4hours", "PT4H", "4h4h"],
)
def test_parse_duration_rejects_anything_else_and_quotes_it(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_the_shipped_policy_file_loads_and_covers_every_department():
    # when
    book = load_policies(SHIPPED)

    # then
    for department in ("billing", "field-service", "accounts", "claims"):
        found = book.find(department, "NORMAL")
        assert found is not None and found.department == department, department
        assert found.ack_target > timedelta(0)
        assert found.resolve_target > found.ack_target
        assert found.version
    assert book.find("billing", "URGENT").ack_target == timedelta(minutes=30)
    assert book.find("somewhere-else", "LOW").department == ANY


def test_defaults_apply_to_every_policy_that_does_not_override_them(policy_file):
    path = policy_file(
        """
        calendars:
          always:
            hours: 24x7
        defaults:
          calendar: always
          warning_fractions: [0.8, 0.5]
          max_pause: 5d
        policies:
          - department: billing
            ack: 4h
            resolve: 2d
          - department: claims
            ack: 1d
            resolve: 10d
            max_pause: 1d
        """
    )

    book = load_policies(path)

    billing, claims = book.policies
    assert (billing.priority, billing.category) == (ANY, ANY)
    assert billing.calendar.name == "always"
    assert billing.warning_fractions == (0.5, 0.8)
    assert billing.pause_states == ("WAITING_ON_CUSTOMER",)
    assert billing.max_pause == timedelta(days=5)
    assert claims.max_pause == timedelta(days=1)


def test_priorities_are_read_case_insensitively(policy_file):
    path = policy_file(
        """
        calendars:
          always: {hours: 24x7}
        policies:
          - {department: billing, priority: urgent, calendar: always, ack: 30m, resolve: 8h}
        """
    )

    assert load_policies(path).find("billing", "URGENT") is not None


GOOD_HEAD = """\
calendars:
  always:
    hours: 24x7
defaults:
  calendar: always
policies:
  - department: billing
    ack: 4h
    resolve: 2d
"""


def claims_entry(**fields: str | None) -> str:
    """A claims policy starting on line 10 after GOOD_HEAD; a field set to None is left out."""
    merged = {"ack": "1d", "resolve": "10d", **fields}
    lines = [f"    {key}: {value}" for key, value in merged.items() if value is not None]
    return "  - department: claims\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"colour": "red"}, "unknown keys ['colour']"),
        ({"calendar": "office"}, "calendar 'office' is not defined"),
        ({"priority": "CRITICAL"}, "priority 'CRITICAL'"),
        ({"ack": "1 day"}, "'1 day' is not a duration"),
        ({"resolve": "10"}, "10 is not a duration"),
        ({"max_pause": "forever"}, "'forever' is not a duration"),
        ({"warning_fractions": "[0.5, 1.5]"}, "warning_fractions (0.5, 1.5)"),
        ({"warning_fractions": "[0]"}, "warning_fractions (0.0,)"),
        ({"warning_fractions": "[1]"}, "warning_fractions (1.0,)"),
        ({"resolve": None}, "needs department, ack and resolve"),
    ],
    ids=[
        "unknown-key",
        "unknown-calendar",
        "bad-priority",
        "bad-ack-duration",
        "resolve-without-unit",
        "bad-max-pause",
        "warning-above-one",
        "warning-zero",
        "warning-one",
        "missing-resolve",
    ],
)
def test_a_bad_policy_names_the_file_the_policys_line_and_the_reason(policy_file, fields, reason):
    # given
    path = policy_file(GOOD_HEAD + claims_entry(**fields))

    # when
    with pytest.raises(PolicyFileError) as raised:
        load_policies(path)

    # then
    message = str(raised.value)
    assert message.startswith(f"{path}:10: "), message
    assert reason in message.removeprefix(f"{path}:10: ")


def test_the_claims_entry_loads_when_no_field_is_bad(policy_file):
    # The table above proves something only if the entry is fine without its bad field.
    book = load_policies(policy_file(GOOD_HEAD + claims_entry()))

    assert [p.department for p in book.policies] == ["billing", "claims"]


def test_a_non_24x7_calendar_names_the_file_and_the_calendars_line(policy_file):
    path = policy_file(
        """
        calendars:
          always:
            hours: 24x7
          office:
            hours: "08:00-17:00"
        policies:
          - {department: billing, calendar: always, ack: 4h, resolve: 2d}
        """
    )

    with pytest.raises(PolicyFileError) as raised:
        load_policies(path)

    assert str(raised.value).startswith(f"{path}:5: ")
    assert "office" in str(raised.value)


def test_invalid_yaml_names_the_file_and_the_offending_line(policy_file):
    # given: line 4 is indented one space less than the key above it
    path = policy_file("policies:\n  - department: billing\n    ack: 4h\n   resolve: 2d\n")

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:4: not valid YAML"):
        load_policies(path)


def test_a_file_without_a_policies_list_is_refused_at_line_1(policy_file):
    path = policy_file("calendars:\n  always:\n    hours: 24x7\n")

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:1: "):
        load_policies(path)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(PolicyFileError, match=re.escape(str(path))):
        load_policies(path)


def test_a_calendar_that_is_not_a_mapping_is_refused_naming_the_file(policy_file):
    path = policy_file(
        """
        calendars:
          always: 24x7
        policies:
          - {department: billing, calendar: always, ack: 4h, resolve: 2d}
        """
    )

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:\d+: .*always"):
        load_policies(path)


def test_a_policy_that_is_not_a_mapping_is_refused_naming_the_file(policy_file):
    path = policy_file(
        """
        calendars:
          always: {hours: 24x7}
        policies:
          - billing
        """
    )

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:\d+: "):
        load_policies(path)


def test_pause_states_given_as_one_word_instead_of_a_list_is_refused(policy_file):
    # Read as a string it would silently become the "states" W, A, I, T, ...
    path = policy_file(
        """
        calendars:
          always: {hours: 24x7}
        policies:
          - {department: billing, calendar: always, ack: 4h, resolve: 2d, pause_states: WAITING_ON_CUSTOMER}
        """
    )

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:4: .*pause_states"):
        load_policies(path)
