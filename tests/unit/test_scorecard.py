"""The scorecard from plain records: legs, compliance, breaches, percentiles, repeats, cost,
FCR and reopens over a half-open period; and the business time a clock has left."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from sla.domain.calendar import AlwaysOpen, WorkingHours
from sla.domain.scorecard import (
    ClockRecord,
    LegRecord,
    MixedCurrencies,
    Period,
    ReopenRecord,
    RepeatRecord,
    business_time_left,
    percentile,
    scorecard,
)
from tests.unit.conftest import T0

H = timedelta(hours=1)
M = timedelta(minutes=1)
PERIOD = Period(T0, T0 + 24 * H)
BEFORE, START, INSIDE, END = T0 - H, T0, T0 + 2 * H, T0 + 24 * H


def leg(handoff_id: str, created_at=INSIDE, department: str = "billing") -> LegRecord:
    return LegRecord(handoff_id, department, created_at=created_at)


def clock(kind: str = "ack", *, breached_at=None, stopped_at=None, elapsed=None, department: str = "billing",
          handoff_id: str = "h-1", sequence: int = 1) -> ClockRecord:
    return ClockRecord(
        handoff_id=handoff_id, department=department, kind=kind, sequence=sequence, started_at=BEFORE,
        deadline=BEFORE + 4 * H, target=4 * H, policy_version="v1", running=stopped_at is None,
        breached_at=breached_at, stopped_at=stopped_at, late=breached_at is not None and stopped_at is not None,
        elapsed=elapsed if elapsed is not None else (H if stopped_at else None),
    )


def repeat(contact_id: str, cause: str = "within_sla", at=INSIDE, handoff_id: str = "h-1",
           department: str = "billing", cost: int = 0, currency: str = "EUR") -> RepeatRecord:
    return RepeatRecord(contact_id, cause, at, handoff_id, department, cost, currency)


def card(department: str = "billing", legs=(), clocks=(), repeats=(), reopens=(), contacts=(), currency: str = ""):
    return scorecard(department, PERIOD, legs=legs, clocks=clocks, repeats=repeats, reopens=reopens,
                     contacts=contacts, default_currency=currency)


# Percentiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "minutes, percent, expected",
    [
        ([], 50, 0),
        ([7], 50, 7),
        ([7], 90, 7),
        ([1, 2], 50, 1),
        ([1, 2], 90, 2),
        ([3, 1, 2], 50, 2),
        (list(range(1, 11)), 50, 5),
        (list(range(1, 11)), 90, 9),
        (list(range(1, 12)), 90, 10),
        (list(range(1, 101)), 90, 90),
        ([5, 5, 5, 1], 50, 5),
    ],
)
def test_percentiles_are_nearest_rank_and_zero_when_empty(minutes, percent, expected):
    assert percentile([m * M for m in minutes], percent) == expected * M


# Legs and breaches at the period's edges ----------------------------------------------------


@pytest.mark.parametrize(
    "created_at, department, counted",
    [
        (START, "billing", True),
        (INSIDE, "billing", True),
        (END - timedelta(microseconds=1), "billing", True),
        (END, "billing", False),
        (BEFORE, "billing", False),
        (INSIDE, "claims", False),
        (None, "billing", False),
    ],
)
def test_legs_count_those_of_the_department_created_in_the_half_open_period(created_at, department, counted):
    assert card(legs=[leg("h-1", created_at, department)]).legs == int(counted)


@pytest.mark.parametrize(
    "breached_at, department, counted",
    [(START, "billing", 1), (INSIDE, "billing", 1), (END, "billing", 0), (BEFORE, "billing", 0),
     (INSIDE, "claims", 0), (None, "billing", 0)],
)
def test_breaches_count_clocks_of_the_department_breached_in_the_period(breached_at, department, counted):
    assert card(clocks=[clock(breached_at=breached_at, department=department)]).breaches == counted


def test_the_whole_centre_counts_every_department():
    legs = [leg("h-1"), leg("h-2", department="claims")]
    clocks = [clock(breached_at=INSIDE), clock(breached_at=INSIDE, department="claims", handoff_id="h-2")]
    whole = card("", legs=legs, clocks=clocks)
    assert (whole.department, whole.legs, whole.breaches) == ("", 2, 2)


# Compliance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "clocks, expected",
    [
        # nothing decided in the period: unknown (n = 0), not compliant
        ([], (0.0, 0, 0)),
        ([clock()], (0.0, 0, 1)),  # running, not breached: no outcome yet, counted as running
        ([clock(stopped_at=INSIDE)], (1.0, 1, 0)),
        ([clock(breached_at=INSIDE)], (0.0, 1, 0)),
        # a clock breached in the period and stopped late in it counts once, as a breach
        ([clock(breached_at=INSIDE, stopped_at=INSIDE + H)], (0.0, 1, 0)),
        # its outcome was the breach before the period: the late stop in the period is not counted
        ([clock(breached_at=BEFORE, stopped_at=INSIDE), clock(stopped_at=INSIDE, handoff_id="h-2")], (1.0, 1, 0)),
        ([clock(stopped_at=INSIDE), clock(breached_at=INSIDE, handoff_id="h-2")], (0.5, 2, 0)),
        ([clock(stopped_at=INSIDE, handoff_id=f"h-{n}") for n in range(3)] + [clock(breached_at=START, handoff_id="h-9")],
         (0.75, 4, 0)),
        ([clock(stopped_at=END), clock(breached_at=END, handoff_id="h-2")], (0.0, 0, 0)),
        # another department's clocks do not count
        ([clock(stopped_at=INSIDE), clock(breached_at=INSIDE, department="claims")], (1.0, 1, 0)),
    ],
)
def test_ack_compliance_is_the_share_of_clocks_decided_in_the_period_that_met_their_target(clocks, expected):
    result = card(clocks=clocks)
    assert (result.ack_compliance, result.ack_outcomes, result.ack_running) == expected


def test_ack_and_resolve_compliance_are_computed_apart_and_every_resolve_clock_counts():
    clocks = [
        clock("ack", stopped_at=INSIDE),
        clock("resolve", breached_at=INSIDE, sequence=1),
        clock("resolve", stopped_at=INSIDE + H, sequence=2),  # after a reopen
    ]
    result = card(clocks=clocks)
    assert (result.ack_compliance, result.resolve_compliance) == (1.0, 0.5)


# Time to acknowledge / resolve ---------------------------------------------------------------


def test_tta_and_ttr_percentiles_take_the_elapsed_time_of_clocks_stopped_in_the_period_late_or_not():
    acks = [clock("ack", stopped_at=INSIDE, elapsed=m * M, handoff_id=f"a-{m}") for m in range(1, 11)]
    late = clock("ack", breached_at=BEFORE, stopped_at=INSIDE, elapsed=600 * M, handoff_id="late")
    outside = clock("ack", stopped_at=BEFORE, elapsed=999 * M, handoff_id="old")
    resolves = [clock("resolve", stopped_at=INSIDE, elapsed=h * H, handoff_id=f"r-{h}") for h in (5, 1, 3)]
    result = card(clocks=[*acks, late, outside, *resolves, clock("resolve")])
    assert (result.tta_p50, result.tta_p90) == (6 * M, 10 * M)
    assert (result.ttr_p50, result.ttr_p90) == (3 * H, 5 * H)


def test_percentiles_are_zero_when_no_clock_stopped():
    result = card(clocks=[clock(), clock(breached_at=INSIDE)])
    assert (result.tta_p50, result.tta_p90, result.ttr_p50, result.ttr_p90) == (timedelta(0),) * 4


# Repeat contacts, failure demand and its cost ---------------------------------------------------


def test_repeats_are_counted_by_cause_for_the_department_in_the_period():
    repeats = [
        repeat("c-1", "sla_breached"), repeat("c-2", "sla_breached"), repeat("c-3", "within_sla"),
        repeat("c-4", "after_resolution", at=START),
        repeat("c-5", "within_sla", at=END),  # after the period
        repeat("c-6", "sla_breached", department="claims"),
        repeat("c-7", "unattributed", handoff_id="", department=""),
    ]
    result = card(repeats=repeats)
    assert result.repeat_contacts == {"sla_breached": 2, "within_sla": 1, "after_resolution": 1, "unattributed": 0}
    assert result.avoidable_repeats == 2
    whole = card("", repeats=repeats)
    assert whole.repeat_contacts == {"sla_breached": 3, "within_sla": 1, "after_resolution": 1, "unattributed": 1}


@pytest.mark.parametrize(
    "repeats, default, expected",
    [
        ([], "EUR", (0, "EUR")),
        ([], "", (0, "")),
        ([repeat("c-1", "sla_breached", cost=450), repeat("c-2", "sla_breached", cost=300)], "EUR", (750, "EUR")),
        # only avoidable repeats cost: the others are not failure demand
        ([repeat("c-1", "sla_breached", cost=450), repeat("c-2", "within_sla", cost=300)], "EUR", (450, "EUR")),
        # the repeats' currency wins over the default
        ([repeat("c-1", "sla_breached", cost=120, currency="GBP")], "EUR", (120, "GBP")),
        ([repeat("c-1", "sla_breached", cost=120, at=BEFORE)], "EUR", (0, "EUR")),
    ],
)
def test_failure_demand_cost_sums_the_avoidable_repeats_in_their_currency(repeats, default, expected):
    result = card(repeats=repeats, currency=default)
    assert (result.failure_demand_cost_minor, result.currency) == expected


def test_costs_in_two_currencies_are_refused_rather_than_added():
    repeats = [repeat("c-1", "sla_breached", cost=1, currency="EUR"),
               repeat("c-2", "sla_breached", cost=1, currency="GBP")]
    with pytest.raises(MixedCurrencies, match="EUR, GBP"):
        card(repeats=repeats)


# First contact resolution -----------------------------------------------------------------


@pytest.mark.parametrize(
    "legs, clocks, repeats, expected",
    [
        ([], [], [], (0.0, 0, 0)),
        # open legs nobody called about: not known yet, shown as open
        ([leg("h-1"), leg("h-2")], [], [], (0.0, 0, 2)),
        ([leg("h-1"), leg("h-2")], [clock("resolve", handoff_id="h-1")], [], (0.0, 0, 2)),
        # ended legs without a repeat resolved at the first contact
        ([leg("h-1"), leg("h-2")], [clock("resolve", stopped_at=INSIDE, handoff_id="h-1")], [], (1.0, 1, 1)),
        # h-1 repeated twice counts once; h-4's repeat came after the period and still counts; all four are open, two of them known
        ([leg(f"h-{n}") for n in range(1, 5)], [],
         [repeat("c-1", handoff_id="h-1"), repeat("c-2", handoff_id="h-1"), repeat("c-3", handoff_id="h-4", at=END + H)],
         (0.0, 2, 4)),
        # a repeat of a leg created before the period does not count against this period's legs
        ([leg("h-1"), leg("h-0", created_at=BEFORE)], [clock("resolve", stopped_at=INSIDE, handoff_id="h-1")],
         [repeat("c-1", handoff_id="h-0")], (1.0, 1, 0)),
        ([leg("h-1")], [], [repeat("c-1", "sla_breached", handoff_id="h-1")], (0.0, 1, 1)),
    ],
)
def test_a_departments_fcr_counts_only_legs_whose_outcome_is_known(legs, clocks, repeats, expected):
    result = card(legs=legs, clocks=clocks, repeats=repeats)
    assert (result.first_contact_resolution, result.fcr_n, result.open_legs) == expected


@pytest.mark.parametrize(
    "contacts, repeats, expected",
    [
        (0, 0, 0.0),
        (10, 0, 1.0),
        (10, 2, 0.8),
        (4, 4, 0.0),
        (1, 3, 0.0),  # repeats read before their contacts: never below zero
    ],
)
def test_the_whole_centres_fcr_is_one_minus_repeats_per_contact_in_the_period(contacts, repeats, expected):
    times = [INSIDE] * contacts + [BEFORE, END]  # contacts outside the period do not count
    repeated = [repeat(f"c-{n}", "unattributed", handoff_id="", department="") for n in range(repeats)]
    assert card("", contacts=times, repeats=repeated).first_contact_resolution == pytest.approx(expected)


# Reopens -------------------------------------------------------------------------------------


def test_reopens_count_the_departments_reopens_in_the_period():
    reopens = [ReopenRecord("h-1", "billing", INSIDE), ReopenRecord("h-1", "billing", START),
               ReopenRecord("h-2", "billing", END), ReopenRecord("h-3", "claims", INSIDE)]
    assert (card(reopens=reopens).reopens, card("", reopens=reopens).reopens) == (2, 3)


def test_a_period_must_end_after_it_starts():
    with pytest.raises(ValueError, match="not after"):
        Period(T0, T0)


# Business time left ----------------------------------------------------------------------


OFFICE = WorkingHours("office", "Europe/Berlin", {day: ((time(8), time(17)),) for day in range(5)})
FRIDAY_4PM_BERLIN = T0 + timedelta(days=4, hours=6)  # T0 is Monday 09:00 UTC = 10:00 in Berlin


def running(deadline, **fields) -> ClockRecord:
    return ClockRecord("h-1", "billing", "resolve", 1, T0, deadline, 8 * H, "v1", **fields)


@pytest.mark.parametrize(
    "clock_, calendar, now, max_pause, expected",
    [
        (running(T0 + 8 * H), AlwaysOpen(), T0 + 3 * H, None, 5 * H),
        (running(T0 + 8 * H), AlwaysOpen(), T0 + 9 * H, None, timedelta(0)),  # past the deadline
        (running(T0 + 8 * H, breached_at=T0 + 8 * H), AlwaysOpen(), T0 + 9 * H, None, timedelta(0)),
        # stopped: nothing left
        (running(T0 + 8 * H, running=False, stopped_at=T0 + H), AlwaysOpen(), T0 + 2 * H, None, timedelta(0)),
        # paused: frozen at the pause however late it is asked
        (running(T0 + 8 * H, paused_at=T0 + 2 * H), AlwaysOpen(), T0 + 30 * H, None, 6 * H),
        # paused with a cap of 3 h: frozen until the cap, then running towards a deadline 3 h later
        (running(T0 + 8 * H, paused_at=T0 + 2 * H), AlwaysOpen(), T0 + 4 * H, 3 * H, 6 * H),
        (running(T0 + 8 * H, paused_at=T0 + 2 * H), AlwaysOpen(), T0 + 6 * H, 3 * H, 5 * H),
        # a cap already used up by earlier pauses (deadline 3 h past start + target): runs at once
        (running(T0 + 11 * H, paused_at=T0 + 5 * H), AlwaysOpen(), T0 + 7 * H, 3 * H, 4 * H),
        # working hours: Friday 16:00 to Monday 10:00 in Berlin is 1 h + 2 h of business time
        (running(FRIDAY_4PM_BERLIN + timedelta(days=2, hours=18)), OFFICE, FRIDAY_4PM_BERLIN, None, 3 * H),
    ],
)
def test_business_time_left_runs_down_only_while_the_clock_runs(clock_, calendar, now, max_pause, expected):
    assert business_time_left(clock_, calendar, now, max_pause) == expected


def test_the_costliest_legs_are_those_whose_avoidable_repeats_cost_most_costliest_first():
    legs = [LegRecord(f"h-{n}", "billing", case_id=f"CASE-{n}", created_at=BEFORE) for n in range(1, 13)]
    repeats = [repeat(f"c-{n}-{k}", "sla_breached", handoff_id=f"h-{n}", cost=100 * n)
               for n in range(1, 13) for k in range(2 if n == 1 else 1)]
    repeats += [repeat("c-late", "sla_breached", handoff_id="h-1", cost=5000, at=END),  # after the period
                repeat("c-ok", "within_sla", handoff_id="h-2", cost=5000)]  # not avoidable
    result = card(legs=legs, repeats=repeats)
    assert [(leg.case_id, leg.avoidable_repeats, leg.cost_minor) for leg in result.costliest_legs[:2]] == [
        ("CASE-12", 1, 1200), ("CASE-11", 1, 1100)]
    assert len(result.costliest_legs) == 10 and ("CASE-1", 2, 200) not in [
        (leg.case_id, leg.avoidable_repeats, leg.cost_minor) for leg in result.costliest_legs]
