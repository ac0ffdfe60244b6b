"""SLA clocks of a leg: started at creation, breached at the deadline, met when stopped."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.conftest import T0, leg_info, policy
from sla.domain.calendar import AlwaysOpen
from sla.domain.clocks import (
    ACK,
    AT_CREATION,
    RESOLVE,
    ClockBreached,
    ClockMet,
    ClockStarted,
    breach_due,
    next_deadline,
    record_breach,
    start,
    stop,
)

ACK_TARGET = timedelta(hours=4)
DEADLINE = T0 + ACK_TARGET
CALENDAR = AlwaysOpen("always")


def started(handoff_id: str = "h-1", at=T0, ack: timedelta = ACK_TARGET):
    """The clocks of a leg just created at `at`."""
    state, _ = start(leg_info(handoff_id), policy(ack=ack), at)
    return state


def test_start_runs_the_ack_clock_with_deadline_start_plus_target():
    # given
    rules = policy(ack=ACK_TARGET)

    # when
    state, events = start(leg_info(), rules, T0)

    # then
    [event] = events
    assert isinstance(event, ClockStarted)
    assert event.occurred_at == T0
    assert event.leg == leg_info()
    clock = state.clocks[ACK]
    assert event.clock == clock
    assert (clock.kind, clock.sequence) == (ACK, 1)
    assert clock.started_at == T0
    assert clock.target == ACK_TARGET
    assert clock.deadline == DEADLINE
    assert clock.policy_version == rules.version != ""
    assert clock.running and not clock.breached and clock.stopped_at is None


@pytest.mark.parametrize(
    "now, breaches",
    [
        (DEADLINE - timedelta(microseconds=1), 0),
        (DEADLINE, 0),
        (DEADLINE + timedelta(microseconds=1), 1),
        (DEADLINE + timedelta(days=3), 1),
    ],
    ids=["just-before", "exactly-at", "just-after", "long-after"],
)
def test_breach_due_breaches_once_the_clock_runs_past_the_deadline(now, breaches):
    # when
    state, events = breach_due(started(), now)

    # then
    assert len(events) == breaches
    assert state.clocks[ACK].breached is bool(breaches)


def test_a_breach_is_dated_at_the_deadline_not_at_the_moment_it_was_noticed():
    _, [event] = breach_due(started(), DEADLINE + timedelta(minutes=7))

    assert isinstance(event, ClockBreached)
    assert event.occurred_at == DEADLINE
    assert event.clock.deadline == DEADLINE


def test_breach_due_emits_nothing_the_second_time():
    # given
    state, first = breach_due(started(), DEADLINE + timedelta(minutes=1))

    # when
    state, second = breach_due(state, DEADLINE + timedelta(hours=1))

    # then
    assert len(first) == 1
    assert second == []


def test_stop_before_the_deadline_is_met_in_time():
    # given
    at = T0 + timedelta(hours=1)

    # when
    state, events = stop(started(), ACK, at, CALENDAR)

    # then
    [met] = events
    assert isinstance(met, ClockMet)
    assert met.late is False
    assert met.overdue == timedelta(0)
    assert met.elapsed == timedelta(hours=1)
    assert met.occurred_at == at
    clock = state.clocks[ACK]
    assert not clock.running and clock.stopped_at == at and not clock.breached


def test_stop_after_an_unnoticed_deadline_breaches_first_then_meets_late():
    # given
    at = DEADLINE + timedelta(minutes=45)

    # when
    state, events = stop(started(), ACK, at, CALENDAR)

    # then
    assert [type(e) for e in events] == [ClockBreached, ClockMet]
    breached, met = events
    assert breached.occurred_at == DEADLINE
    assert met.late is True
    assert met.overdue == at - DEADLINE == timedelta(minutes=45)
    assert met.elapsed == ACK_TARGET + timedelta(minutes=45)
    assert state.clocks[ACK].breached and not state.clocks[ACK].running


def test_stop_after_a_recorded_breach_meets_late_without_breaching_again():
    # given
    state, _ = breach_due(started(), DEADLINE + timedelta(minutes=1))
    at = DEADLINE + timedelta(hours=2)

    # when
    _, events = stop(state, ACK, at, CALENDAR)

    # then
    [met] = events
    assert isinstance(met, ClockMet)
    assert met.late is True
    assert met.overdue == timedelta(hours=2)


def test_stop_of_a_stopped_clock_changes_nothing_and_emits_nothing():
    state, _ = stop(started(), ACK, T0 + timedelta(hours=1), CALENDAR)

    again, events = stop(state, ACK, T0 + timedelta(hours=2), CALENDAR)

    assert events == []
    assert again == state


def test_stop_of_a_clock_the_leg_does_not_have_emits_nothing():
    state = started()

    again, events = stop(state, "resolve", T0 + timedelta(hours=1), CALENDAR)

    assert events == []
    assert again == state


def test_a_stopped_clock_never_breaches():
    state, _ = stop(started(), ACK, T0 + timedelta(hours=1), CALENDAR)

    _, events = breach_due(state, DEADLINE + timedelta(days=1))

    assert events == []


def all_events(handoff_id: str = "h-1", ack: timedelta = ACK_TARGET) -> list:
    """Start, breach and late stop of one leg's ack clock."""
    state, started_events = start(leg_info(handoff_id), policy(ack=ack), T0)
    late = T0 + ack + timedelta(minutes=1)
    _, stop_events = stop(state, ACK, late, CALENDAR)
    return [*started_events, *stop_events]


def test_event_ids_are_the_same_for_the_same_inputs():
    first = [e.event_id for e in all_events()]
    replayed = [e.event_id for e in all_events()]

    assert first == replayed


def test_event_ids_differ_between_started_breached_and_met():
    ids = [e.event_id for e in all_events()]

    assert len(ids) == 3
    assert len(set(ids)) == 3


def test_event_ids_differ_when_the_deadline_differs():
    four_hours = [e.event_id for e in all_events(ack=timedelta(hours=4))]
    two_hours = [e.event_id for e in all_events(ack=timedelta(hours=2))]

    assert set(four_hours).isdisjoint(two_hours)


def test_event_ids_differ_between_legs():
    assert set(e.event_id for e in all_events("h-1")).isdisjoint(e.event_id for e in all_events("h-2"))


def test_breach_emitted_by_a_timer_and_by_a_late_stop_has_the_same_id():
    # given a timer that breached the clock, and a worker that only learns of it at stop
    _, [by_timer] = breach_due(started(), DEADLINE + timedelta(seconds=5))
    _, [by_stop, _] = stop(started(), ACK, DEADLINE + timedelta(hours=1), CALENDAR)

    # then downstream can drop the second one
    assert by_timer.event_id == by_stop.event_id


def test_record_breach_stops_a_later_breach_being_emitted():
    # given
    state = record_breach(started(), ACK, 1)

    # when
    _, events = breach_due(state, DEADLINE + timedelta(hours=1))

    # then
    assert state.clocks[ACK].breached
    assert events == []


@pytest.mark.parametrize(
    "kind, sequence",
    [(ACK, 2), ("resolve", 1)],
    ids=["other-sequence", "other-clock"],
)
def test_record_breach_of_another_clock_leaves_the_state_untouched(kind, sequence):
    state = started()

    assert record_breach(state, kind, sequence) is state


def test_record_breach_twice_returns_the_same_state():
    once = record_breach(started(), ACK, 1)

    assert record_breach(once, ACK, 1) is once


def test_next_deadline_is_the_running_unbreached_clocks_deadline():
    assert next_deadline(started()) == DEADLINE


def test_next_deadline_is_the_earliest_among_running_clocks():
    # given a second, earlier clock on the same leg
    state = started()
    ack = state.clocks[ACK]
    earlier = ack._replace(kind="resolve", deadline=DEADLINE - timedelta(hours=1))
    state = replace(state, clocks={ACK: ack, "resolve": earlier})

    assert next_deadline(state) == DEADLINE - timedelta(hours=1)


@pytest.mark.parametrize(
    "finish",
    [
        lambda s: breach_due(s, DEADLINE + timedelta(minutes=1))[0],
        lambda s: stop(s, ACK, T0 + timedelta(hours=1), CALENDAR)[0],
    ],
    ids=["breached", "stopped"],
)
def test_next_deadline_is_none_when_no_clock_is_pending(finish):
    assert next_deadline(finish(started())) is None


def test_start_at_creation_runs_ack_and_resolve_each_with_its_own_started_event():
    # when
    state, events = start(leg_info(), policy(ack=ACK_TARGET, resolve=timedelta(days=2)), T0, AT_CREATION)

    # then
    assert [(e.clock.kind, e.clock.sequence, e.clock.deadline) for e in events] == [
        (ACK, 1, DEADLINE),
        (RESOLVE, 1, T0 + timedelta(days=2)),
    ]
    assert all(isinstance(e, ClockStarted) and e.occurred_at == T0 for e in events)
    assert events[0].event_id != events[1].event_id
    assert {k: c.deadline for k, c in state.clocks.items()} == {ACK: DEADLINE, RESOLVE: T0 + timedelta(days=2)}


@pytest.mark.parametrize(
    "kind, at, late, overdue",
    [
        (ACK, T0 + timedelta(hours=3), False, timedelta(0)),
        (ACK, T0 + timedelta(hours=5), True, timedelta(hours=1)),
        (RESOLVE, T0 + timedelta(days=1), False, timedelta(0)),
        (RESOLVE, T0 + timedelta(days=2, hours=6), True, timedelta(hours=6)),
    ],
    ids=["ack-in-time", "ack-late", "resolve-in-time", "resolve-late"],
)
def test_stop_meets_either_clock_and_leaves_the_other_running(kind, at, late, overdue):
    # given both clocks running
    state, _ = start(leg_info(), policy(ack=ACK_TARGET, resolve=timedelta(days=2)), T0, AT_CREATION)
    other = RESOLVE if kind == ACK else ACK

    # when
    state, events = stop(state, kind, at, CALENDAR)

    # then
    met = events[-1]
    assert isinstance(met, ClockMet) and met.clock.kind == kind
    assert (met.late, met.overdue, met.elapsed) == (late, overdue, at - T0)
    assert not state.clocks[kind].running and state.clocks[other].running
