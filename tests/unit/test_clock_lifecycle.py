"""SLA clocks over a leg's life: warnings, pauses, reopen, priority change."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from tests.unit.conftest import T0, leg_info, policy, utc
from sla.domain.calendar import AlwaysOpen, WorkingHours
from sla.domain.clocks import (
    ACK,
    RESOLVE,
    Clock,
    ClockBreached,
    ClockMet,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockWarning,
    due_events,
    next_deadline,
    next_due,
    pause,
    paused_total,
    record_warning,
    recompute,
    reopen,
    resume,
    start,
    stop,
)
from sla.domain.policy import Policy

H = timedelta(hours=1)
TICK = timedelta(microseconds=1)
RESOLVE_TARGET = timedelta(days=2)
DEADLINE = T0 + RESOLVE_TARGET
FRACTIONS = (0.5, 0.8)
HALF, FOUR_FIFTHS = T0 + 24 * H, T0 + timedelta(hours=38.4)
CALENDAR = AlwaysOpen("always")
# Monday to Friday 08:00-17:00 UTC; T0 is Monday 09:00.
OFFICE = WorkingHours("office", "UTC", {day: ((time(8), time(17)),) for day in range(5)})


def resolving(resolve: timedelta = RESOLVE_TARGET, at=T0):
    """A leg whose only clock is resolve, started at `at`."""
    state, _ = start(leg_info(), policy(resolve=resolve), at, kinds=(RESOLVE,))
    return state


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def paused_between(begin, end, state=None, max_pause=None):
    """The resolve clock paused at `begin` and resumed at `end`."""
    state, _ = pause(state or resolving(), begin, CALENDAR, max_pause)
    state, _ = resume(state, end, CALENDAR, max_pause)
    return state


# --- warnings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now, expected",
    [
        (HALF - TICK, []),
        (HALF, []),
        (HALF + TICK, [0.5]),
        (FOUR_FIFTHS, [0.5]),
        (FOUR_FIFTHS + TICK, [0.5, 0.8]),
        (DEADLINE, [0.5, 0.8]),
        (DEADLINE + TICK, [0.5, 0.8, "breach"]),
        (DEADLINE + timedelta(days=9), [0.5, 0.8, "breach"]),
    ],
    ids=["before-half", "at-half", "past-half", "at-four-fifths", "past-four-fifths", "at-the-deadline",
         "past-the-deadline", "long-after"],
)
def test_due_events_emit_every_threshold_run_past_in_order_dated_at_the_threshold(now, expected):
    dated_at = {0.5: HALF, 0.8: FOUR_FIFTHS, "breach": DEADLINE}

    _, events = due_events(resolving(), now, CALENDAR, FRACTIONS)

    labels = {ClockWarning: lambda e: e.fraction, ClockBreached: lambda e: "breach"}
    assert [labels[type(e)](e) for e in events] == expected
    assert [e.occurred_at for e in events] == [dated_at[x] for x in expected]


def test_each_warning_is_emitted_once_per_clock():
    # given the half warning already emitted
    state, first = due_events(resolving(), HALF + TICK, CALENDAR, FRACTIONS)

    # when checked again later
    state, second = due_events(state, FOUR_FIFTHS + TICK, CALENDAR, FRACTIONS)
    _, third = due_events(state, FOUR_FIFTHS + H, CALENDAR, FRACTIONS)

    # then
    assert [e.fraction for e in first] == [0.5]
    assert [e.fraction for e in second] == [0.8]
    assert third == []
    assert state.clocks[RESOLVE].warned == (0.5, 0.8)


def test_warnings_count_business_time_on_a_working_hours_calendar():
    # given a 9 business-hour target from Monday 09:00 on 08:00-17:00 weekdays
    rules = Policy("billing", "*", "*", H, 9 * H, OFFICE).with_version()
    state, _ = start(leg_info(), rules, T0, kinds=(RESOLVE,))

    # when checked on Tuesday at noon
    _, events = due_events(state, utc(2025, 3, 4, 12, 0), OFFICE, FRACTIONS)

    # then 4.5 h and 7.2 h of working time fell on Monday, the deadline on Tuesday 09:00
    assert [e.occurred_at for e in events] == [utc(2025, 3, 3, 13, 30), utc(2025, 3, 3, 16, 12),
                                               utc(2025, 3, 4, 9, 0)]


def test_no_warnings_after_the_clock_breached():
    # given a breach recorded without its warnings
    state, _ = due_events(resolving(), DEADLINE + TICK, CALENDAR)

    _, events = due_events(state, DEADLINE + H, CALENDAR, FRACTIONS)

    assert events == []


def test_record_warning_stops_the_warning_being_emitted_again():
    state = record_warning(resolving(), RESOLVE, 1, 0.5)

    _, events = due_events(state, FOUR_FIFTHS + TICK, CALENDAR, FRACTIONS)

    assert [e.fraction for e in events] == [0.8]
    assert record_warning(state, RESOLVE, 1, 0.5) is state
    assert record_warning(state, RESOLVE, 2, 0.8) is state


@pytest.mark.parametrize(
    "prepare, expected",
    [
        (lambda s: s, HALF),
        (lambda s: due_events(s, HALF + TICK, CALENDAR, FRACTIONS)[0], FOUR_FIFTHS),
        (lambda s: due_events(s, FOUR_FIFTHS + TICK, CALENDAR, FRACTIONS)[0], DEADLINE),
        (lambda s: due_events(s, DEADLINE + TICK, CALENDAR, FRACTIONS)[0], None),
        (lambda s: pause(s, T0 + H)[0], None),
        (lambda s: stop(s, RESOLVE, T0 + H, CALENDAR)[0], None),
        (lambda s: paused_between(T0 + H, T0 + 3 * H, s), HALF + 2 * H),
    ],
    ids=["fresh", "half-warned", "all-warned", "breached", "paused", "stopped", "resumed"],
)
def test_next_due_is_the_instant_after_the_next_warning_or_the_deadline(prepare, expected):
    # a threshold is reached only once run past, so it is due the instant after it
    assert next_due(prepare(resolving()), CALENDAR, FRACTIONS) == (expected and expected + TICK)


def test_next_due_without_fractions_is_the_instant_after_next_deadline():
    state = resolving()

    assert next_due(state, CALENDAR) == next_deadline(state) + TICK == DEADLINE + TICK


# --- pause and resume -------------------------------------------------------------------


@pytest.mark.parametrize(
    "begin, end, max_pause, moved",
    [
        (T0 + 10 * H, T0 + 15 * H, None, 5 * H),
        (T0 + 10 * H, T0 + 15 * H, 8 * H, 5 * H),
        (T0 + 10 * H, T0 + 15 * H, 3 * H, 3 * H),
        (T0 + 10 * H, T0 + 10 * H, None, timedelta(0)),
        (DEADLINE + H, DEADLINE + 4 * H, None, 3 * H),
    ],
    ids=["uncapped", "under-cap", "over-cap", "zero-length", "after-breach"],
)
def test_resume_moves_the_deadline_by_the_paused_time_up_to_the_cap(begin, end, max_pause, moved):
    # when
    state, paused = pause(resolving(), begin, CALENDAR, max_pause)
    state, [resumed] = resume(state, end, CALENDAR, max_pause)

    # then
    assert kinds(paused)[-1] == "ClockPaused"
    assert isinstance(resumed, ClockResumed)
    assert resumed.previous_deadline == DEADLINE
    assert resumed.clock.deadline == state.clocks[RESOLVE].deadline == DEADLINE + moved
    assert paused_total(state.clocks[RESOLVE], CALENDAR) == moved
    assert not state.clocks[RESOLVE].is_paused


def test_pause_counts_business_time_on_a_working_hours_calendar():
    # given a 9 business-hour target from Monday 09:00: due Tuesday 09:00
    rules = Policy("billing", "*", "*", H, 9 * H, OFFICE).with_version()
    state, _ = start(leg_info(), rules, T0, kinds=(RESOLVE,))

    # when paused Monday 16:00 to Tuesday 10:00 (1 h + 2 h of working time)
    state, _ = pause(state, utc(2025, 3, 3, 16, 0))
    _, [resumed] = resume(state, utc(2025, 3, 4, 10, 0), OFFICE)

    # then
    assert resumed.clock.deadline == utc(2025, 3, 4, 12, 0)


@pytest.mark.parametrize("fractions", [(), FRACTIONS], ids=["breach", "warnings"])
def test_a_paused_clock_without_a_cap_neither_warns_nor_breaches(fractions):
    state, _ = pause(resolving(), T0 + H)

    _, events = due_events(state, DEADLINE + timedelta(days=30), CALENDAR, fractions)

    assert events == []


def test_a_paused_clock_runs_again_once_its_pauses_reach_the_cap():
    # given a 3 h cap and a pause from T0+10h that never ends
    state, _ = pause(resolving(), T0 + 10 * H, CALENDAR, 3 * H)

    # then it runs again at T0+13h, said by a ClockResumed, and breaches 3 h after its deadline
    assert next_due(state, CALENDAR, FRACTIONS, 3 * H) == T0 + 13 * H + TICK
    _, early = due_events(state, T0 + 13 * H, CALENDAR, (), 3 * H)
    state, [resumed] = due_events(state, T0 + 13 * H + TICK, CALENDAR, (), 3 * H)
    assert early == []
    assert isinstance(resumed, ClockResumed) and resumed.allowance_used
    assert (resumed.occurred_at, resumed.previous_deadline, resumed.clock.deadline) == (
        T0 + 13 * H, DEADLINE, DEADLINE + 3 * H)
    assert not state.clocks[RESOLVE].is_paused
    assert next_due(state, CALENDAR, FRACTIONS, 3 * H) == HALF + 3 * H + TICK
    _, [*_, breach] = due_events(state, DEADLINE + 3 * H + TICK, CALENDAR, (), 3 * H)
    assert isinstance(breach, ClockBreached) and breach.occurred_at == DEADLINE + 3 * H


def test_pauses_add_up_against_the_cap_and_a_pause_after_the_cap_is_ignored():
    # given two pauses of 2 h under a 3 h cap
    state = paused_between(T0 + H, T0 + 3 * H, max_pause=3 * H)
    state = paused_between(T0 + 5 * H, T0 + 7 * H, state, max_pause=3 * H)

    # when paused again
    again, events = pause(state, T0 + 8 * H, CALENDAR, 3 * H)

    # then only 3 h counted, and the clock keeps running
    assert state.clocks[RESOLVE].deadline == DEADLINE + 3 * H
    assert events == [] and again is state


def test_pause_and_resume_of_a_clock_that_is_not_paused_or_running_do_nothing():
    running = resolving()
    paused, _ = pause(running, T0 + H)
    stopped, _ = stop(running, RESOLVE, T0 + H, CALENDAR)

    assert resume(running, T0 + 2 * H, CALENDAR) == (running, [])
    assert pause(paused, T0 + 2 * H) == (paused, [])
    assert pause(stopped, T0 + 2 * H) == (stopped, [])


def test_pause_after_an_unnoticed_deadline_breaches_first():
    _, events = pause(resolving(), DEADLINE + H)

    assert kinds(events) == ["ClockBreached", "ClockPaused"]


def test_stop_while_paused_counts_the_open_pause_then_meets():
    # given paused at T0+40h, 8 h before the deadline
    state, _ = pause(resolving(), T0 + 40 * H)

    # when resolved 10 h later
    _, [met] = stop(state, RESOLVE, T0 + 50 * H, CALENDAR)

    # then the pause moved the deadline past the stop: in time, 40 h of running time
    assert isinstance(met, ClockMet)
    assert (met.late, met.overdue, met.elapsed) == (False, timedelta(0), 40 * H)


# --- reopen ------------------------------------------------------------------------------


def test_reopen_starts_the_next_resolve_clock_from_the_reopen():
    # given a resolved leg
    state, _ = stop(resolving(), RESOLVE, T0 + H, CALENDAR)
    at = T0 + 5 * H

    # when
    state, [event] = reopen(state, at, policy())

    # then
    clock = state.clocks[RESOLVE]
    assert isinstance(event, ClockStarted) and event.clock == clock and event.occurred_at == at
    assert (clock.sequence, clock.started_at, clock.deadline, clock.running) == (2, at, at + RESOLVE_TARGET, True)


@pytest.mark.parametrize(
    "state, sequence",
    [
        (lambda: stop(reopen(stop(resolving(), RESOLVE, T0, CALENDAR)[0], T0, policy())[0],
                      RESOLVE, T0 + H, CALENDAR)[0], 3),
        (lambda: start(leg_info(), policy(), T0)[0], 1),
    ],
    ids=["second-reopen", "leg-without-resolve-clock"],
)
def test_reopen_numbers_resolve_clocks_in_order(state, sequence):
    reopened, _ = reopen(state(), T0 + 2 * H, policy())

    assert reopened.clocks[RESOLVE].sequence == sequence


def test_reopen_while_the_resolve_clock_runs_does_nothing():
    state = resolving()

    assert reopen(state, T0 + H, policy()) == (state, [])


# --- priority change ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "resolve, at, deadline",
    [
        (8 * H, T0 + H, T0 + 8 * H),
        (timedelta(days=5), T0 + H, T0 + timedelta(days=5)),
    ],
    ids=["tighter", "looser"],
)
def test_recompute_derives_deadlines_from_the_leg_start_under_the_new_targets(resolve, at, deadline):
    # given
    rules = policy(ack=2 * H, resolve=resolve)

    # when
    state, events = recompute(start(leg_info(), policy(), T0, kinds=(ACK, RESOLVE))[0], rules, at, "URGENT")

    # then
    assert kinds(events) == ["ClockRecomputed", "ClockRecomputed"]
    by_kind = {e.clock.kind: e for e in events}
    assert by_kind[ACK].previous_deadline == T0 + 4 * H and by_kind[ACK].clock.deadline == T0 + 2 * H
    assert by_kind[RESOLVE].previous_deadline == DEADLINE
    assert by_kind[RESOLVE].clock.deadline == state.clocks[RESOLVE].deadline == deadline
    assert state.clocks[RESOLVE].target == resolve
    assert state.clocks[RESOLVE].policy_version == rules.version
    assert state.leg.priority == "URGENT" and all(e.leg.priority == "URGENT" for e in events)
    assert all(e.occurred_at == at for e in events)


def test_a_recomputed_deadline_in_the_past_breaches_at_the_change():
    # when a 2-day resolve clock is held to 8 h at T0 + 20 h
    state, events = recompute(resolving(), policy(resolve=8 * H), T0 + 20 * H)

    # then every threshold the new target puts behind the clock happens at the change, after
    # the recomputation, with the new deadline; nothing is left for the next due check
    assert kinds(events) == ["ClockRecomputed", "ClockWarning", "ClockWarning", "ClockBreached"]
    assert all(e.occurred_at == T0 + 20 * H for e in events)
    assert all(e.clock.deadline == T0 + 8 * H for e in events)
    assert state.clocks[RESOLVE].breached and state.clocks[RESOLVE].warned == (0.5, 0.8)
    assert due_events(state, T0 + 21 * H, CALENDAR, FRACTIONS)[1] == []


def test_recompute_keeps_pauses_already_counted_and_leaves_stopped_clocks_alone():
    # given a resolve clock paused 2 h and a stopped ack clock
    state = start(leg_info(), policy(), T0, kinds=(ACK, RESOLVE))[0]
    state, _ = stop(state, ACK, T0 + H, CALENDAR)
    state = paused_between(T0 + H, T0 + 3 * H, state)

    # when
    recomputed, [event] = recompute(state, policy(ack=H, resolve=8 * H), T0 + 4 * H)

    # then
    assert event.clock.kind == RESOLVE
    assert recomputed.clocks[RESOLVE].deadline == T0 + 10 * H
    assert recomputed.clocks[ACK] == state.clocks[ACK]


def test_recompute_under_the_same_targets_emits_nothing():
    state = resolving()

    assert recompute(state, policy(), T0 + H) == (state, [])


# --- event ids ---------------------------------------------------------------------------


def life(pause_at=T0 + H, resume_at=T0 + 2 * H, change_at=T0 + 3 * H) -> list:
    """Every kind of event one resolve clock can emit, in a fixed story."""
    state, events = start(leg_info(), policy(), T0, kinds=(RESOLVE,))
    steps = [
        lambda s: pause(s, pause_at),
        lambda s: resume(s, resume_at, CALENDAR),
        lambda s: recompute(s, policy(resolve=8 * H), change_at),
        lambda s: due_events(s, T0 + 30 * H, CALENDAR, FRACTIONS),
        lambda s: stop(s, RESOLVE, T0 + 31 * H, CALENDAR),
        lambda s: reopen(s, T0 + 32 * H, policy()),
    ]
    for step in steps:
        state, emitted = step(state)
        events.extend(emitted)
    return events


def test_lifecycle_event_ids_are_deterministic_and_distinct():
    events = life()
    ids = [e.event_id for e in events]

    assert kinds(events) == ["ClockStarted", "ClockPaused", "ClockResumed", "ClockRecomputed", "ClockWarning",
                             "ClockWarning", "ClockBreached", "ClockMet", "ClockStarted"]
    assert ids == [e.event_id for e in life()]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "other, kind",
    [
        (dict(pause_at=T0 + 1.5 * H), ClockPaused),
        (dict(resume_at=T0 + 2.5 * H), ClockResumed),
        (dict(change_at=T0 + 4 * H), ClockRecomputed),
    ],
    ids=["pause", "resume", "priority-change"],
)
def test_an_event_caused_at_another_instant_gets_another_id(other, kind):
    [first] = [e.event_id for e in life() if isinstance(e, kind)]
    [second] = [e.event_id for e in life(**other) if isinstance(e, kind)]

    assert first != second
