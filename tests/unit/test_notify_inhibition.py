"""The open inhibition sources, indexed: the same answers as a scan of every source for every
rule (`inhibited_by`), as sources open and close, and after the tables are rolled back,
revoked, restored or forgotten under them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from handoff.v1 import notifications_pb2
from hypothesis import given
from hypothesis import strategies as st

from common.streams.store import partition_of, payload_of
from common.topics import NOTIFICATIONS
from notify.adapters import codec
from notify.domain.inhibition import InhibitionSources
from notify.domain.notifications import INCIDENT, WARNING
from notify.domain.routing import Matcher
from notify.domain.silences import DEPARTMENT_INCIDENT, InhibitRule, inhibited_by
from notify.entrypoints.app import NotifyProcessor
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import Clock, NoGateways, notification, routing_of, run_now

BREACH_SUPERSEDES_WARNING = InhibitRule(
    "breach-supersedes-warning", (Matcher("kind", "=", "breach"),), (Matcher("kind", "=", "warning"),),
    ("handoff_id", "clock"))
# Both sides match an URGENT billing notification: it must not hold back its own kind.
URGENT_OVER_BILLING = InhibitRule(
    "urgent-over-billing", (Matcher("priority", "=", "URGENT"),), (Matcher("department", "=", "billing"),),
    ("department",))
RULES = (DEPARTMENT_INCIDENT, BREACH_SUPERSEDES_WARNING, URGENT_OVER_BILLING)

LABELS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["breach", "warning", "incident", "new_leg"]),
    "department": st.sampled_from(["billing", "claims", ""]),
    "priority": st.sampled_from(["URGENT", "LOW"]),
    "handoff_id": st.sampled_from(["h-1", "h-2"]),
    "clock": st.sampled_from(["ack", "resolve"]),
})
# Open a source (an id and its labels) or close one (an id).
CHANGES = st.lists(st.one_of(st.tuples(st.sampled_from("abcdef"), LABELS), st.sampled_from("abcdef")), max_size=30)


@given(changes=CHANGES, asked=st.lists(LABELS, min_size=1, max_size=10))
def test_the_index_answers_as_a_scan_of_every_open_source(changes, asked) -> None:
    index, open_sources = InhibitionSources(RULES), {}
    for change in changes:
        if isinstance(change, tuple):
            index.add(*change)
            open_sources[change[0]] = change[1]
        else:
            index.discard(change)
            open_sources.pop(change, None)
    assert len(index) == len(open_sources)
    for labels in asked:
        assert index.inhibited_by(labels) == inhibited_by(labels, open_sources.values(), RULES)


def test_a_source_matching_both_sides_does_not_hold_back_its_own_kind() -> None:
    index = InhibitionSources([URGENT_OVER_BILLING])
    urgent_billing = {"department": "billing", "priority": "URGENT"}
    index.add("n-1", urgent_billing)
    assert index.inhibited_by(urgent_billing) is None
    assert index.inhibited_by({"department": "billing", "priority": "LOW"}) == URGENT_OVER_BILLING


# --- on notify's processor and its stores ---------------------------------------------------


class Stage2:
    """notify's processor owning partitions 0 and 1 of notifications.v1, driven as the engine
    drives it: requests taken on a partition, batches committed or aborted."""

    def __init__(self, tmp_path: Path) -> None:
        self.wall = Clock()
        self.rules = routing_of(tmp_path).inhibit_rules
        self.processor = NotifyProcessor(routing_of(tmp_path), self.wall, lambda at: [], NoGateways(), run_now,
                                         lambda *args, **kwargs: None, wall=self.wall,
                                         partitions={NOTIFICATIONS.name: 2})
        self.processor.assigned(frozenset({0, 1}))
        self.sources = next(store for store in self.processor.stores if store.name == "sources")

    def open_incident(self, department: str, partition: int = 0) -> str:
        incident = notification(INCIDENT, department, handoff_id=f"incident-{department}")
        self.processor.place.partition = partition
        self.processor.dispatcher.take(incident, [], partition)
        return incident.notification_id

    def acknowledge(self, notification_id: str) -> None:
        message = codec.encode_acknowledged(notification_id, "billing", "agent-1", self.wall.now(), self.wall.now())
        self.processor.process(NOTIFICATIONS, notifications_pb2.NotificationEvent.FromString(message), 0)

    def commit(self) -> None:
        self.processor.before_commit()
        for store in self.processor.stores:
            store.commit()

    def abort(self) -> None:
        for store in self.processor.stores:
            self.processor.rolled_back(store, store.rollback())

    def held_back_by(self, labels: dict[str, str]) -> str | None:
        """The rule that holds back `labels` now; the index and a scan of the table agree on it."""
        open_sources = [json.loads(payload_of(value)) for value in self.sources.values()]
        scanned = inhibited_by(labels, open_sources, self.rules)
        indexed = self.processor.dispatcher.inhibition.inhibited_by(labels)
        assert indexed == scanned
        return indexed.name if indexed else None


BILLING_WARNING = notification(WARNING, "billing").labels


def test_an_aborted_batch_takes_back_the_sources_it_opened(tmp_path: Path) -> None:
    stage2 = Stage2(tmp_path)
    stage2.open_incident("billing")
    assert stage2.held_back_by(BILLING_WARNING) == DEPARTMENT_INCIDENT.name
    stage2.abort()
    assert stage2.held_back_by(BILLING_WARNING) is None


def test_an_aborted_batch_reopens_the_sources_it_closed(tmp_path: Path) -> None:
    stage2 = Stage2(tmp_path)
    incident = stage2.open_incident("billing")
    stage2.commit()
    stage2.acknowledge(incident)
    assert stage2.held_back_by(BILLING_WARNING) is None
    stage2.abort()
    assert stage2.held_back_by(BILLING_WARNING) == DEPARTMENT_INCIDENT.name


def test_a_revoked_partition_takes_its_sources_and_a_restored_one_brings_them_back(tmp_path: Path) -> None:
    stage2 = Stage2(tmp_path)
    stage2.open_incident("billing", partition=1)
    stage2.commit()
    kept = {key: value for key, value in stage2.sources.items() if partition_of(value) == 1}
    for store in stage2.processor.stores:
        store.drop(frozenset({1}))
    stage2.processor.revoked(frozenset({1}))
    assert stage2.held_back_by(BILLING_WARNING) is None
    for key, value in kept.items():
        stage2.sources.restore(key, value)
    stage2.processor.assigned(frozenset({0, 1}))
    assert stage2.held_back_by(BILLING_WARNING) == DEPARTMENT_INCIDENT.name


def test_a_source_whose_retention_ran_out_holds_nothing_back(tmp_path: Path) -> None:
    stage2 = Stage2(tmp_path)
    incident = stage2.open_incident("billing")
    stage2.commit()
    stage2.wall.at = T0 + timedelta(days=8)
    stage2.processor.due(stage2.sources, incident, 0)
    assert incident not in stage2.sources
    assert stage2.held_back_by(BILLING_WARNING) is None
