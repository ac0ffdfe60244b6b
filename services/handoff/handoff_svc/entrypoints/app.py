"""handoff on the stream engine: the partition owner's processor, and the gRPC edge.

The owner reads handoff.commands.v1 (what the edge sends) and handoff.events.v1 (legs an
import wrote) and keeps two stores with changelogs: `legs` and `requests` (the reply given
to each request, so a retry is answered and not applied again). Each batch's events,
contacts and replies, its store writes and its input offsets are committed in one
transaction, and the edge reads replies read_committed: a caller is told only what the
broker holds.

The edge, on the asyncio loop beside the engine's thread, serves HandoffService: it
sends commands over the CommandBus and answers reads from the LegStore its LegFeed keeps. A
command for a partition this replica's engine owns skips the command topic: the bus hands it
to the engine through the CommandInbox (adapters/inbox.py); its reply goes through the reply
topic like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from handoff.v1 import handoff_service_pb2, handoff_service_pb2_grpc

from common.clock import Clock, epoch_us
from common.departments import Departments
from common.metrics import child
from common.security import ServerSecurity
from common.settings import ServiceSettings, read_model_history
from common.streams.engine import Abort, EngineSettings, Sender, StreamEngine
from common.streams.service import Registration
from common.streams.store import ChangelogStore
from common.topics import HANDOFF_APP, HANDOFF_COMMANDS, HANDOFF_EVENTS, HANDOFF_REPLIES, TABLES, TopicSpec, changelog_name
from handoff_svc import metrics
from handoff_svc.adapters.commandbus import CommandBus
from handoff_svc.adapters.inbox import CommandInbox
from handoff_svc.adapters.legstore import LegFeed, LegStore
from handoff_svc.entrypoints.grpc_api import HandoffApi
from handoff_svc.entrypoints.owner import CommandOwner, ImportedLegs
from handoff_svc.settings import Retention

log = logging.getLogger(__name__)
APP_ID = HANDOFF_APP
SERVICE_NAME = handoff_service_pb2.DESCRIPTOR.services_by_name["HandoffService"].full_name
# Commands from the inbox applied in one pass at most (the engine's batches are 2,000 records).
INBOX_PER_PASS = 1_000
# How long a pass waits for records while the inbox is empty: librdkafka's poll cannot be
# woken, so this is the longest a command from the edge waits for the engine to look.
INBOX_POLL_S = 0.002


class OwnerProcessor:
    """What the stream engine calls: the CommandOwner and the fold of imported legs."""

    inputs = (HANDOFF_COMMANDS, HANDOFF_EVENTS)
    # Both are written by this project's clients, with Kafka's partitioner.
    keyed_inputs: tuple[TopicSpec, ...] = ()

    # Commands from the inbox write what no input record carries: see inbox.py.
    fenced = True

    def __init__(self, clock: Clock, send: Sender, retention: Retention = Retention()) -> None:
        self.legs, self.requests = (ChangelogStore(name, changelog_name(APP_ID, name)) for name in TABLES[APP_ID])
        self.stores = (self.legs, self.requests)
        self._clock = clock
        self._send = send
        self.inbox = CommandInbox()  # also holds what this member owns: the edge and before_commit ask it
        self._failed: set[str] = set()  # ids of handed-over commands whose application raised
        self.owner = CommandOwner(self.legs, self.requests, send, clock, retention)
        self.imported = ImportedLegs(self.legs, clock, retention)

    def process(self, spec: TopicSpec, message, partition: int) -> None:
        if spec is HANDOFF_COMMANDS:
            self._apply(message, partition, "topic")
        else:
            self.imported.on_event(message, partition)

    def _apply(self, command, partition: int, route: str) -> None:
        """Apply `command` and write its reply for the waiting replica, in the batch."""
        reply = self.owner.on_command(command, partition)
        self._send(HANDOFF_REPLIES.name, command.reply_to, reply.SerializeToString())
        child(metrics.COMMANDS, route).inc()

    def due(self, store: ChangelogStore, key: str, partition: int) -> None:
        """The only instant the owner's values ask for: when a reply or a closed leg is forgotten."""
        del store[key]

    def now_us(self, partition: int) -> int:
        return epoch_us(self._clock.now())

    def before_commit(self) -> None:
        """Apply the commands the edge handed over. One whose partition went elsewhere meanwhile
        goes to the command topic, where its new owner finds it; so does one that failed here,
        where the engine tries it a bounded number of times and then dead-letters it."""
        for waiting in self.inbox.take(INBOX_PER_PASS):
            command = waiting.command
            command_id = command.envelope.event_id
            if self.inbox.owns(waiting.partition) and command_id not in self._failed:
                try:
                    self._apply(command, waiting.partition, "local")
                except Exception as error:
                    log.exception("applying command %s from the edge failed; it goes to the command topic", command_id)
                    self._failed.add(command_id)
                    raise Abort(f"command {command_id}: {error}") from error
            else:
                self._failed.discard(command_id)
                self._send(HANDOFF_COMMANDS.name, command.customer_ref, command.SerializeToString())
                child(metrics.COMMANDS, "forwarded").inc()

    def committed(self) -> None:
        self.inbox.committed()

    def aborted(self) -> None:
        self.inbox.aborted()

    def wake_s(self) -> float:
        return 0.0 if self.inbox.waiting() else INBOX_POLL_S

    def assigned(self, partitions: frozenset[int]) -> None:
        self.inbox.own(partitions)

    def revoked(self, partitions: frozenset[int]) -> None:
        self.inbox.give_up(partitions)

    def rolled_back(self, store: ChangelogStore, keys: list[str]) -> None:
        pass


def build(engine_settings: EngineSettings, clock: Clock,
          retention: Retention = Retention()) -> tuple[StreamEngine, OwnerProcessor]:
    """The engine with the owner's processor plugged in."""
    sender = Sender()
    processor = OwnerProcessor(clock, sender, retention)
    return StreamEngine(engine_settings, processor, sender), processor


@dataclass
class Edge:
    """The gRPC edge's servicer, and what starts its feed and bus before it serves and
    stops them after."""

    registrations: list[Registration]
    bus: CommandBus
    feed: LegFeed

    async def on_ready(self) -> None:
        await self.feed.start()
        await self.bus.start()

    async def on_stopped(self) -> None:
        await self.bus.stop()
        await self.feed.stop()


def edge(settings: ServiceSettings, security: ServerSecurity, clock: Clock, departments: Departments,
         inbox: CommandInbox | None = None) -> Edge:
    """HandoffService over a command bus and a read model of every leg; `inbox` is the
    replica's own engine, for the commands of the partitions it owns."""
    store = LegStore(read_model_history())
    feed = LegFeed(settings.kafka_bootstrap, store, settings.kafka_security)
    bus = CommandBus(settings.kafka_bootstrap, settings.instance, settings.kafka_security, inbox)
    metrics.KNOWN_LEGS.set_function(lambda: len(store))
    metrics.watch_open_legs(store)
    api = HandoffApi(store, feed, bus, clock, security.customer_ref_keys, departments)
    registrations = [(handoff_service_pb2_grpc.add_HandoffServiceServicer_to_server, api, SERVICE_NAME)]
    return Edge(registrations, bus, feed)
