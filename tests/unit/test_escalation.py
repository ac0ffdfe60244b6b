"""Escalation: levels in order, reminders while unacknowledged, acknowledgement, and stable step ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.domain.escalation import ESCALATE, REMIND, acknowledge, due_at, next_step, start, taken
from notify.domain.routing import EscalationLevel, EscalationPolicy
from tests.unit.conftest import T0

M = timedelta(minutes=1)
H = timedelta(hours=1)
# team -> team lead after 15m -> head of department after 1h -> duty manager after 4h.
POLICY = EscalationPolicy(
    (EscalationLevel(15 * M, "billing-lead"), EscalationLevel(H, "billing-head"),
     EscalationLevel(4 * H, "duty-manager")),
    remind_every=30 * M,
)


def fresh(policy: EscalationPolicy = POLICY, repeat_interval=4 * H):
    return start("n-1", "billing", T0, policy, repeat_interval)


def take_all(state, now):
    """Every step due at `now`, taken as the wiring would: (steps, state after)."""
    steps = []
    while (step := next_step(state, now)) is not None:
        steps.append(step)
        state = taken(state, step)
    return steps, state


def walk(state, until, every=M):
    """Steps seen by a timer firing every `every` from T0 to `until`."""
    seen, now = [], T0
    while now <= T0 + until:
        steps, state = take_all(state, now)
        seen += [(now - T0, step.action, step.level, step.receiver) for step in steps]
        now += every
    return seen


def test_an_unacknowledged_breach_climbs_every_level_and_reminds_in_between():
    assert walk(fresh(), 5 * H) == [
        (15 * M, ESCALATE, 1, "billing-lead"),
        (45 * M, REMIND, 1, "billing-lead"),
        (H, ESCALATE, 2, "billing-head"),
        (H + 30 * M, REMIND, 2, "billing-head"),
        (2 * H, REMIND, 2, "billing-head"),
        (2 * H + 30 * M, REMIND, 2, "billing-head"),
        (3 * H, REMIND, 2, "billing-head"),
        (3 * H + 30 * M, REMIND, 2, "billing-head"),
        (4 * H, ESCALATE, 3, "duty-manager"),
        (4 * H + 30 * M, REMIND, 3, "duty-manager"),
        (5 * H, REMIND, 3, "duty-manager"),
    ]


@pytest.mark.parametrize(
    "remind_every, repeat_interval, first_reminder",
    [
        (None, 20 * M, (35 * M, REMIND, 1, "billing-lead")),   # the route's repeat_interval
        (10 * M, 20 * M, (10 * M, REMIND, 0, "billing")),      # the policy's own wins
        (None, None, None),                                     # no reminders at all
    ],
)
def test_reminders_come_every_remind_every_else_every_repeat_interval(remind_every, repeat_interval, first_reminder):
    policy = EscalationPolicy(POLICY.levels, remind_every=remind_every)

    seen = walk(fresh(policy, repeat_interval), 2 * H)

    assert next((entry for entry in seen if entry[1] == REMIND), None) == first_reminder
    assert [entry[2] for entry in seen if entry[1] == ESCALATE] == [1, 2]


@pytest.mark.parametrize("by", ["ada (Acknowledge)", "leg acknowledged", "leg resolved"])
def test_acknowledgement_stops_the_escalation(by):
    steps, state = take_all(fresh(), T0 + 20 * M)
    state = acknowledge(state, by, T0 + 20 * M)

    assert [step.level for step in steps] == [1]
    assert next_step(state, T0 + timedelta(days=2)) is None
    assert due_at(state) is None
    assert (state.acknowledged_by, state.acknowledged_at) == (by, T0 + 20 * M)


def test_a_second_acknowledgement_keeps_the_first():
    once = acknowledge(fresh(), "ada", T0 + M)

    assert acknowledge(once, "leg resolved", T0 + H) == once


def test_after_downtime_every_missed_level_is_told_once_in_order_but_only_the_latest_reminder():
    steps, state = take_all(fresh(), T0 + 5 * H + 10 * M)

    assert [(step.action, step.level, step.due_at - T0) for step in steps] == [
        (ESCALATE, 1, 15 * M), (ESCALATE, 2, H), (ESCALATE, 3, 4 * H), (REMIND, 3, 5 * H),
    ]
    assert next_step(state, T0 + 5 * H + 29 * M) is None


def test_a_restart_from_an_older_state_derives_the_same_step_ids():
    _, state = take_all(fresh(), T0 + 15 * M)

    before_crash = next_step(state, T0 + 50 * M)
    after_restart = next_step(state, T0 + 55 * M)

    assert before_crash == after_restart
    assert (before_crash.action, before_crash.reminder, before_crash.due_at) == (REMIND, 1, T0 + 45 * M)
    assert next_step(taken(state, before_crash), T0 + 55 * M) is None


def test_step_ids_are_deterministic_and_distinct():
    first = [step.step_id for step, _ in _trace(fresh(), 6 * H)]
    again = [step.step_id for step, _ in _trace(fresh(), 6 * H)]
    other = [step.step_id for step, _ in _trace(start("n-2", "billing", T0, POLICY, None), 6 * H)]

    assert first == again
    assert len(set(first)) == len(first)
    assert not set(first) & set(other)


def _trace(state, until):
    steps, now = [], T0
    while now <= T0 + until:
        while (step := next_step(state, now)) is not None:
            steps.append((step, now))
            state = taken(state, step)
        now += 7 * M
    return steps


def test_taking_a_step_twice_changes_nothing_more():
    step = next_step(fresh(), T0 + 15 * M)
    once = taken(fresh(), step)

    assert taken(once, step) == once


@pytest.mark.parametrize(
    "until, expected",
    [
        (None, T0 + 15 * M),              # fresh: the first level
        (15 * M, T0 + 45 * M),            # at the lead: its first reminder
        (45 * M, T0 + H),                 # reminded: the head is next
        (5 * H, T0 + 5 * H + 30 * M),     # past the last level: reminders go on
    ],
)
def test_due_at_tells_the_timer_when_the_next_step_falls_due(until, expected):
    state = fresh() if until is None else take_all(fresh(), T0 + until)[1]

    assert due_at(state) == expected


def test_a_policy_without_reminders_is_finished_after_its_last_level():
    _, state = take_all(fresh(EscalationPolicy(POLICY.levels), None), T0 + 4 * H)

    assert state.level == 3
    assert due_at(state) is None
    assert next_step(state, T0 + timedelta(days=30)) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3 * 60 * 60), min_size=1, max_size=40),
    st.one_of(st.none(), st.integers(min_value=0, max_value=39)),
)
def test_each_step_is_taken_once_on_time_however_time_advances(increments, ack_after):
    state, now, seen = fresh(), T0, []
    for index, seconds in enumerate(increments):
        now += timedelta(seconds=seconds)
        steps, state = take_all(state, now)
        seen += [(step, now) for step in steps]
        if index == ack_after:
            state = acknowledge(state, "ada", now)
    acked_at = state.acknowledged_at

    escalations = [step.level for step, _ in seen if step.action == ESCALATE]
    reached = sum(1 for level in POLICY.levels if T0 + level.after <= (acked_at or now))
    assert escalations == list(range(1, reached + 1))
    assert len({step.step_id for step, _ in seen}) == len(seen)
    assert all(step.due_at <= taken_at for step, taken_at in seen)
    assert [step.due_at for step, _ in seen] == sorted(step.due_at for step, _ in seen)
    assert acked_at is None or all(taken_at <= acked_at for _, taken_at in seen)
