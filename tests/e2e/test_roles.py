"""SLA_ROLE and NOTIFY_ROLE, as the production manifests run sla and notify: a worker runs
the clocks (sla) or the pipeline (notify) without serving the service's API; an api replica
serves the API from the topics without running the stream engine. Together they do what
one replica of role `all` does. One stack, with both services' workers, and one api
replica of each."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import notification_service_pb2 as notify_api
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import notifications_pb2, sla_service_pb2, sla_service_pb2_grpc, types_pb2

from bench.probes import by_label, gauge, scrape, total
from devstack.stack import Stack
from tests.support import Subscription, admin_channel, pseudonym, rpc_error, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e
BREACH = notifications_pb2.NOTIFICATION_KIND_BREACH
ACK = types_pb2.CLOCK_KIND_ACK


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("roles"), env={"SLA_ROLE": "worker", "NOTIFY_ROLE": "worker"}) as stack:
        stack.start_service("sla", instance="sla-api", env={"SLA_ROLE": "api"})
        stack.start_service("notify", instance="notify-api", env={"NOTIFY_ROLE": "api"})
        yield stack


def create_leg(stack: Stack, department: str) -> api.Handoff:
    """A leg left to breach its 3 s ack target."""
    with admin_channel(stack.services["handoff"].grpc) as channel:
        return api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
            request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(),
            department=department, priority=types_pb2.PRIORITY_NORMAL, summary="refund not received"), timeout=10)


def engine_commits(service) -> float:
    return total(scrape(service.endpoints["metrics"]), "handoff_engine_commit_seconds_count")


def test_an_sla_worker_runs_the_clocks_and_an_api_replica_answers_for_them(stack: Stack) -> None:
    worker, replica = stack.services["sla"], stack.services["sla-api"]
    department = unique("claims")
    # when a leg is left to breach its ack target
    leg = create_leg(stack, department)
    # then the api replica lists the breach the worker's clock wrote
    with admin_channel(replica.grpc) as channel:
        sla = sla_service_pb2_grpc.SlaServiceStub(channel)
        listed = lambda: [b.handoff_id for b in sla.ListBreaches(  # noqa: E731
            sla_service_pb2.ListBreachesRequest(department=department), timeout=10).breaches]
        assert wait_for(lambda: listed() == [leg.handoff_id], timeout=30)
        clocks = {clock.clock: clock for clock in sla.GetHandoffSla(
            sla_service_pb2.GetHandoffSlaRequest(handoff_id=leg.handoff_id), timeout=10).clocks}
    assert clocks[ACK].breached
    # and the clocks ran on the worker, none on the api replica, which runs no stream engine
    breaches = lambda service: by_label(scrape(service.endpoints["metrics"]), "handoff_sla_breaches_total",  # noqa: E731
                                        "department")
    assert breaches(worker).get(department, 0) >= 1 and department not in breaches(replica)
    assert gauge(worker.endpoints["metrics"], "handoff_sla_running_clocks") >= 1
    assert engine_commits(worker) > 0 and engine_commits(replica) == 0
    # and the worker does not serve SlaService
    with admin_channel(worker.grpc) as channel:
        refused = rpc_error(lambda: sla_service_pb2_grpc.SlaServiceStub(channel).GetHandoffSla(
            sla_service_pb2.GetHandoffSlaRequest(handoff_id=leg.handoff_id), timeout=10))
    assert refused.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_notify_worker_delivers_and_an_api_replica_serves_what_it_delivered(stack: Stack) -> None:
    worker, replica = stack.services["notify"], stack.services["notify-api"]
    department = unique("billing")
    # given a subscriber on the api replica
    subscription = Subscription(replica.grpc, department)
    try:
        time.sleep(1.0)  # the stream starts reading from the end; give it a moment to attach
        # when a leg of its department breaches
        leg = create_leg(stack, department)
        # then the worker's delivery reaches the subscriber through the api replica
        note = subscription.next(timeout=30).notification
        assert (note.handoff_id, note.kind) == (leg.handoff_id, BREACH)
    finally:
        subscription.close()
    # and the api replica lists it
    with admin_channel(replica.grpc) as channel:
        listed = notify_grpc.NotificationServiceStub(channel).ListNotifications(
            notify_api.ListNotificationsRequest(department=department), timeout=10)
    assert (leg.handoff_id, BREACH) in {(n.handoff_id, n.kind) for n in listed.notifications}
    # and the worker requested and delivered it, the api replica nothing
    outcomes = lambda service: by_label(scrape(service.endpoints["metrics"]), "handoff_notifications_total",  # noqa: E731
                                        "outcome")
    assert outcomes(worker).get("requested", 0) >= 1 and outcomes(worker).get("delivered", 0) >= 1
    assert outcomes(replica) == {}
    assert engine_commits(replica) == 0
    # and the worker does not serve NotificationService
    with admin_channel(worker.grpc) as channel:
        refused = rpc_error(lambda: notify_grpc.NotificationServiceStub(channel).ListNotifications(
            notify_api.ListNotificationsRequest(department=department), timeout=10))
    assert refused.code() == grpc.StatusCode.UNIMPLEMENTED
