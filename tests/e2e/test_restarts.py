"""Stopping and restarting services: clean exits on SIGTERM, state kept across restarts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2

from common.topics import SLA_EVENTS
from devstack.stack import Stack
from tests.support import admin_channel, around_the_clock, pseudonym, read_events, running_stack, unique

pytestmark = pytest.mark.e2e

SLOW_ACK = around_the_clock("12s", "1m")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("restarts"), SLOW_ACK) as stack:
        yield stack


def create(address: str, department: str) -> api.Handoff:
    with admin_channel(address) as channel:
        return api_grpc.HandoffServiceStub(channel).CreateHandoff(
            api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                     customer_ref=pseudonym(), department=department),
            timeout=10,
        )


def get(address: str, handoff_id: str) -> api.Handoff:
    with admin_channel(address) as channel:
        return api_grpc.HandoffServiceStub(channel).GetHandoff(api.GetHandoffRequest(handoff_id=handoff_id), timeout=10)


def test_handoff_service_exits_cleanly_on_sigterm_and_keeps_every_leg(stack: Stack) -> None:
    # given legs created through the running handoff service
    legs = [create(stack.services["handoff"].grpc, unique("billing")) for _ in range(3)]
    # when it is stopped with SIGTERM and started again
    assert stack.services["handoff"].stop(timeout=15) == 0
    restarted = stack.start_service("handoff")
    # then the new process knows every leg, as it was
    for leg in legs:
        found = get(restarted.grpc, leg.handoff_id)
        found.ClearField("breached")  # the 12 s clock may have breached meanwhile
        assert found == leg
    assert get(restarted.grpc, legs[0].handoff_id).status == types_pb2.LEG_STATUS_OPEN


def test_a_clock_due_while_sla_is_down_breaches_exactly_once_after_restart(stack: Stack) -> None:
    # given a leg whose clock the sla service has started (12 s target)
    leg = create(stack.services["handoff"].grpc, unique("claims"))
    ack_clock = lambda e: e.handoff_id == leg.handoff_id and e.clock == types_pb2.CLOCK_KIND_ACK  # noqa: E731
    started = read_events(stack.bootstrap, SLA_EVENTS, ack_clock, lambda found: len(found) >= 1)
    assert [e.WhichOneof("change") for e in started] == ["clock_started"]
    # when the sla service stops cleanly before the deadline and comes back after it
    assert stack.services["sla"].stop(timeout=30) == 0
    deadline = started[0].clock_started.deadline.ToDatetime()
    import time
    from datetime import datetime
    time.sleep(max(0.0, (deadline - datetime.utcnow()).total_seconds()) + 1)
    stack.start_service("sla")
    # then the rebuilt due index emits the missed warnings and the breach, each once
    events = read_events(stack.bootstrap, SLA_EVENTS, ack_clock, lambda found: False, timeout=12)
    assert [e.WhichOneof("change") for e in events] == ["clock_started", "warning", "warning", "breached"]
    assert [e.warning.fraction for e in events if e.WhichOneof("change") == "warning"] == [0.5, 0.8]


@pytest.mark.parametrize("service", ["notify", "sla", "handoff"])
def test_every_service_exits_zero_on_sigterm(stack: Stack, service: str) -> None:
    process = stack.services[service]
    assert process.stop(timeout=30) == 0
    stack.start_service(service)
