"""Crash safety of the handoff command owner on the stream engine: clients stream CreateHandoff
calls, retrying with the same request id on any transient status, while the handoff process
is killed with SIGKILL at random moments (once onto an empty data directory) and started
again.

Afterwards, on handoff.events.v1 as a `read_committed` reader sees it: every acknowledged
create exists exactly once (one HandoffCreated, with the acknowledged id), and no leg exists
whose caller was told it failed. Raw duplicates (one event id on two committed records) do
not occur: the events, the replies, the stores and the command offsets of a batch are one
transaction. A `read_uncommitted` reader would also see the records of aborted
transactions; the test reports how many there were.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition
from handoff.v1 import handoff_events_pb2
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common.localkafka import LocalKafka, create_topics
from common.topics import HANDOFF_EVENTS
from devstack.stack import Stack
from tests.support import admin_channel, crash_schedule, pseudonym, unique, write_policies

pytestmark = pytest.mark.e2e

CLIENTS = 8
CREATES_PER_CLIENT = 300
KILLS = 3
CALL_TIMEOUT_S = 5.0
RUN_TIMEOUT_S = 150.0
# What a caller retries with the same request id: the call may or may not have been applied.
RETRIABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})


class Client:
    """One caller: its creates in order, each retried until answered; what it was told."""

    def __init__(self, stack: Stack, deadline: float) -> None:
        self._stack = stack
        self._deadline = deadline
        self._department = unique("billing")
        self.acknowledged: dict[str, str] = {}  # request id -> handoff id
        self.refused: dict[str, grpc.StatusCode] = {}
        self.retries = 0

    def run(self) -> None:
        channels: dict[str, grpc.Channel] = {}
        try:
            for _ in range(CREATES_PER_CLIENT):
                request = api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                                   customer_ref=pseudonym(), department=self._department)
                if not self._create(request, channels):
                    return
        finally:
            for opened in channels.values():
                opened.close()

    def _create(self, request: api.CreateHandoffRequest, channels: dict[str, grpc.Channel]) -> bool:
        """Call until answered; False once the run's time is up."""
        while time.monotonic() < self._deadline:
            address = self._stack.services["handoff"].grpc  # a restarted process listens elsewhere
            if address not in channels:
                channels[address] = admin_channel(address)
            try:
                leg = api_grpc.HandoffServiceStub(channels[address]).CreateHandoff(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                if error.code() in RETRIABLE:
                    self.retries += 1
                    time.sleep(0.05)
                    continue
                self.refused[request.request_id] = error.code()
                return True
            self.acknowledged[request.request_id] = leg.handoff_id
            return True
        return False


def read_created(bootstrap: str, isolation: str) -> list[tuple[str, str, str]]:
    """(event id, handoff id, request id) of every HandoffCreated on handoff.events.v1, read with `isolation`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"crash-check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": isolation, "enable.partition.eof": True})
    metadata = consumer.list_topics(HANDOFF_EVENTS.name, timeout=10).topics[HANDOFF_EVENTS.name]
    consumer.assign([TopicPartition(HANDOFF_EVENTS.name, p, 0) for p in metadata.partitions])
    created: list[tuple[str, str, str]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < len(metadata.partitions) and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                if message.error():
                    at_end.add(message.partition())
                    continue
                event = handoff_events_pb2.HandoffEvent.FromString(message.value())
                if event.WhichOneof("change") == "created":
                    created.append((event.envelope.event_id, event.handoff_id, event.envelope.request_id))
    finally:
        consumer.close()
    assert len(at_end) == len(metadata.partitions), "handoff.events.v1 was not read to its end"
    return created


def test_kill9_of_handoff_loses_no_acknowledged_create_and_applies_none_twice(tmp_path: Path) -> None:
    rng = crash_schedule()
    with LocalKafka(tmp_path / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(tmp_path, write_policies(tmp_path), bootstrap=kafka.bootstrap)
        try:
            stack.start_service("handoff")
            # given clients streaming creates, each retrying a transient failure with the same request id
            clients = [Client(stack, time.monotonic() + RUN_TIMEOUT_S) for _ in range(CLIENTS)]
            threads = [threading.Thread(target=client.run) for client in clients]
            for thread in threads:
                thread.start()

            # when handoff is killed at random moments, once with its data directory wiped
            moments = sorted(rng.uniform(3, 25) for _ in range(KILLS))
            wiped = rng.randrange(KILLS)
            started = time.monotonic()
            for number, at in enumerate(moments):
                time.sleep(max(0.0, started + at - time.monotonic()))
                handoff = stack.services["handoff"]
                os.kill(handoff.pid, signal.SIGKILL)
                handoff.process.wait()
                if number == wiped:
                    shutil.rmtree(tmp_path / "data" / "handoff-1", ignore_errors=True)
                stack.start_service("handoff")
            for thread in threads:
                thread.join()
            committed = read_created(kafka.bootstrap, "read_committed")
            raw = read_created(kafka.bootstrap, "read_uncommitted")
        finally:
            stack.stop()

    acknowledged = {request: leg for client in clients for request, leg in client.acknowledged.items()}
    refused = {request: code for client in clients for request, code in client.refused.items()}
    # every client finished its creates within the run
    assert len(acknowledged) + len(refused) == CLIENTS * CREATES_PER_CLIENT
    # then each acknowledged create has exactly one HandoffCreated, the leg the caller was told of
    distinct = defaultdict(set)
    for event_id, handoff_id, request_id in committed:
        distinct[request_id].add((event_id, handoff_id))
    wrong = {request: sorted(distinct[request]) for request, leg in acknowledged.items()
             if [handoff_id for _, handoff_id in distinct[request]] != [leg]}
    assert not wrong, f"{len(wrong)} acknowledged creates differ, e.g. {list(wrong.items())[:3]}"
    # and no raw duplicates: a committed reader never sees one event id twice
    ids = Counter(event_id for event_id, _, _ in committed)
    assert max(ids.values()) == 1, ids.most_common(3)
    # and no leg exists for a create its caller was told failed; and valid creates are never refused
    assert not {request for request in refused if distinct[request]}
    assert not refused, f"{len(refused)} creates refused, e.g. {list(refused.items())[:3]}"
    retries = sum(client.retries for client in clients)
    print(f"{len(acknowledged)} creates acknowledged after {retries} retried calls; committed HandoffCreated: "
          f"{len(committed)}, raw records read_uncommitted: {len(raw)}, of which in aborted transactions: "
          f"{len(raw) - len(committed)}")
