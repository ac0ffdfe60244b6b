"""notify on the stream engine: both stages in one processor, one transaction per batch.

Stage 1 (requester.py) reads sla.events.v1, repeat.contacts.v1 and handoff.events.v1 (keyed
by customer_ref) and requests notifications of the receivers the routing tree reaches, as
`requested` records on notifications.v1 keyed by the receiver. Stage 2 (dispatcher.py)
reads notifications.v1 and suppresses, groups, delivers and escalates. Both stages run in
one engine (one consumer group; partition p of every input on one worker): each batch's
records, table writes and input offsets are committed together.

A request whose receiver's partition of notifications.v1 is on this worker is taken by
stage 2 in the pass that requests it, without waiting for a commit and a fetch: the
request (marked `dispatched`), stage 2's outcomes, both stages' table writes and the input
offsets are in one transaction, so a crash leaves all of them or none, and stage 2 skips
the request when it reads it back. A request for a partition another worker holds is read
by that worker once stage 1's transaction is committed (read_committed).

Every table entry is forgotten a retention period after it is finished (retention.py):
the engine's header timers carry the instant, the deletion is a tombstone in a batch's
transaction.

Gateway deliveries are I/O outside any transaction (see deliverer.py): attempted on the
delivery loop once the batch that decided them is committed, their outcomes recorded by a
later batch.

On wall time heartbeats on handoff.events.v1 are skipped. On event time (`clock` a
MergedEventTime) stage 1 passes each on to every partition of notifications.v1 and stage
2's clock follows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache

from confluent_kafka.admin import AdminClient

from common import metrics as common_metrics
from common.clock import Clock, MergedEventTime, WallClock, epoch_us
from common.dlq import dead_letter_headers
from common.kafkaio import key_partition
from common.rdkafka import partition_ids
from common.streams.engine import EngineSettings, Sender, StreamEngine
from common.streams.store import ChangelogStore
from common.topics import HANDOFF_EVENTS, NOTIFICATIONS, NOTIFY_APP, REPEAT_CONTACTS, SLA_EVENTS, TopicSpec, changelog_name
from notify import metrics
from notify.adapters import codec
from notify.adapters.gateways import Gateways
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import Job
from notify.adapters.stores import JsonTable, Place
from notify.domain.notifications import Notification
from notify.entrypoints.deliverer import Deliverer, Run
from notify.entrypoints.dispatcher import ActiveSilences, Dispatcher
from notify.entrypoints.escalator import Escalator
from notify.entrypoints.grouper import Grouper
from notify.entrypoints.requester import Requester
from notify.entrypoints.retention import Retention
from notify.settings import DEFAULT_RETENTION

APP_ID = NOTIFY_APP
STAGE1_TABLES = ("legs",)
# Receivers whose partition of notifications.v1 is kept once computed.
RECEIVERS_PLACED = 4096
STAGE2_TABLES = ("deliveries", "pending", "escalations", "groups", "grouped", "sources", "marks")
# Tables whose values hold floats (seconds: an escalation's reminder interval, a group's
# timing), which only json writes as they always were (stores.encoded).
FLOAT_TABLES = frozenset({"escalations", "groups"})


class NotifyProcessor:
    """What the stream engine calls: the Requester (stage 1) and the Dispatcher (stage 2)."""

    inputs = (SLA_EVENTS, REPEAT_CONTACTS, HANDOFF_EVENTS, NOTIFICATIONS)
    # Every input is written by this project's services, with Kafka's partitioner.
    keyed_inputs: tuple[TopicSpec, ...] = ()

    def __init__(self, routing: RoutingConfig, clock: Clock, silences: ActiveSilences, gateways: Gateways,
                 run: Run, send: Sender, client: dict | None = None, history_age: timedelta | None = None,
                 retention: timedelta = DEFAULT_RETENTION, wall: Clock | None = None,
                 partitions: Mapping[str, int] | None = None) -> None:
        """`partitions`: topic -> partition count, where known (else asked of the broker)."""
        self.place = Place()
        self.stores = tuple(ChangelogStore(name, changelog_name(APP_ID, name))
                            for name in STAGE1_TABLES + STAGE2_TABLES)
        tables = {store.name: JsonTable(store, self.place, floats=store.name in FLOAT_TABLES)
                  for store in self.stores}
        self._send, self._client, self._clock = send, client or {}, clock
        self._known_partitions = dict(partitions or {})
        self._receiver_partitions: dict[str, int] = {}
        self._wall = wall or WallClock()
        self.event_time = clock if isinstance(clock, MergedEventTime) else None
        # On wall time whatever the clock: retention bounds memory, and a replay's records are
        # re-read (the dedup they need) on wall time too.
        self.retention = Retention(self.stores, retention, self._wall)

        def notify(receiver: str, value: bytes) -> None:
            send(NOTIFICATIONS.name, receiver, value)

        self.requester = Requester(tables["legs"], routing, notify, self._wall,
                                   self._forward if self.event_time else None, self._request)
        # Gateways are called on wall time, whatever the clock of escalations and groups.
        deliverer = Deliverer(gateways, routing, tables["deliveries"], tables["pending"], notify, self._dead_letter,
                              self._wall, run, place=self.place)
        self.dispatcher = Dispatcher(
            tables, routing, silences, notify, clock, deliverer,
            Escalator(tables["escalations"], routing, notify, clock, self._wall, self.place),
            Grouper(tables["groups"], routing, notify, clock, self._wall, self.place),
            self._wall, self.place, history_age,
        )

    def process(self, spec: TopicSpec, message, partition: int) -> None:
        self.place.partition = partition
        if spec is NOTIFICATIONS:
            self.dispatcher.on_event(message, partition)
        elif spec is SLA_EVENTS:
            self.requester.on_sla_event(message, partition)
        elif spec is REPEAT_CONTACTS:
            self.requester.on_repeat_contact(message, partition)
        else:
            self.requester.on_handoff_event(message, partition)

    def due(self, store: ChangelogStore, key: str, partition: int) -> None:
        """A finished entry's retention has run out (the only engine timer notify's values ask for:
        its own timers follow two clocks)."""
        self.retention.forget(store, key)
        if store.name == "sources":  # an open source deleted: it holds nothing back any more
            self.dispatcher.inhibition.discard(key)

    def now_us(self, partition: int) -> int:
        return epoch_us(self._wall.now())

    def before_commit(self) -> None:
        self.dispatcher.tick()
        self.retention.stamp()
        if self.event_time is not None:
            metrics.EVENT_TIME_LAG.set(max((self._wall.now() - self._clock.now()).total_seconds(), 0.0))

    def committed(self) -> None:
        self.dispatcher.deliverer.committed(self.dispatcher.indexed_partitions)

    def wake_s(self) -> float | None:
        return self.dispatcher.deliverer.wake_s()

    def assigned(self, partitions: frozenset[int]) -> None:
        self.dispatcher.rebuild(partitions)

    def revoked(self, partitions: frozenset[int]) -> None:
        self.dispatcher.rebuild(self.dispatcher.indexed_partitions - partitions)

    def rolled_back(self, store: ChangelogStore, keys: list[str]) -> None:
        # Called once per store, in order: re-index once, after the last one is back.
        if store is self.stores[-1]:
            self.dispatcher.rebuild(self.dispatcher.indexed_partitions)

    def _dead_letter(self, job: Job, value: bytes, reason: str) -> None:
        headers = dead_letter_headers(NOTIFICATIONS, job.partition, job.offset,
                                      f"delivery {job.delivery_id} on {job.channel}: {reason}", APP_ID)
        self._send(NOTIFICATIONS.dlq, job.notification.receiver, value, headers)
        common_metrics.DLQ_RECORDS.labels(NOTIFICATIONS.name).inc()

    def _request(self, notification: Notification, channels: list[str], acknowledged: tuple[datetime, str] | None,
                 deliver_history: bool) -> None:
        """Stage 1 requests a notification: written to notifications.v1 and, when its receiver's
        partition is this worker's, taken by stage 2 at once, in the same pass (and so the same
        transaction): marked `dispatched`, stage 2 skips it when it reads it back."""
        partition = self._receiver_partition(notification.receiver)
        here = partition in self.dispatcher.indexed_partitions
        self._send(NOTIFICATIONS.name, notification.receiver, codec.encode_requested(
            notification, channels, self._wall.now(), acknowledged, deliver_history, dispatched=here))
        if here:
            source = self.place.partition
            self.dispatcher.take(notification, channels, partition, acknowledged, deliver_history)
            self.place.partition = source  # stage 1 goes on writing its own partition's tables

    def _receiver_partition(self, receiver: str) -> int:
        """The partition of notifications.v1 that holds `receiver` (Kafka's partitioner)."""
        partition = self._receiver_partitions.get(receiver)
        if partition is None:
            if len(self._receiver_partitions) >= RECEIVERS_PLACED:
                self._receiver_partitions.clear()
            partition = self._receiver_partitions[receiver] = key_partition(
                receiver.encode(), self._partitions(NOTIFICATIONS.name))
        return partition

    def _forward(self, at: datetime, source_partition: int) -> None:
        """Event time `at` reached on a partition of handoff.events.v1: tell every stage-2 partition."""
        sources, recorded_at = self._partitions(HANDOFF_EVENTS.name), self._wall.now()
        for partition in range(self._partitions(NOTIFICATIONS.name)):
            self._send(NOTIFICATIONS.name, b"", codec.encode_heartbeat(at, source_partition, sources, partition,
                                                                      recorded_at), partition=partition)

    @cache  # noqa: B019 - one processor per process; partition counts do not change under it
    def _partitions(self, topic: str) -> int:
        if topic in self._known_partitions:
            return self._known_partitions[topic]
        admin = AdminClient({k: v for k, v in self._client.items()})
        return len(partition_ids(admin, topic))


def build(engine_settings: EngineSettings, routing: RoutingConfig, clock: Clock, silences: ActiveSilences,
          gateways: Gateways, run: Run, history_age: timedelta | None = None,
          retention: timedelta = DEFAULT_RETENTION) -> tuple[StreamEngine, NotifyProcessor]:
    """The engine with notify's processor plugged in."""
    sender = Sender()
    client = {"bootstrap.servers": engine_settings.bootstrap, **engine_settings.client}
    processor = NotifyProcessor(routing, clock, silences, gateways, run, sender, client, history_age, retention)
    return StreamEngine(engine_settings, processor, sender), processor
