"""The engine across an eager rebalance: a partition given up keeps its state until the new
assignment. When it comes back and no one has written to its changelog meanwhile, the state
is current and stays (nothing restored); otherwise, or when it goes elsewhere, or when the
group went on without this member, the state is dropped and a partition regained is restored."""

from __future__ import annotations

import pytest

from common.streams import engine as engine_module
from common.streams.engine import EngineSettings, Sender, StreamEngine
from common.streams.store import framed
from tests.unit.test_engine_transactions import TOPIC, Consumer, Processor, Producer, Record

CHANGELOG = "values-changelog"


def assignment(*partitions: int) -> list:
    return [engine_module.TopicPartition(TOPIC, partition) for partition in partitions]


@pytest.fixture
def engine(monkeypatch):
    """An engine owning partitions 0 and 1, each with a value written and committed."""
    monkeypatch.setattr(engine_module, "decode", lambda spec, value: value)
    made = StreamEngine(EngineSettings(bootstrap="127.0.0.1:1", group="g", instance="g-1"), Processor(), Sender())
    made._producer, made._consumer = Producer(), Consumer()
    made._owned = frozenset({0, 1})
    made.restored = []

    def restore(partitions: frozenset[int]) -> int:
        made.restored.append(sorted(partitions))
        for partition in partitions:
            made._processor.store.restore(f"key-{partition}", framed(partition, b"restored"))
        return len(partitions)

    monkeypatch.setattr(made, "_restore", restore)
    made._run_batch([Record(0, 5, b"write"), Record(1, 9, b"write")])
    made._consumer.ends = {(CHANGELOG, 0): 7, (CHANGELOG, 1): 4}
    return made


def values(engine: StreamEngine) -> dict[str, bytes]:
    return dict(engine._processor.store.items())


def test_partitions_back_with_their_changelogs_unchanged_keep_their_state(engine):
    # when an eager rebalance takes both partitions and gives both back, no one having written meanwhile
    engine._on_revoke(None, assignment(0, 1))
    engine._on_assign(None, assignment(0, 1))
    # then nothing is restored and the state is the one written before
    assert engine.restored == []
    assert values(engine) == {"key-0": framed(0, b"v"), "key-1": framed(1, b"v")}
    assert engine._owned == {0, 1}


def test_a_partition_whose_changelog_moved_meanwhile_is_restored(engine):
    # given an eager rebalance under way
    engine._on_revoke(None, assignment(0, 1))
    # when another worker writes to partition 1's changelog before both come back
    engine._consumer.ends[(CHANGELOG, 1)] = 6
    engine._on_assign(None, assignment(0, 1))
    # then partition 1 is read from its changelog, partition 0 keeps its state
    assert engine.restored == [[1]]
    assert values(engine) == {"key-0": framed(0, b"v"), "key-1": framed(1, b"restored")}


def test_a_partition_that_goes_elsewhere_is_dropped(engine):
    # when an eager rebalance gives partition 0 back and partition 1 to another worker
    engine._on_revoke(None, assignment(0, 1))
    engine._on_assign(None, assignment(0))
    # then partition 1's state is gone and no timer or offset of it is left
    assert values(engine) == {"key-0": framed(0, b"v")}
    assert engine._owned == {0} and 1 not in engine._timers
    # and it is restored when it comes back in a later rebalance, even with its changelog where it was
    engine._on_revoke(None, assignment(0))
    engine._on_assign(None, assignment(0, 1))
    assert engine.restored == [[1]]


def test_partitions_lost_are_dropped_at_once(engine):
    # when the group went on without this member (its session timed out)
    engine._on_lost(None, assignment(0, 1))
    # then nothing of their state is kept, even if they come back unchanged
    assert values(engine) == {}
    engine._on_assign(None, assignment(0, 1))
    assert engine.restored == [[0, 1]]


def test_state_is_dropped_when_the_broker_cannot_say_where_the_changelogs_end(engine):
    # given a broker that does not answer the question
    engine._consumer.ends = None
    # when an eager rebalance takes the partitions
    engine._on_revoke(None, assignment(0, 1))
    # then their state goes at once, and is restored when they come back
    assert values(engine) == {}
    engine._consumer.ends = {}
    engine._on_assign(None, assignment(0, 1))
    assert engine.restored == [[0, 1]]


def test_no_timer_of_a_parked_partition_fires_during_the_rebalance(engine, monkeypatch):
    # given partition 1 holding a value that is due
    fired = []
    monkeypatch.setattr(engine._processor, "due", lambda store, key, partition: fired.append(key))
    monkeypatch.setattr(engine._processor, "now_us", lambda partition: 10)
    store = engine._processor.store
    store.restore("key-1", framed(1, b"v", due_us=5))
    engine._schedule(store, [("key-1", store["key-1"])])
    # when the partition is parked in a rebalance and a pass runs before the assignment
    engine._on_revoke(None, assignment(1))
    engine._run_batch([])
    # then its timer does not fire; once the partition is back unchanged, it does
    assert fired == []
    engine._on_assign(None, assignment(1))
    engine._run_batch([])
    assert fired == ["key-1"]


def test_a_closing_consumer_parks_nothing(engine):
    # when the consumer gives its partitions up on its way out (stopping, or made anew)
    engine._closing = True
    engine._on_revoke(None, assignment(0, 1))
    # then their state goes at once, without asking the broker anything
    assert values(engine) == {} and engine._parked == {}
    assert engine._consumer.asked == 0
