"""Event ids: random for request-caused events, derived (deterministic) for caused ones."""

from __future__ import annotations

import uuid

import pytest

from common.ids import derived_event_id, new_event_id


def test_new_event_ids_are_random_uuids():
    ids = {new_event_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_a_derived_id_is_the_same_for_the_same_cause():
    assert derived_event_id("h-1", "ack", 1, "2025-03-03T13:00:00+00:00") == derived_event_id(
        "h-1", "ack", 1, "2025-03-03T13:00:00+00:00"
    )


def test_a_derived_id_is_a_name_based_uuid():
    assert uuid.UUID(derived_event_id("handoff", "r-1")).version == 5


def test_a_derived_id_is_fixed_across_releases():
    # Changing the namespace or the joining would re-key every derived event on replay.
    assert derived_event_id("handoff", "r-1") == str(
        uuid.uuid5(uuid.UUID("6f1c3f0e-6a53-4b8e-9d0c-4f3a2f6c1b7e"), "handoff|r-1")
    )


@pytest.mark.parametrize(
    "other",
    [("h-2", "ack", 1), ("h-1", "resolve", 1), ("h-1", "ack", 2), ("ack", "h-1", 1), ("h-1", "ack")],
)
def test_a_derived_id_differs_when_any_part_of_the_cause_differs(other):
    assert derived_event_id(*other) != derived_event_id("h-1", "ack", 1)
