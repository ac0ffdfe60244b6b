"""LegStore: legs by id, fed by events, each event id applied once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handoff_svc.adapters.legstore import LegStore
from handoff_svc.domain.legs import AcknowledgeHandoff, CreateHandoff, Priority, Status, acknowledge, create
from tests.unit.conftest import T0

CREATED = create(
    CreateHandoff("h-1", "case-1", "cust-1", "billing", Priority.NORMAL, "", "Refund", "agent-7"), T0
)
ACKNOWLEDGED = acknowledge(CREATED.leg, AcknowledgeHandoff("h-1", "billing-3"), T0 + timedelta(minutes=5))


def test_an_empty_store_knows_no_leg():
    store = LegStore()

    assert store.get("h-1") is None
    assert len(store) == 0
    assert not store.was_applied("e-1")


def test_applying_events_builds_the_leg_and_remembers_their_ids():
    # given
    store = LegStore()

    # when
    store.apply("e-created", CREATED)
    leg = store.apply("e-ack", ACKNOWLEDGED)

    # then
    assert leg.status is Status.ACKNOWLEDGED
    assert store.get("h-1") == leg
    assert len(store) == 1
    assert store.was_applied("e-created") and store.was_applied("e-ack")


def test_an_event_id_seen_again_is_not_applied_again():
    # given: a leg created and acknowledged, then the create echoed back from Kafka
    store = LegStore()
    store.apply("e-created", CREATED)
    acknowledged = store.apply("e-ack", ACKNOWLEDGED)

    # when
    after_echo = store.apply("e-created", CREATED)

    # then: the echo does not reopen the leg
    assert after_echo == acknowledged
    assert store.get("h-1").status is Status.ACKNOWLEDGED


def test_the_same_event_under_a_new_id_is_applied():
    store = LegStore()
    store.apply("e-created", CREATED)
    store.apply("e-ack", ACKNOWLEDGED)

    leg = store.apply("e-created-again", CREATED)

    assert leg.status is Status.OPEN


def test_an_event_that_cannot_be_applied_is_not_remembered_as_applied():
    # given: an acknowledgement read before the leg it acknowledges
    store = LegStore()
    with pytest.raises(ValueError):
        store.apply("e-ack", ACKNOWLEDGED)

    # then: it may be applied once the leg exists
    assert not store.was_applied("e-ack")
    store.apply("e-created", CREATED)
    assert store.apply("e-ack", ACKNOWLEDGED).status is Status.ACKNOWLEDGED
