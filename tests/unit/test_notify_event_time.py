"""Notify on event time: stage 2's clock follows the heartbeats stage 1 passes on, escalation
steps fall due by it and carry the instant they were due, and an acknowledgement at T takes
the steps due before T first."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from handoff.v1 import notifications_pb2

from common.clock import EPOCH, MergedEventTime, WallClock
from common.codec import from_timestamp
from common.settings import SettingsError
from notify.adapters import codec
from notify.domain.notifications import BREACH
from notify.entrypoints.app import STAGE2_TABLES
from notify.entrypoints.main import clock_setting
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import (
    Clock, dispatcher_for, feed, notification, recorder, routing_of,
)

ROUTING = """
receivers:
  - name: billing
    channels: [{type: subscription}]
    escalation:
      when: [kind=breach]
      levels: [{after: 15m, receiver: billing-lead}, {after: 1h, receiver: billing-head}]
  - name: billing-lead
    channels: [{type: subscription}]
  - name: billing-head
    channels: [{type: subscription}]
route:
  receiver: billing
  group_wait: 0s
"""
MIN = timedelta(minutes=1)
SOURCES = 2


def heartbeat(at, source: int, partition: int = 0) -> bytes:
    return codec.encode_heartbeat(at, source, SOURCES, partition, T0)


def reach(dispatcher, at) -> None:
    """Every source partition has reached `at`."""
    feed(dispatcher, *(heartbeat(at, source) for source in range(SOURCES)))


class Stage2:
    def __init__(self, tmp_path: Path, tables: dict | None = None) -> None:
        self.routing = routing_of(tmp_path, ROUTING)
        self.clock, self.wall = MergedEventTime(), Clock()
        self.wall.at = T0 + timedelta(days=400)  # the replay runs long after the history
        self.sent, send = recorder()
        self.tables = tables if tables is not None else {name: {} for name in STAGE2_TABLES}

        def dead_letter(job, value: bytes, reason: str) -> None:
            raise AssertionError(reason)

        self.dispatcher = dispatcher_for(self.tables, self.routing, lambda at: [], send, self.clock, dead_letter,
                                         recorded=self.wall)
        self.dispatcher.rebuild(frozenset({0}))

    def tick(self) -> None:
        self.dispatcher.tick()

    def steps(self) -> list[tuple[int, object, object]]:
        """(level, occurred_at, recorded_at) of each `escalated` event sent."""
        return [(e.escalated.level, from_timestamp(e.envelope.occurred_at), from_timestamp(e.envelope.recorded_at))
                for _, e in self.sent if e.WhichOneof("change") == "escalated"]


@pytest.fixture
def stage2(tmp_path: Path) -> Stage2:
    return Stage2(tmp_path)


def test_the_clock_waits_for_every_source_partition_and_then_follows_the_slowest() -> None:
    clock = MergedEventTime()
    clock.own(frozenset({0, 1}))
    clock.advance(0, 0, 2, T0 + 5 * MIN)
    clock.advance(0, 1, 2, T0 + 3 * MIN)
    assert clock.now() == EPOCH  # partition 1 has heard nothing
    clock.advance(1, 0, 2, T0 + 9 * MIN)
    clock.advance(1, 1, 2, T0 + 9 * MIN)
    assert clock.now() == T0 + 3 * MIN
    assert clock.advance(0, 1, 2, T0) == T0 + 3 * MIN  # never back
    clock.own(frozenset({1}))
    assert clock.now() == T0 + 9 * MIN


def test_escalation_steps_fall_due_by_event_time_stamped_with_the_instant_they_were_due(stage2) -> None:
    breach = notification(BREACH)
    feed(stage2.dispatcher, codec.encode_requested(breach, ["subscription"], stage2.wall.at))
    reach(stage2.dispatcher, T0 + 14 * MIN)
    stage2.tick()
    assert stage2.steps() == []
    reach(stage2.dispatcher, T0 + 61 * MIN)
    stage2.tick()
    assert stage2.steps() == [(1, T0 + 15 * MIN, stage2.wall.at), (2, T0 + 60 * MIN, stage2.wall.at)]
    notices = [e.requested.notification for _, e in stage2.sent if e.WhichOneof("change") == "requested"]
    assert [(n.receiver, from_timestamp(n.occurred_at)) for n in notices] == [
        ("billing-lead", T0 + 15 * MIN), ("billing-head", T0 + 60 * MIN)]


def test_an_acknowledgement_ahead_of_the_clock_takes_the_steps_due_before_it_and_stops_the_rest(stage2) -> None:
    breach = notification(BREACH)
    feed(stage2.dispatcher, codec.encode_requested(breach, ["subscription"], stage2.wall.at))
    reach(stage2.dispatcher, T0 + 5 * MIN)
    # the leg was acknowledged 30 minutes in: after the lead's step, before the head's
    feed(stage2.dispatcher, codec.encode_acknowledged(breach.notification_id, "billing", "leg acknowledged",
                                                      T0 + 30 * MIN, stage2.wall.at))
    assert [level for level, _, _ in stage2.steps()] == [1]
    state = stage2.tables["escalations"][breach.notification_id]
    assert datetime.fromisoformat(state["acked"]) == T0 + 30 * MIN
    reach(stage2.dispatcher, T0 + 5 * 60 * MIN)
    stage2.tick()
    assert [level for level, _, _ in stage2.steps()] == [1]


def test_a_notification_requested_as_acknowledged_escalates_only_up_to_its_acknowledgement(stage2) -> None:
    # the clock is hours ahead when a late breach comes in, its leg acknowledged 30 minutes in
    reach(stage2.dispatcher, T0 + 5 * 60 * MIN)
    breach = notification(BREACH)
    feed(stage2.dispatcher, codec.encode_requested(breach, ["subscription"], stage2.wall.at,
                                                   (T0 + 30 * MIN, "leg acknowledged")))
    stage2.tick()
    assert [level for level, _, _ in stage2.steps()] == [1]
    assert stage2.tables["escalations"][breach.notification_id]["by"] == "leg acknowledged"


def test_an_acknowledgement_over_the_api_counts_no_earlier_than_the_clock(stage2) -> None:
    breach = notification(BREACH)
    feed(stage2.dispatcher, codec.encode_requested(breach, ["subscription"], stage2.wall.at))
    reach(stage2.dispatcher, T0 + 20 * MIN)
    stage2.tick()
    # an API replica that owns no partition stamps the epoch
    feed(stage2.dispatcher, codec.encode_acknowledged(breach.notification_id, "billing", "ann", EPOCH))
    state = stage2.tables["escalations"][breach.notification_id]
    assert datetime.fromisoformat(state["acked"]) == T0 + 20 * MIN
    assert [level for level, _, _ in stage2.steps()] == [1]


def test_the_clock_comes_back_from_the_marks_table_after_a_restart(stage2, tmp_path: Path) -> None:
    reach(stage2.dispatcher, T0 + 42 * MIN)
    restarted = Stage2(tmp_path, stage2.tables)
    assert restarted.clock.now() == T0 + 42 * MIN


def test_on_wall_time_heartbeats_change_nothing(tmp_path: Path) -> None:
    routing, clock = routing_of(tmp_path, ROUTING), Clock()
    sent, send = recorder()
    tables = {name: {} for name in STAGE2_TABLES}
    dispatcher = dispatcher_for(tables, routing, lambda at: [], send, clock, None)
    feed(dispatcher, heartbeat(T0, 0))
    assert sent == [] and tables["marks"] == {}


def test_a_heartbeat_is_nobodys_notification() -> None:
    event = notifications_pb2.NotificationEvent.FromString(heartbeat(T0, 1, partition=3))
    assert (event.receiver, event.heartbeat.source_partition, event.heartbeat.source_partitions) == ("", 1, SOURCES)
    assert event.envelope.event_id != notifications_pb2.NotificationEvent.FromString(
        heartbeat(T0, 1, partition=2)).envelope.event_id


@pytest.mark.parametrize("value, kind", [("wall", WallClock), ("event", MergedEventTime)])
def test_notify_clock_setting_names_the_clock(value, kind) -> None:
    assert type(clock_setting(value)) is kind


def test_an_unknown_notify_clock_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="NOTIFY_CLOCK='replay' is not one of: wall, event"):
        clock_setting("replay")
