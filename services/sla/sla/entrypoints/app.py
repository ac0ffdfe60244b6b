"""sla on the stream engine: handoff events and contacts in; SLA events and repeat contacts out.

On wall time (`clock` a WallClock) clocks fall due by the wall clock and event-time
heartbeats are skipped. On event time (`clock` an EventTime) each partition's watermark
follows its handoff events and heartbeats; due clocks fire, and contacts are examined, as
the watermarks pass them. The clocks, the customers' records and the watermarks live in
three stores with changelogs; each batch's SLA events, repeat contacts, store writes and
input offsets are committed together.
"""

from __future__ import annotations

from functools import partial

from common.clock import Clock, WallClock, epoch_us
from common.streams.engine import EngineSettings, Sender, StreamEngine
from common.streams.store import ChangelogStore
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_APP, SLA_EVENTS, TopicSpec, changelog_name
from sla import metrics
from sla.domain.policy import PolicyBook
from sla.entrypoints.worker import SlaWorker

APP_ID = SLA_APP


class SlaProcessor:
    """What the stream engine calls: one SlaWorker over the engine's stores."""

    inputs = (HANDOFF_EVENTS, CONTACTS)
    # Telephony and CRM systems write contacts.v1 themselves, with whatever partitioner they use.
    keyed_inputs = (CONTACTS,)

    def __init__(self, policies: PolicyBook, clock: Clock, send: Sender) -> None:
        self.clocks, self.customers, self.marks = (
            ChangelogStore(name, changelog_name(APP_ID, name)) for name in ("clocks", "customers", "marks")
        )
        self.stores = (self.clocks, self.customers, self.marks)
        self._clock = clock
        self._wall = WallClock()
        self.worker = SlaWorker(self.clocks, self.customers, policies, clock, partial(send, SLA_EVENTS.name),
                                partial(send, REPEAT_CONTACTS.name), self._wall, self.marks)

    def process(self, spec: TopicSpec, message, partition: int) -> None:
        if spec is HANDOFF_EVENTS:
            self.worker.on_handoff_event(message, partition)
        else:
            self.worker.on_contact(message, partition)

    def due(self, store: ChangelogStore, key: str, partition: int) -> None:
        if store is self.customers:
            self.worker.on_customer_due(key, partition)
        else:
            self.worker.on_due(key, partition)

    def now_us(self, partition: int) -> int:
        return epoch_us(self.worker.engine.now(partition))

    def before_commit(self) -> None:
        self.worker.save_marks()
        metrics.RUNNING_CLOCKS.set(self.worker.engine.running_clocks)
        if self.worker.event_time is not None:
            metrics.EVENT_TIME_LAG.set(max((self._wall.now() - self._clock.now()).total_seconds(), 0.0))

    def assigned(self, partitions: frozenset[int]) -> None:
        self.worker.assign(partitions)

    def revoked(self, partitions: frozenset[int]) -> None:
        self.worker.assign(self.worker.assigned - partitions)

    def rolled_back(self, store: ChangelogStore, keys: list[str]) -> None:
        if store is self.customers:
            self.worker.tracker.reindex(keys)
        elif store is self.marks:
            self.worker.load_marks(self.worker.assigned)
        else:
            self.worker.engine.rebuild(self.worker.assigned)


def build(engine_settings: EngineSettings, policies: PolicyBook, clock: Clock) -> tuple[StreamEngine, SlaProcessor]:
    """The engine with sla's processor plugged in."""
    sender = Sender()
    processor = SlaProcessor(policies, clock, sender)
    return StreamEngine(engine_settings, processor, sender), processor
