"""Reading config/sla-policies.yaml: durations, calendars, the shipped file, and errors naming file:line."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from sla.adapters.policy_file import PolicyFileError, load_policies, parse_duration, parse_target
from sla.domain.calendar import AlwaysOpen, Holidays, WorkingHours
from sla.domain.policy import ANY, Target

SPLIT_DAY = ((time(8), time(12)), (time(13), time(17)))

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
        assert found.ack_target.days or found.ack_target.time > timedelta(0)
        assert found.resolve_target.days > found.ack_target.days
        assert found.version
    assert book.find("billing", "URGENT").ack_target == Target(time=timedelta(minutes=30))
    assert book.find("billing", "NORMAL").resolve_target == Target(days=2)
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


# The hours of OFFICE below, for cases that replace them.
HOURS = 'mon-fri: ["08:00-12:00", "13:00-17:00"]\n      sat: ["09:00-13:00"]'
OFFICE = """\
calendars:
  office:
    timezone: Europe/Berlin
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["09:00-13:00"]
    holidays:
      country: DE
      dates: [2026-12-24]
policies:
  - {department: billing, calendar: office, ack: 4h, resolve: 2d}
"""


def test_a_working_hours_calendar_reads_zone_windows_and_holidays(policy_file):
    # when
    calendar = load_policies(policy_file(OFFICE)).find("billing", "NORMAL").calendar

    # then
    assert isinstance(calendar, WorkingHours)
    assert (calendar.name, calendar.zone) == ("office", "Europe/Berlin")
    assert calendar.week == {**{day: SPLIT_DAY for day in range(5)}, 5: ((time(9), time(13)),)}
    assert all(day in calendar.holidays for day in (date(2026, 1, 1), date(2026, 4, 3), date(2026, 10, 3),
                                                    date(2026, 12, 24)))
    assert date(2026, 1, 6) not in calendar.holidays  # Epiphany is a holiday in Bavaria, not nationwide


@pytest.mark.parametrize("year", [1995, 2024, 2027, 2061], ids=["long-past", "last-year", "next-year", "far-ahead"])
def test_country_holidays_hold_for_every_year_and_a_subdivision_adds_its_own(policy_file, year):
    path = policy_file(OFFICE.replace("country: DE", "country: DE\n      subdivision: BY"))

    calendar = load_policies(path).policies[0].calendar

    assert all(day in calendar.holidays for day in (date(year, 1, 1), date(year, 12, 25), date(year, 1, 6)))
    assert date(year, 1, 2) not in calendar.holidays
    assert date(2026, 12, 24) in calendar.holidays and date(year, 12, 24) not in calendar.holidays


def test_the_policy_version_does_not_depend_on_the_years_asked_about(policy_file):
    # given a calendar on country holidays, versioned before any date was asked about
    path = policy_file(OFFICE)
    before = load_policies(path).policies[0].version

    # when holidays of many years are looked up
    calendar = load_policies(path).policies[0].calendar
    assert sum(date(year, 12, 25) in calendar.holidays for year in range(1991, 2061)) == 70

    # then a fresh load gives the same version
    assert load_policies(path).policies[0].version == before


@pytest.mark.parametrize(
    "text, target",
    [
        ("2d", Target(days=2)),
        ("1d4h", Target(days=1, time=timedelta(hours=4))),
        ("48h", Target(time=timedelta(hours=48))),
        ("1h30m", Target(time=timedelta(minutes=90))),
    ],
    ids=["working-days", "a-day-then-hours", "hours-stay-business-time", "hours-and-minutes"],
)
def test_a_target_in_days_counts_working_days_and_the_rest_business_time(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "spec, week",
    [
        ({"mon,wed-thu": "09:00-17:00"}, {day: ((time(9), time(17)),) for day in (0, 2, 3)}),
        ({"Fri": ["22:00-24:00"], "sat": ["00:00-02:00"]}, {4: ((time(22), time(0)),), 5: ((time(0), time(2)),)}),
        ({"mon": ["13:00-17:00", "08:00-12:00"], "tue": []}, {0: SPLIT_DAY, 1: ()}),
    ],
    ids=["lists-and-ranges-of-days", "end-of-2400-is-midnight", "windows-sorted-and-closed-days"],
)
def test_days_and_windows_are_read_in_every_documented_form(policy_file, spec, week):
    hours = "\n".join(f"      {day}: {windows!r}" for day, windows in spec.items())
    path = policy_file(OFFICE.replace(f"      {HOURS}", hours))

    assert load_policies(path).policies[0].calendar.week == week


def test_24x7_alone_counts_every_hour_and_with_a_zone_it_can_have_holidays(policy_file):
    path = policy_file(
        """
        calendars:
          always: {hours: 24x7}
          always-but-christmas: {timezone: Europe/Berlin, hours: 24x7, holidays: {dates: [2026-12-25]}}
        policies:
          - {department: billing, calendar: always, ack: 4h, resolve: 2d}
          - {department: claims, calendar: always-but-christmas, ack: 4h, resolve: 2d}
        """
    )

    billing, claims = (p.calendar for p in load_policies(path).policies)

    assert billing == AlwaysOpen("always")
    assert claims.week == {day: ((time(0), time(0)),) for day in range(7)}
    assert claims.holidays == Holidays(frozenset({date(2026, 12, 25)}))


@pytest.mark.parametrize(
    "old, new, line, reason",
    [
        ("Europe/Berlin", "Europe/Berlim", 3, "unknown time zone 'Europe/Berlim'"),
        ("    timezone: Europe/Berlin\n", "", 2, "calendar 'office' needs a timezone"),
        ('"08:00-12:00", "13:00-17:00"', '"08:00-12:00", "1pm-5pm"', 5, "window '1pm-5pm' is not like 08:00-12:00"),
        ('"09:00-13:00"', '"09:00-24:30"', 6, "window '09:00-24:30' is not like"),
        ('"09:00-13:00"', '"9:00-13:00"', 6, "window '9:00-13:00' is not like"),
        ('"13:00-17:00"', '"11:00-17:00"', 5, "windows 08:00-12:00 and 11:00-17:00 overlap"),
        ('"09:00-13:00"', '"22:00-02:00"', 6, "window 22:00-02:00 must end after it starts and may not cross midnight"),
        ("sat:", "sa:", 6, "unknown day 'sa'"),
        ("sat:", "saturday:", 6, "unknown day 'saturday'"),
        ("mon-fri:", "fri-mon:", 5, "day range 'fri-mon' runs backwards"),
        ("sat:", "fri:", 6, "fri: fri already has hours"),
        ('sat: ["09:00-13:00"]', "sat: {from: 9}", 6, "sat: windows must be a list"),
        (HOURS, "mon-fri: []", 4, "calendar 'office' has no working hours"),
        (f"hours:\n      {HOURS}", 'hours: "08:00-17:00"', 4, "hours must be 24x7 or days with windows"),
        ("country: DE", "country: XX", 8, "unknown country 'XX'"),
        ("country: DE", "country: NO", 8, "country False is not a code such as DE (YAML reads an unquoted NO"),
        ("country: DE", "country: DE\n      subdivision: XY", 9, "DE has no subdivision 'XY'"),
        ("country: DE", "subdivision: BY", 8, "a subdivision needs a country"),
        ("country: DE", "country: DE\n      region: BY", 9, "holidays: unknown keys ['region']"),
        ("dates: [2026-12-24]", "dates: [2026-12-24, xmas]", 9, "holiday 'xmas' is not a date like 2026-12-24"),
        ("dates: [2026-12-24]", "dates: 2026-12-24", 9, "dates must be a list"),
        ("dates: [2026-12-24]", "dates: [2026-12-24 10:00:00]", 9, "is not a date like 2026-12-24"),
        ("    holidays:", "    holiday:", 7, "calendar 'office': unknown keys ['holiday']"),
    ],
    ids=[
        "unknown-time-zone",
        "missing-time-zone",
        "bad-window-syntax",
        "end-after-2400",
        "hour-without-leading-zero",
        "overlapping-windows",
        "window-crossing-midnight",
        "unknown-day",
        "full-day-name",
        "backwards-day-range",
        "day-given-twice",
        "windows-not-a-list",
        "no-working-hours",
        "hours-a-bare-window",
        "unknown-country",
        "unquoted-norway",
        "unknown-subdivision",
        "subdivision-without-country",
        "unknown-holidays-key",
        "bad-holiday-date",
        "holiday-dates-not-a-list",
        "holiday-with-a-time",
        "unknown-calendar-key",
    ],
)
def test_a_bad_calendar_names_the_file_the_line_and_the_reason(policy_file, old, new, line, reason):
    # given
    assert old in OFFICE
    path = policy_file(OFFICE.replace(old, new))

    # when
    with pytest.raises(PolicyFileError) as raised:
        load_policies(path)

    # then
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message


def test_a_bad_window_in_a_block_list_names_its_own_line(policy_file):
    block = 'mon-fri:\n        - "08:00-12:00"\n        - "13-17"'
    path = policy_file(OFFICE.replace('mon-fri: ["08:00-12:00", "13:00-17:00"]', block))

    with pytest.raises(PolicyFileError, match=rf"^{re.escape(str(path))}:7: .*'13-17'"):
        load_policies(path)


def test_the_shipped_calendars_close_on_german_holidays_and_keep_urgent_billing_24x7():
    book = load_policies(SHIPPED)

    office = book.find("billing", "NORMAL").calendar
    assert book.find("accounts", "NORMAL").calendar == office
    assert book.find("claims", "NORMAL").calendar == office
    assert (office.zone, date(2026, 12, 25) in office.holidays) == ("Europe/Berlin", True)
    assert book.find("field-service", "NORMAL").calendar.week[5] == ((time(7), time(19)),)
    assert 6 not in book.find("field-service", "NORMAL").calendar.week
    assert isinstance(book.find("billing", "URGENT").calendar, AlwaysOpen)
    assert isinstance(book.find("somewhere-else", "LOW").calendar, AlwaysOpen)


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


DEMO = SHIPPED.with_name("demo-sla-policies.yaml")
SHIPPED_COSTS = {"call": 450, "chat": 250, "email": 300, "messaging": 200}
# A repeat_contacts section on lines 10 to 17, after GOOD_HEAD.
REPEATS = """\
repeat_contacts:
  window: 3d
  transfer_grace: 10m
  currency: GBP
  cost_per_contact:
    call: 500
    chat: 300
    email: 350
"""


@pytest.mark.parametrize(
    "path, window, grace",
    [(SHIPPED, timedelta(days=7), timedelta(minutes=15)), (DEMO, timedelta(minutes=10), timedelta(seconds=20))],
    ids=["shipped", "demo"],
)
def test_the_shipped_files_price_repeats_on_every_channel(path, window, grace):
    rules = load_policies(path).repeats

    assert (rules.window, rules.transfer_grace, rules.currency) == (window, grace, "EUR")
    assert rules.cost_per_contact == SHIPPED_COSTS


def test_a_repeat_contacts_section_sets_window_grace_currency_and_costs(policy_file):
    rules = load_policies(policy_file(GOOD_HEAD + REPEATS)).repeats

    assert (rules.window, rules.transfer_grace, rules.currency) == (timedelta(days=3), timedelta(minutes=10), "GBP")
    assert (rules.cost_of("call"), rules.cost_of("email"), rules.cost_of("messaging")) == (500, 350, 0)


@pytest.mark.parametrize(
    "section, window, grace, costs",
    [
        ("", timedelta(days=7), timedelta(minutes=15), {}),
        ("repeat_contacts:\n", timedelta(days=7), timedelta(minutes=15), {}),
        ("repeat_contacts: {window: 1d}\n", timedelta(days=1), timedelta(minutes=15), {}),
        ("repeat_contacts:\n  window: 5m\n  transfer_grace: 30s\n", timedelta(minutes=5), timedelta(seconds=30), {}),
        ("repeat_contacts:\n  cost_per_contact: {call: 0, chat: 250}\n", timedelta(days=7), timedelta(minutes=15),
         {"call": 0, "chat": 250}),
    ],
    ids=["no-section", "empty-section", "window-only", "shorter-window-and-grace-together", "flow-mapping-costs"],
)
def test_every_repeat_contacts_key_is_optional(policy_file, section, window, grace, costs):
    rules = load_policies(policy_file(GOOD_HEAD + section)).repeats

    assert (rules.window, rules.transfer_grace, rules.currency, rules.cost_per_contact) == (window, grace, "EUR", costs)


@pytest.mark.parametrize(
    "old, new, line, reason",
    [
        ("window: 3d", "window: 3 days", 11, "repeat_contacts: window: '3 days' is not a duration"),
        ("window: 3d", "window: 5m", 12, "repeat_contacts: transfer_grace: 0:10:00 must be at least zero and shorter"),
        ("transfer_grace: 10m", "transfer_grace: 4d", 12, "transfer_grace: 4 days, 0:00:00 must be"),
        ("  window: 3d\n  transfer_grace: 10m\n", "  window: 10m\n", 10,
         "transfer_grace: 0:15:00 must be at least zero and shorter than the window (0:10:00)"),
        ("currency: GBP", "currency: gbp", 13, "repeat_contacts: currency: 'gbp' is not an ISO 4217 code such as EUR"),
        ("currency: GBP", "currency: 826", 13, "repeat_contacts: currency: '826' is not an ISO 4217 code"),
        ("chat: 300", "fax: 300", 16, "repeat_contacts: cost_per_contact: unknown channel 'fax'; "
                                      "use call, chat, email, messaging"),
        ("email: 350", "email: -1", 17, "repeat_contacts: cost_per_contact: email: -1 is not a whole, non-negative"),
        ("call: 500", "call: 4.50", 15, "cost_per_contact: call: 4.5 is not a whole"),
        ("call: 500", "call: yes", 15, "cost_per_contact: call: True is not a whole"),
        ("  cost_per_contact:\n    call: 500\n    chat: 300\n    email: 350\n", "  cost_per_contact: 450\n", 14,
         "repeat_contacts: cost_per_contact: must be a mapping of channel to minor units"),
        ("  currency: GBP\n", "  currency: GBP\n  colour: red\n", 14, "repeat_contacts: unknown keys ['colour']; "
                                                                     "use window, transfer_grace, currency"),
        (REPEATS, "repeat_contacts: 7d\n", 10, "repeat_contacts must be a mapping such as {window: 7d}"),
    ],
    ids=[
        "bad-window", "window-shorter-than-the-grace", "grace-longer-than-the-window",
        "window-shorter-than-the-default-grace", "lower-case-currency", "numeric-currency", "unknown-channel",
        "negative-cost", "fractional-cost", "boolean-cost", "costs-not-a-mapping", "unknown-key",
        "section-not-a-mapping",
    ],
)
def test_a_bad_repeat_contacts_section_names_the_file_the_line_and_the_reason(policy_file, old, new, line, reason):
    # given
    assert old in REPEATS
    path = policy_file(GOOD_HEAD + REPEATS.replace(old, new))

    # when
    with pytest.raises(PolicyFileError) as raised:
        load_policies(path)

    # then
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message
