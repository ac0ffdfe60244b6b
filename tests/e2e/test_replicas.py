"""Two handoff replicas on one broker: a command sent to either reaches the owner of its
customer's partition, both answer reads alike, retries and races are applied once, and the
survivor of a stopped replica serves every customer.

Only the handoff service runs (two replicas and its broker): sla would flip `breached` on
legs between the reads these tests compare, and notify is not involved.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2
from prometheus_client.parser import text_string_to_metric_families

from common.kafkaio import partition_for
from common.localkafka import LocalKafka, create_topics
from common.topics import HANDOFF_EVENTS
from devstack.stack import Stack
from tests.support import admin_channel, pseudonym, read_events, unique, write_policies

pytestmark = pytest.mark.e2e

PARTITIONS = [0, 1, 2, 3]
TIMEOUT = 15
SETTLE_SECONDS = 120
# Refusals that mean "the owner is moving; retry with the same request id".
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FIRST, SECOND = "handoff", "handoff-2"


def retried(call: Callable[[], object], seconds: float = SETTLE_SECONDS) -> object:
    """`call()` repeated while it fails transiently (a rebalance), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() not in TRANSIENT or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def customers(count: int) -> list[str]:
    """`count` customer refs spread evenly over the partitions of handoff.commands.v1."""
    found: dict[int, list[str]] = {p: [] for p in PARTITIONS}
    while sum(len(refs) for refs in found.values()) < count:
        ref = pseudonym()
        if len(found[partition := partition_for(ref, PARTITIONS)]) < count // len(PARTITIONS):
            found[partition].append(ref)
    return [ref for refs in zip(*found.values()) for ref in refs]


def create_request(customer_ref: str, department: str) -> api.CreateHandoffRequest:
    return api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                    customer_ref=customer_ref, department=department)


def acknowledge_request(handoff_id: str) -> api.AcknowledgeHandoffRequest:
    return api.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=handoff_id)


class Replicas:
    """The stack's handoff replicas, each reached through an admin stub."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._channels: dict[str, tuple[str, grpc.Channel]] = {}

    def __getitem__(self, name: str) -> api_grpc.HandoffServiceStub:
        """A stub for replica `name` as it runs now (a restarted replica listens elsewhere)."""
        address = self.stack.services[name].grpc
        if name in self._channels and self._channels[name][0] != address:
            self._channels.pop(name)[1].close()
        if name not in self._channels:
            self._channels[name] = (address, admin_channel(address))
        return api_grpc.HandoffServiceStub(self._channels[name][1])

    def _samples(self, name: str, sample_name: str) -> list:
        with urllib.request.urlopen(self.stack.services[name].endpoints["metrics"], timeout=TIMEOUT) as page:
            text = page.read().decode()
        return [sample for family in text_string_to_metric_families(text) for sample in family.samples
                if sample.name == sample_name]

    def acknowledgements_applied(self, name: str, department: str) -> float:
        """How many acknowledgements of `department`'s legs replica `name` applied as partition owner."""
        return sum(sample.value for sample in self._samples(name, "handoff_leg_changes_total")
                   if sample.labels == {"department": department, "change": "acknowledged"})

    def commands_by_route(self, name: str) -> dict[str, float]:
        """Commands replica `name`'s owner took, by route: handed over by its own edge (local) or
        read from the command topic (topic)."""
        return {sample.labels["route"]: sample.value
                for sample in self._samples(name, "handoff_owner_commands_total")}

    def close(self) -> None:
        for _, ch in self._channels.values():
            ch.close()


def settle(replicas: Replicas) -> None:
    """Wait until a command for every partition, through either replica, is answered."""
    for name in (FIRST, SECOND):
        for ref in customers(len(PARTITIONS)):
            request = create_request(ref, "billing")
            retried(lambda: replicas[name].CreateHandoff(request, timeout=TIMEOUT))


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    workdir = tmp_path_factory.mktemp("replicas")
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(workdir, write_policies(workdir), bootstrap=kafka.bootstrap)
        replicas = Replicas(stack)
        try:
            stack.start_service("handoff")
            stack.start_service("handoff", instance="handoff-2")
            settle(replicas)
            yield replicas
        finally:
            replicas.close()
            stack.stop()


def events_of(replicas: Replicas, handoff_ids: set[str]) -> list:
    """The handoff.events.v1 events of these legs (read for a few seconds, so late duplicates show)."""
    return read_events(replicas.stack.bootstrap, HANDOFF_EVENTS, lambda e: e.handoff_id in handoff_ids,
                       lambda found: False, timeout=3)


def list_all(stub: api_grpc.HandoffServiceStub, department: str = "") -> list[api.Handoff]:
    legs, token = [], ""
    while True:
        page = stub.ListHandoffs(api.ListHandoffsRequest(department=department, page_size=100, page_token=token),
                                 timeout=TIMEOUT)
        legs += page.handoffs
        if not (token := page.next_page_token):
            return legs


def test_commands_through_either_replica_reach_the_owner_of_every_partition(replicas: Replicas) -> None:
    # given 48 legs of 24 customers spread over every partition, created through replica 1
    department = unique("billing")
    refs = customers(24)
    before = {name: replicas.commands_by_route(name) for name in (FIRST, SECOND)}
    legs = [replicas[FIRST].CreateHandoff(create_request(ref, department), timeout=TIMEOUT) for ref in refs * 2]
    # when each is acknowledged through replica 2
    acknowledged = [replicas[SECOND].AcknowledgeHandoff(acknowledge_request(leg.handoff_id), timeout=TIMEOUT)
                    for leg in legs]
    # then every acknowledgement was applied
    assert [leg.status for leg in acknowledged] == [types_pb2.LEG_STATUS_ACKNOWLEDGED] * len(legs)
    assert [leg.handoff_id for leg in acknowledged] == [leg.handoff_id for leg in legs]
    # and both replicas applied some as partition owners, once each between them
    applied = {name: replicas.acknowledgements_applied(name, department) for name in (FIRST, SECOND)}
    assert all(count > 0 for count in applied.values()), applied
    assert sum(applied.values()) == len(legs)
    # and each replica applied the commands of its own partitions from its own edge and the
    # others' from the command topic: 48 creates and 48 acknowledgements, taken once each
    taken = {name: {route: count - before[name].get(route, 0.0)
                    for route, count in replicas.commands_by_route(name).items()} for name in (FIRST, SECOND)}
    assert all(taken[name].get("local", 0) > 0 and taken[name].get("topic", 0) > 0 for name in taken), taken
    assert sum(count for routes in taken.values() for count in routes.values()) == 2 * len(legs), taken
    assert sum(routes.get("forwarded", 0) for routes in taken.values()) == 0, taken


def test_both_replicas_read_the_same_legs(replicas: Replicas) -> None:
    # given legs created, acknowledged and resolved through one replica or the other
    department = unique("claims")
    legs = [replicas[name].CreateHandoff(create_request(ref, department), timeout=TIMEOUT)
            for name, ref in zip([FIRST, SECOND] * 6, customers(12))]
    for index, leg in enumerate(legs[:8]):
        writer = replicas[(FIRST, SECOND)[index % 2]]
        writer.AcknowledgeHandoff(acknowledge_request(leg.handoff_id), timeout=TIMEOUT)
        if index % 4 == 0:
            writer.ResolveHandoff(api.ResolveHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id),
                                  timeout=TIMEOUT)
    # when each replica is asked for each leg, and for the department's list
    seen = {name: [replicas[name].GetHandoff(api.GetHandoffRequest(handoff_id=leg.handoff_id), timeout=TIMEOUT)
                   for leg in legs] for name in (FIRST, SECOND)}
    listed = {name: list_all(replicas[name], department) for name in (FIRST, SECOND)}
    # then both answer alike, with every leg in its latest state
    assert seen[FIRST] == seen[SECOND]
    statuses = [leg.status for leg in seen[FIRST]]
    assert statuses.count(types_pb2.LEG_STATUS_RESOLVED) == 2
    assert statuses.count(types_pb2.LEG_STATUS_ACKNOWLEDGED) == 6
    assert statuses.count(types_pb2.LEG_STATUS_OPEN) == 4
    assert listed[FIRST] == listed[SECOND]
    assert sorted(leg.handoff_id for leg in listed[FIRST]) == sorted(leg.handoff_id for leg in legs)


def test_a_create_retried_on_the_other_replica_returns_the_first_leg_and_writes_once(replicas: Replicas) -> None:
    # given a create request answered by replica 1
    request = create_request(pseudonym(), unique("accounts"))
    first = replicas[FIRST].CreateHandoff(request, timeout=TIMEOUT)
    # when the client retries it, unchanged and with the same token, on replica 2
    second = replicas[SECOND].CreateHandoff(request, timeout=TIMEOUT)
    # then the same leg comes back and handoff.events.v1 holds one created event for it
    assert second == first
    assert [e.WhichOneof("change") for e in events_of(replicas, {first.handoff_id})] == ["created"]


def test_concurrent_acknowledgements_on_both_replicas_apply_once(replicas: Replicas) -> None:
    # given open legs of customers on every partition
    department = unique("field-service")
    legs = [replicas[FIRST].CreateHandoff(create_request(ref, department), timeout=TIMEOUT) for ref in customers(8)]
    # when each is acknowledged through both replicas at once, by two different requests
    outcomes = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for leg in legs:
            calls = [pool.submit(replicas[name].AcknowledgeHandoff, acknowledge_request(leg.handoff_id),
                                 timeout=TIMEOUT) for name in (FIRST, SECOND)]
            outcomes.append(sorted(
                (grpc.StatusCode.OK if call.exception() is None else call.exception().code()).name for call in calls))
    # then one wins and the other finds the leg already acknowledged
    assert outcomes == [["FAILED_PRECONDITION", "OK"]] * len(legs)
    # and each leg has exactly one acknowledged event
    events = events_of(replicas, {leg.handoff_id for leg in legs})
    acknowledged = sorted(e.handoff_id for e in events if e.WhichOneof("change") == "acknowledged")
    assert acknowledged == sorted(leg.handoff_id for leg in legs)


def test_when_replica_2_stops_replica_1_serves_every_customer(replicas: Replicas) -> None:
    # given acknowledged legs of customers on every partition
    department = unique("billing")
    legs = [replicas[FIRST].CreateHandoff(create_request(ref, department), timeout=TIMEOUT) for ref in customers(16)]
    for leg in legs:
        replicas[SECOND].AcknowledgeHandoff(acknowledge_request(leg.handoff_id), timeout=TIMEOUT)
    # when replica 2 stops cleanly
    assert replicas.stack.services[SECOND].stop(timeout=30) == 0
    # then replica 1 takes over its partitions and applies a command for every customer
    started = []
    for leg in legs:
        request = api.UpdateHandoffStatusRequest(request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id,
                                                 status=types_pb2.LEG_STATUS_IN_PROGRESS)
        started.append(retried(lambda: replicas[FIRST].UpdateHandoffStatus(request, timeout=TIMEOUT)))
    assert [leg.status for leg in started] == [types_pb2.LEG_STATUS_IN_PROGRESS] * len(legs)


def test_a_restarted_replica_keeps_every_leg_and_every_answer(replicas: Replicas) -> None:
    # given legs of customers on every partition, each with a command applied
    department = unique("claims")
    legs = [replicas[FIRST].CreateHandoff(create_request(ref, department), timeout=TIMEOUT) for ref in customers(8)]
    acks = [acknowledge_request(leg.handoff_id) for leg in legs]
    answers = [retried(lambda: replicas[FIRST].AcknowledgeHandoff(ack, timeout=TIMEOUT)) for ack in acks]
    everything = list_all(replicas[FIRST])
    # when replica 1 stops cleanly and starts again
    assert replicas.stack.services[FIRST].stop(timeout=30) == 0
    replicas.stack.start_service("handoff")
    # then it knows every leg as it was
    assert list_all(replicas[FIRST]) == everything
    # and a retried command gets its first answer, not a second application
    assert [retried(lambda: replicas[FIRST].AcknowledgeHandoff(ack, timeout=TIMEOUT)) for ack in acks] == answers
    # and the owner's table still holds every leg, so new commands apply
    resolved = [retried(lambda: replicas[FIRST].ResolveHandoff(
        api.ResolveHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id), timeout=TIMEOUT))
        for leg in legs]
    assert [leg.status for leg in resolved] == [types_pb2.LEG_STATUS_RESOLVED] * len(legs)
    acknowledged = [e for e in events_of(replicas, {leg.handoff_id for leg in legs})
                    if e.WhichOneof("change") == "acknowledged"]
    assert len(acknowledged) == len(legs)
