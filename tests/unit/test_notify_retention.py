"""Bounded state: each notify table entry is kept for the retention period after it is
finished and then deleted with a tombstone; inside the period nothing changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from handoff.v1 import notifications_pb2

from common.clock import epoch_us
from common.codec import to_timestamp
from common.settings import SettingsError
from common.streams.store import ChangelogStore, due_of, partition_of, payload_of
from common.topics import HANDOFF_EVENTS, NOTIFICATIONS, SLA_EVENTS
from notify.adapters.notification_store import NotificationStore
from notify.adapters.silence_store import SilenceStore
from notify.adapters.stores import decoded
from notify.entrypoints.app import NotifyProcessor
from notify.entrypoints.retention import RULES
from notify.settings import notify_settings
from tests.unit.conftest import T0
from tests.unit.test_notification_store import event, requested
from tests.unit.test_notify_requests import leg_event, sla
from tests.unit.test_notify_stage2_fixtures import Clock, NoGateways, routing_of, run_now
from tests.unit.test_silence_store import silence

RETENTION = timedelta(days=7)


class Notify:
    """notify's processor run the way the engine runs it: batches, commits and header timers,
    its own records read back from notifications.v1 at once; the stage-2 tests' routing
    (gateway deliveries stay pending: no batch here is committed to a broker)."""

    def __init__(self, tmp_path: Path) -> None:
        self.wall = Clock()
        self._outbox: list[bytes] = []
        self.requested: list[str] = []  # the ids of the `requested` records written, in order

        def send(topic: str, key, value: bytes, headers=None, partition=None) -> None:
            if topic == NOTIFICATIONS.name:
                self._outbox.append(value)
                written = notifications_pb2.NotificationEvent.FromString(value)
                if written.WhichOneof("change") == "requested":
                    self.requested.append(written.requested.notification.notification_id)

        self.processor = NotifyProcessor(routing_of(tmp_path), self.wall, lambda at: [], NoGateways(),
                                         run_now, send, retention=RETENTION, wall=self.wall,
                                         partitions={NOTIFICATIONS.name: 1})
        self.processor.assigned(frozenset({0}))
        self.stores = {store.name: store for store in self.processor.stores}

    def batch(self, *records) -> dict[str, list]:
        """One batch: the records, what they lead to on notifications.v1, then the commit;
        returns each store's changelog writes (None: a tombstone)."""
        for spec, message in records:
            self.processor.process(spec, message, 0)
        self._read_back()
        self.processor.before_commit()
        return self._commit()

    def requests(self, *records) -> list[str]:
        """One batch of `records`; the ids it requested."""
        before = len(self.requested)
        self.batch(*records)
        return self.requested[before:]

    def at(self, instant) -> dict[str, list]:
        """The wall clock reaches `instant`: the engine fires the header timers due by then."""
        self.wall.at = instant
        for store in self.processor.stores:
            for key, value in list(store.items()):
                if due_of(value) and due_of(value) <= epoch_us(instant):
                    self.processor.due(store, key, partition_of(value))
        self._read_back()
        self.processor.before_commit()
        return self._commit()

    def _read_back(self) -> None:
        while self._outbox:
            value = self._outbox.pop(0)
            self.processor.process(NOTIFICATIONS, notifications_pb2.NotificationEvent.FromString(value), 0)

    def _commit(self) -> dict[str, list]:
        writes = {store.name: store.writes() for store in self.processor.stores}
        for store in self.processor.stores:
            store.commit()
        return writes

    def keys(self, name: str) -> set[str]:
        return {key for key, _ in self.stores[name].items()}

    def forget_at(self, name: str, key: str) -> int:
        return due_of(self.stores[name][key])

    def leg(self, handoff_id: str) -> dict:
        return decoded(payload_of(self.stores["legs"][handoff_id]))


def tombstones(writes: dict[str, list], name: str) -> set[str]:
    return {key for _, key, value in writes[name] if value is None}


@pytest.fixture
def notify(tmp_path: Path) -> Notify:
    return Notify(tmp_path)


def breach(handoff_id: str = "h-1", department: str = "billing") -> tuple:
    event = sla("breached", handoff_id=handoff_id)
    event.department = department
    return SLA_EVENTS, event


def resolved(handoff_id: str = "h-1") -> tuple:
    return HANDOFF_EVENTS, leg_event("resolved", handoff_id, event_id=f"resolved-{handoff_id}")


def test_an_ended_leg_stays_for_the_retention_then_goes_with_a_tombstone(notify) -> None:
    notify.batch(breach())
    notify.wall.at = T0 + timedelta(hours=1)
    notify.batch(resolved())
    # the leg holds the ids requested about it (its breach and its resolution notice), the dedup of its notices
    assert sorted(notify.leg("h-1")["requested"]) == sorted(notify.requested) and len(notify.requested) == 2
    assert notify.forget_at("legs", "h-1") == epoch_us(T0 + timedelta(hours=1) + RETENTION)

    writes = notify.at(T0 + timedelta(hours=1) + RETENTION - timedelta(seconds=1))
    assert not tombstones(writes, "legs")
    assert "h-1" in notify.keys("legs")

    writes = notify.at(T0 + timedelta(hours=1) + RETENTION)
    assert tombstones(writes, "legs") == {"h-1"}
    assert not notify.keys("legs")


def test_a_leg_acknowledged_and_resolved_at_one_instant_is_over_and_forgotten(notify) -> None:
    # given a leg created, acknowledged and resolved with one timestamp (as a system that
    # closes legs at once writes them), read in that order
    notify.batch(*((HANDOFF_EVENTS, leg_event(change, event_id=f"{change}-h-1"))
                   for change in ("created", "acknowledged", "resolved")))
    # then the resolution, read last, is its latest end: the leg goes after the retention
    assert notify.forget_at("legs", "h-1") == epoch_us(T0 + RETENTION)
    assert tombstones(notify.at(T0 + RETENTION), "legs") == {"h-1"}


def test_a_delivery_outcome_is_kept_for_the_retention_after_it_was_recorded(notify) -> None:
    notify.batch(breach())
    [delivery] = notify.keys("deliveries")
    assert notify.forget_at("deliveries", delivery) == epoch_us(T0 + RETENTION)
    assert not tombstones(notify.at(T0 + RETENTION - timedelta(seconds=1)), "deliveries")
    assert tombstones(notify.at(T0 + RETENTION), "deliveries") == {delivery}


def test_an_open_leg_is_kept_past_the_retention(notify) -> None:
    notify.batch(breach())
    notify.at(T0 + RETENTION * 3)
    assert "h-1" in notify.keys("legs")
    assert not due_of(notify.stores["legs"]["h-1"])


def test_a_breach_read_again_is_dropped_while_its_leg_is_known_and_taken_as_new_after(notify) -> None:
    notify.batch(breach())
    notify.batch(resolved())
    notify.at(T0 + RETENTION - timedelta(seconds=1))
    assert notify.requests(breach()) == []  # the dedup by id holds

    notify.at(T0 + RETENTION * 2)
    assert not notify.keys("legs")
    assert notify.requests(breach()) == notify.requested[:1]  # forgotten: requested anew, under the same id


def test_an_open_legs_requests_stay_deduplicated_however_long_it_stays_open(notify) -> None:
    notify.batch(breach())
    notify.at(T0 + RETENTION * 3)
    assert notify.requests(breach()) == []


def test_a_change_to_an_ended_leg_starts_its_retention_again(notify) -> None:
    notify.batch(breach())
    notify.batch(resolved())
    notify.wall.at = T0 + timedelta(days=3)
    late = sla("warning")
    late.warning.deadline.CopyFrom(to_timestamp(T0 - timedelta(minutes=1)))
    notify.batch((SLA_EVENTS, late))  # a late warning, requested as acknowledged by the resolution
    assert notify.forget_at("legs", "h-1") == epoch_us(T0 + timedelta(days=3) + RETENTION)
    assert not tombstones(notify.at(T0 + RETENTION), "legs")
    assert tombstones(notify.at(T0 + timedelta(days=3) + RETENTION), "legs") == {"h-1"}


def test_an_escalation_is_kept_while_it_runs_and_forgotten_after_its_acknowledgement(notify) -> None:
    notify.batch(breach())
    [notification_id] = notify.keys("escalations")
    assert not due_of(notify.stores["escalations"][notification_id])

    notify.wall.at = T0 + timedelta(minutes=5)
    notify.batch(resolved())  # the leg's resolution acknowledges its breach
    assert notify.forget_at("escalations", notification_id) == epoch_us(notify.wall.at + RETENTION)
    notify.at(T0 + timedelta(minutes=20))  # no step after the acknowledgement
    assert notification_id in notify.keys("escalations")
    writes = notify.at(notify.wall.at + RETENTION)
    assert tombstones(writes, "escalations") == {notification_id}


def test_an_acknowledgement_inside_the_retention_still_stops_the_escalation(notify) -> None:
    notify.batch(breach())
    [notification_id] = notify.keys("escalations")
    notify.at(T0 + timedelta(days=6))  # the step to the lead was taken on the way
    notify.batch(resolved())
    value = notify.stores["escalations"][notification_id]
    assert b'"acked"' in value and b'"acked":null' not in value


def test_a_group_is_kept_while_it_has_members_and_forgotten_once_emptied(notify) -> None:
    notify.batch(breach(department="claims"))
    [key] = notify.keys("groups")
    [member] = notify.keys("grouped")
    notify.at(T0 + timedelta(seconds=30))  # flushed; kept for its repeats while it has members
    notify.at(T0 + RETENTION * 2)
    assert not due_of(notify.stores["groups"][key]) and not due_of(notify.stores["grouped"][member])

    acknowledged_at = T0 + RETENTION * 2 + timedelta(minutes=1)
    notify.wall.at = acknowledged_at
    notify.batch(resolved())  # acknowledged: it leaves the group, which is empty now
    assert not notify.keys("grouped")
    assert notify.forget_at("groups", key) == epoch_us(acknowledged_at + RETENTION)
    assert not tombstones(notify.at(acknowledged_at + RETENTION - timedelta(seconds=1)), "groups")
    writes = notify.at(acknowledged_at + RETENTION)
    assert tombstones(writes, "groups") == {key}
    assert not notify.keys("groups")


def test_pending_deliveries_group_members_and_event_time_marks_have_no_retention(notify) -> None:
    assert not {"pending", "grouped", "marks"} & set(RULES)
    assert set(RULES) <= set(notify.stores)


def test_a_tombstone_is_written_to_the_partition_the_entry_lived_on(tmp_path: Path) -> None:
    notify = Notify(tmp_path)
    notify.processor.assigned(frozenset({0, 3}))
    event = sla("breached")
    notify.processor.process(SLA_EVENTS, event, 3)
    notify.processor.before_commit()
    notify._commit()
    notify.wall.at = T0 + RETENTION
    store: ChangelogStore = notify.stores["legs"]
    [(key, value)] = list(store.items())
    notify.processor.due(store, key, partition_of(value))
    assert store.writes() == [(3, key, None)]


def test_notify_retention_setting_is_read_and_a_bad_one_refused() -> None:
    assert notify_settings({}).retention == timedelta(days=7)
    assert notify_settings({"NOTIFY_RETENTION": "90s"}).retention == timedelta(seconds=90)
    with pytest.raises(SettingsError, match="NOTIFY_RETENTION"):
        notify_settings({"NOTIFY_RETENTION": "a week"})
    with pytest.raises(SettingsError, match="NOTIFY_RETENTION"):
        notify_settings({"NOTIFY_RETENTION": "0s"})



# --- the API's read models -----------------------------------------------------------


def test_the_notification_read_model_drops_notifications_older_than_the_retention() -> None:
    store = NotificationStore(timedelta(hours=1))
    store.apply(NOTIFICATIONS, requested("n-old", minutes=0))
    store.apply(NOTIFICATIONS, event(request_id="r-1", acknowledged=notifications_pb2.NotificationAcknowledged(
        notification_id="n-old", acknowledged_by="amy")))
    store.apply(NOTIFICATIONS, requested("n-claims", department="claims", minutes=30))
    store.apply(NOTIFICATIONS, requested("n-edge", minutes=60))  # n-old exactly the retention older: kept
    assert store.get("n-old") is not None and store.acknowledged_by_request("amy", "r-1") == "n-old"

    store.apply(NOTIFICATIONS, requested("n-new", minutes=61))
    assert store.get("n-old") is None and store.acknowledged_by_request("amy", "r-1") is None
    assert [r.notification_id for r in store.page(None, None, 10)[0]] == ["n-new", "n-edge", "n-claims"]
    assert [r.notification_id for r in store.page("billing", None, 10)[0]] == ["n-new", "n-edge"]
    assert len(store) == 3

    store.apply(NOTIFICATIONS, requested("n-late", minutes=0))  # already older than the retention
    assert store.get("n-late") is None and len(store) == 3


def test_the_notification_read_model_forgets_what_named_an_id_never_requested() -> None:
    store = NotificationStore(timedelta(hours=1))
    store.apply(NOTIFICATIONS, event(escalated=notifications_pb2.NotificationEscalated(
        notification_id="n-stray", level=1, to_receiver="lead")))  # at T0
    store.apply(NOTIFICATIONS, requested("n-1", minutes=60))
    assert store.held() == 2 and len(store) == 1
    store.apply(NOTIFICATIONS, requested("n-2", minutes=61))
    assert store.held() == 2 and len(store) == 2  # n-stray is gone


def test_an_ended_silence_is_forgotten_after_the_retention() -> None:
    store = SilenceStore(timedelta(days=1))
    store.put(silence("s-old", start=T0, hours=2))
    store.put(silence("s-now", start=T0 + timedelta(days=1, hours=2)))  # s-old ended exactly a day before
    assert store.get("s-old") is not None
    store.put(silence("s-later", start=T0 + timedelta(days=1, hours=2, seconds=1)))
    assert store.get("s-old") is None
    assert {s.silence_id for s in store.all(include_expired=True)} == {"s-now", "s-later"}
