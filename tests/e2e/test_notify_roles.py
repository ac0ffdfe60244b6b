"""NOTIFY_ROLE: a worker runs the pipeline without serving NotificationService; an api
replica serves NotificationService from notifications.v1 without running the pipeline.
Together they do what one replica of role `all` does."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import notification_service_pb2 as notify_api
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import notifications_pb2, types_pb2

from bench.probes import by_label, scrape, total
from tests.support import Subscription, admin_channel, pseudonym, rpc_error, running_stack, unique

pytestmark = pytest.mark.e2e
BREACH = notifications_pb2.NOTIFICATION_KIND_BREACH


def test_a_worker_delivers_and_an_api_replica_serves_what_it_delivered(tmp_path: Path) -> None:
    with running_stack(tmp_path, env={"NOTIFY_ROLE": "worker"}) as stack:
        worker = stack.services["notify"]
        replica = stack.start_service("notify", instance="notify-api", env={"NOTIFY_ROLE": "api"})
        department = unique("billing")
        # given a subscriber on the api replica
        subscription = Subscription(replica.grpc, department)
        try:
            time.sleep(1.0)  # the stream starts reading from the end; give it a moment to attach
            # when a leg of its department breaches (ack target 3 s)
            with admin_channel(stack.services["handoff"].grpc) as channel:
                leg = api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
                    request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(),
                    department=department, priority=types_pb2.PRIORITY_NORMAL, summary="refund not received"),
                    timeout=10)
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
        assert total(scrape(replica.endpoints["metrics"]), "handoff_engine_commit_seconds_count") == 0
        # and the worker does not serve NotificationService
        with admin_channel(worker.grpc) as channel:
            refused = rpc_error(lambda: notify_grpc.NotificationServiceStub(channel).ListNotifications(
                notify_api.ListNotificationsRequest(department=department), timeout=10))
        assert refused.code() == grpc.StatusCode.UNIMPLEMENTED
