"""Which clock is due next: earliest deadline first, popped once it is at or before now."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.conftest import T0
from common.dueindex import DueIndex


def index_of(*entries: tuple[int, str]) -> DueIndex:
    """An index holding (minutes after T0, handoff id) entries, added in the given order."""
    index = DueIndex()
    for minutes, handoff_id in entries:
        index.add(T0 + timedelta(minutes=minutes), handoff_id)
    return index


def test_an_empty_index_has_no_next_deadline_and_nothing_due():
    index = DueIndex()

    assert index.next_deadline() is None
    assert index.pop_due(T0 + timedelta(days=365)) == []
    assert len(index) == 0


def test_next_deadline_is_the_earliest_whatever_the_order_of_adding():
    index = index_of((30, "c"), (10, "a"), (20, "b"))

    assert index.next_deadline() == T0 + timedelta(minutes=10)


@pytest.mark.parametrize(
    "now_minutes, due, left",
    [
        (9, [], 3),
        (10, ["a"], 2),
        (25, ["a", "b"], 1),
        (30, ["a", "b", "c"], 0),
    ],
)
def test_pop_due_returns_ids_at_or_before_now_in_deadline_order(now_minutes, due, left):
    # given
    index = index_of((30, "c"), (10, "a"), (20, "b"))

    # when
    popped = index.pop_due(T0 + timedelta(minutes=now_minutes))

    # then
    assert popped == due
    assert len(index) == left


def test_a_popped_entry_is_not_returned_again():
    index = index_of((10, "a"), (20, "b"))
    index.pop_due(T0 + timedelta(minutes=10))

    assert index.pop_due(T0 + timedelta(minutes=15)) == []
    assert index.next_deadline() == T0 + timedelta(minutes=20)


def test_the_same_leg_added_twice_is_returned_for_each_entry():
    # Lazy deletion: a moved deadline leaves its old entry behind; the caller checks the table.
    index = index_of((10, "a"), (20, "a"))

    assert index.pop_due(T0 + timedelta(minutes=20)) == ["a", "a"]


def test_clear_forgets_every_entry():
    index = index_of((10, "a"), (20, "b"))

    index.clear()

    assert len(index) == 0
    assert index.next_deadline() is None


def test_a_limit_takes_the_soonest_due_and_leaves_the_rest_in_place():
    index = index_of((30, "c"), (10, "a"), (20, "b"), (40, "d"))

    assert index.pop_due(T0 + timedelta(minutes=35), limit=2) == ["a", "b"]
    assert index.next_deadline() == T0 + timedelta(minutes=30)
    assert index.pop_due(T0 + timedelta(minutes=35), limit=2) == ["c"]
    assert len(index) == 1
