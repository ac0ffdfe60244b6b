"""Grouping: when a group flushes, what a flush carries, digests, and ids that survive a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.domain.grouping import (
    FIRST, REPEAT, UPDATE, Digest, add, discard, due, due_at, flushed, group_key, message, new_group,
)
from notify.domain.notifications import Notification
from notify.domain.requests import Leg, addressed, breach_notice
from notify.domain.routing import RouteMatch, Timing
from tests.unit.conftest import T0

TIMING = Timing(group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5),
                repeat_interval=timedelta(hours=4))
MATCH = RouteMatch("billing", ("department", "kind"), TIMING)
S = timedelta(seconds=1)


def breach(handoff_id: str, clock: str = "ack") -> Notification:
    leg = Leg(handoff_id, "case-" + handoff_id, "cust-1", "billing", "HIGH", "refund")
    return addressed(breach_notice(leg, clock, T0), "billing")


def warning(handoff_id: str) -> Notification:
    return replace(breach(handoff_id), key=f"warning:{handoff_id}", notification_id=f"w-{handoff_id}",
                   kind="warning", title=f"warning for {handoff_id}")


def group(*items: Notification, at=T0):
    state = new_group("billing:{}", MATCH)
    for item in items:
        state = add(state, item, at)
    return state


def send(state, now):
    """Flush if due, as the wiring would: (flush or None, state after)."""
    flush = due(state, now)
    return flush, (flushed(state, flush) if flush else state)


@pytest.mark.parametrize(
    "group_by, labels, key",
    [
        (("department", "kind"), {"department": "billing", "kind": "breach"},
         'billing:{department="billing",kind="breach"}'),
        (("department",), {"department": "billing", "kind": "breach"}, 'billing:{department="billing"}'),
        ((), {"department": "billing"}, "billing:{}"),
        (("category",), {}, 'billing:{category=""}'),
    ],
)
def test_the_group_key_is_the_receiver_and_the_group_by_values(group_by, labels, key):
    assert group_key(RouteMatch("billing", group_by, TIMING), labels) == key


@pytest.mark.parametrize("after, flushes", [(0 * S, False), (29 * S, False), (30 * S, True), (2 * 60 * S, True)])
def test_the_first_flush_waits_group_wait_after_the_first_member(after, flushes):
    assert (due(group(breach("h-1")), T0 + after) is not None) is flushes


def test_an_empty_group_never_flushes():
    state = new_group("billing:{}", MATCH)

    assert due_at(state) is None
    assert due(state, T0 + timedelta(days=1)) is None


def test_breaches_within_group_wait_become_one_digest_in_arrival_order():
    state = add(add(add(group(breach("h-1")), breach("h-2"), T0 + 10 * S), warning("h-3"), T0 + 20 * S),
                breach("h-4"), T0 + 29 * S)

    flush = due(state, T0 + 30 * S)
    sent = message(flush)

    assert flush.reason == FIRST
    assert [item.handoff_id for item in flush.items] == ["h-1", "h-2", "h-3", "h-4"]
    assert isinstance(sent, Digest)
    assert sent.kind == "digest"
    assert sent.items == flush.items
    assert sent.notification_id == flush.flush_id
    assert sent.title == "3 breaches, 1 warning for billing"
    assert sent.body.count("\n- ") == 3 and "warning for h-3" in sent.body
    assert sent.occurred_at == T0 + 30 * S


def test_a_lone_new_member_is_sent_as_itself():
    flush = due(group(breach("h-1")), T0 + 30 * S)

    assert message(flush) == breach("h-1")


def test_later_arrivals_wait_for_group_interval_and_carry_only_the_new_members():
    _, state = send(group(breach("h-1"), breach("h-2")), T0 + 30 * S)
    state = add(state, breach("h-3"), T0 + 60 * S)
    state = add(state, breach("h-4"), T0 + 90 * S)

    assert due(state, T0 + 30 * S + 5 * 60 * S - S) is None
    flush = due(state, T0 + 30 * S + 5 * 60 * S)
    assert flush.reason == UPDATE
    assert [item.handoff_id for item in flush.items] == ["h-3", "h-4"]


def test_an_unchanged_group_is_resent_after_repeat_interval_with_every_open_member():
    _, state = send(group(breach("h-1")), T0 + 30 * S)

    assert due(state, T0 + 30 * S + timedelta(hours=4) - S) is None
    flush = due(state, T0 + 30 * S + timedelta(hours=4))
    sent = message(flush)

    assert flush.reason == REPEAT
    assert isinstance(sent, Digest)
    assert sent.title == "Still open for billing: 1 breach"
    assert sent.notification_id != breach("h-1").notification_id


@pytest.mark.parametrize(
    "history, expected",
    [
        ("empty", None),
        ("waiting", T0 + 30 * S),
        ("flushed", T0 + 30 * S + timedelta(hours=4)),
        ("flushed-then-new", T0 + 30 * S + timedelta(minutes=5)),
    ],
)
def test_due_at_tells_the_timer_when_to_look_again(history, expected):
    state = {
        "empty": lambda: new_group("billing:{}", MATCH),
        "waiting": lambda: group(breach("h-1")),
        "flushed": lambda: send(group(breach("h-1")), T0 + 30 * S)[1],
        "flushed-then-new": lambda: add(send(group(breach("h-1")), T0 + 30 * S)[1], breach("h-2"), T0 + 40 * S),
    }[history]()

    assert due_at(state) == expected


def test_a_member_added_twice_is_counted_once():
    state = group(breach("h-1"))

    assert add(state, breach("h-1"), T0 + 10 * S) == state


def test_discarded_members_are_not_sent_and_an_emptied_group_waits_afresh():
    state = group(breach("h-1"), breach("h-2"))

    state = discard(state, {breach("h-1").key})
    assert [item.handoff_id for item in due(state, T0 + 30 * S).items] == ["h-2"]

    emptied = discard(state, {breach("h-2").key})
    assert due(emptied, T0 + timedelta(days=1)) is None
    again = add(emptied, breach("h-3"), T0 + timedelta(hours=1))
    assert due_at(again) == T0 + timedelta(hours=1, seconds=30)


def test_a_restarted_group_never_reuses_an_earlier_flush_id():
    first, state = send(group(breach("h-1")), T0 + 30 * S)
    state = add(discard(state, {breach("h-1").key}), breach("h-2"), T0 + timedelta(hours=1))

    second = due(state, T0 + timedelta(hours=2))

    assert second.seq == first.seq == 1
    assert second.flush_id != first.flush_id


def test_a_flush_sent_again_after_a_crash_keeps_its_id():
    # The wiring crashed after sending the flush and before saving `flushed`.
    state = group(breach("h-1"), breach("h-2"))

    before_crash = due(state, T0 + 30 * S)
    after_restart = due(state, T0 + 45 * S)

    assert after_restart.flush_id == before_crash.flush_id
    assert after_restart.key == before_crash.key


def test_flushed_is_idempotent_and_keeps_members_that_arrived_meanwhile():
    state = group(breach("h-1"))
    flush = due(state, T0 + 30 * S)
    state = add(state, breach("h-2"), T0 + 31 * S)

    once = flushed(state, flush)

    assert flushed(once, flush) == once
    assert once.unsent == (breach("h-2").key,)
    assert [item.handoff_id for item in due(once, T0 + 30 * S + timedelta(minutes=5)).items] == ["h-2"]


# Each step: ("add", handoff number) or ("wait", seconds).
steps = st.lists(
    st.one_of(st.tuples(st.just("add"), st.integers(0, 12)), st.tuples(st.just("wait"), st.integers(0, 900))),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_every_member_goes_out_in_exactly_one_new_flush_however_time_advances(script):
    state, now, added, sent, flushes = new_group("billing:{}", MATCH), T0, [], [], []
    for action, value in script + [("wait", 10**6)]:
        if action == "add":
            item = breach(f"h-{value}")
            added += [] if item.key in added else [item.key]
            state = add(state, item, now)
        else:
            now += timedelta(seconds=value)
        while (flush := due(state, now)) is not None:
            flushes.append(flush)
            sent += [item.key for item in flush.items] if flush.reason != REPEAT else []
            state = flushed(state, flush)

    assert sorted(sent) == sorted(added)
    assert len({flush.flush_id for flush in flushes}) == len(flushes)
    news = [flush for flush in flushes if flush.reason != REPEAT]
    assert all(later.at - earlier.at >= TIMING.group_interval for earlier, later in zip(news, news[1:]))
