"""The thin path through all three services, on a real broker and real gRPC:
a handoff created over gRPC breaches and the notification reaches a Subscribe client;
a handoff acknowledged in time produces `met` and no breach notification."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import notifications_pb2, types_pb2

from common.topics import HANDOFF_EVENTS, SLA_EVENTS
from devstack.stack import Stack
from tests.support import Subscription, admin_channel, pseudonym, read_events, rpc_error, running_stack, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("thin-path")) as stack:
        yield stack


@pytest.fixture(scope="module")
def handoffs(stack: Stack) -> Iterator[api_grpc.HandoffServiceStub]:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        yield api_grpc.HandoffServiceStub(channel)


@pytest.fixture
def subscribe(stack: Stack) -> Iterator:
    opened: list[Subscription] = []

    def open_subscription(department: str, cursor: str = "") -> Subscription:
        subscription = Subscription(stack.services["notify"].grpc, department, cursor)
        opened.append(subscription)
        time.sleep(1.0)  # the stream starts reading from the end; give it a moment to attach
        return subscription

    yield open_subscription
    for subscription in opened:
        subscription.close()


def create(stub, department: str, priority=types_pb2.PRIORITY_NORMAL, request_id: str | None = None) -> api.Handoff:
    return stub.CreateHandoff(
        api.CreateHandoffRequest(
            request_id=request_id or str(uuid.uuid4()),
            case_id=unique("case"),
            customer_ref=pseudonym(),
            department=department,
            priority=priority,
            summary="refund not received",
        ),
        timeout=10,
    )


def acknowledge(stub, handoff_id: str) -> api.Handoff:
    return stub.AcknowledgeHandoff(
        api.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=handoff_id), timeout=10
    )


def ack_clock(handoff_id: str):
    """Selects the SLA events of one leg's ack clock."""
    return lambda e: e.handoff_id == handoff_id and e.clock == types_pb2.CLOCK_KIND_ACK


def sla_changes(stack: Stack, handoff_id: str, until, timeout: float = 30) -> list[str]:
    """The changes of a leg's ack clock on sla.events.v1, read until `until(changes)`."""
    events = read_events(stack.bootstrap, SLA_EVENTS, ack_clock(handoff_id),
                         lambda found: until([e.WhichOneof("change") for e in found]), timeout)
    return [e.WhichOneof("change") for e in events]


def test_unacknowledged_handoff_breaches_and_the_subscriber_is_notified(stack, handoffs, subscribe) -> None:
    # given a department with a connected subscriber
    department = unique("billing")
    subscription = subscribe(department)
    # when a handoff for it is created and nobody acknowledges it (ack target 3 s)
    leg = create(handoffs, department)
    # then the subscriber receives a breach notification for that leg
    response = subscription.next(timeout=30)
    note = response.notification
    assert (note.handoff_id, note.department, note.kind) == (
        leg.handoff_id, department, notifications_pb2.NOTIFICATION_KIND_BREACH
    )
    assert note.clock == types_pb2.CLOCK_KIND_ACK
    assert response.cursor
    # and sla.events.v1 holds its ack clock's start, a warning at 50 % and 80 %, then one breach
    changes = sla_changes(stack, leg.handoff_id, lambda c: "breached" in c)
    assert changes == ["clock_started", "warning", "warning", "breached"]
    # and its resolve clock started with it
    resolve = read_events(stack.bootstrap, SLA_EVENTS,
                          lambda e: e.handoff_id == leg.handoff_id and e.clock == types_pb2.CLOCK_KIND_RESOLVE,
                          lambda found: len(found) >= 1)
    assert resolve[0].WhichOneof("change") == "clock_started"


def test_acknowledged_in_time_is_met_and_not_notified(stack, handoffs, subscribe) -> None:
    # given a subscriber, a leg acknowledged at once, and a canary leg left to breach
    department = unique("claims")
    subscription = subscribe(department)
    acknowledged = create(handoffs, department)
    assert acknowledge(handoffs, acknowledged.handoff_id).status == types_pb2.LEG_STATUS_ACKNOWLEDGED
    canary = create(handoffs, department)
    # when both deadlines have passed (the canary's breach proves the pipeline is live)
    first = subscription.next(timeout=30)
    later = subscription.drain(seconds=2)
    # then only the canary was notified
    assert [r.notification.handoff_id for r in [first, *later]] == [canary.handoff_id]
    # and the acknowledged leg's ack clock was met in time, never breached
    met = read_events(stack.bootstrap, SLA_EVENTS, ack_clock(acknowledged.handoff_id),
                      lambda found: any(e.WhichOneof("change") == "met" for e in found))
    assert [e.WhichOneof("change") for e in met] == ["clock_started", "met"]
    assert met[-1].met.late is False


def test_acknowledging_after_the_deadline_is_met_late(stack, handoffs) -> None:
    # given a leg whose 2 s target has passed unacknowledged
    leg = create(handoffs, unique("accounts"), priority=types_pb2.PRIORITY_URGENT)
    assert "breached" in sla_changes(stack, leg.handoff_id, lambda c: "breached" in c)
    # when it is acknowledged
    acknowledge(handoffs, leg.handoff_id)
    # then the clock is met late with the overdue time, after exactly one breach
    events = read_events(stack.bootstrap, SLA_EVENTS, ack_clock(leg.handoff_id),
                         lambda found: any(e.WhichOneof("change") == "met" for e in found))
    assert [e.WhichOneof("change") for e in events] == ["clock_started", "warning", "warning", "breached", "met"]
    assert events[-1].met.late is True
    assert events[-1].met.overdue.ToTimedelta().total_seconds() > 0


def test_a_retried_create_returns_the_first_leg_and_writes_once(stack, handoffs) -> None:
    # given a create request that the client sends again, unchanged, as a retry would
    request = api.CreateHandoffRequest(
        request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(),
        department=unique("billing"),
    )
    first = handoffs.CreateHandoff(request, timeout=10)
    # when it is sent again
    second = handoffs.CreateHandoff(request, timeout=10)
    # then the same leg comes back and handoff.events.v1 holds one created event for it
    assert second == first
    created = read_events(stack.bootstrap, HANDOFF_EVENTS, lambda e: e.handoff_id == first.handoff_id,
                          lambda found: False, timeout=3)
    assert [e.WhichOneof("change") for e in created] == ["created"]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("request_id", {"request_id": ""}),
        ("case_id", {"case_id": ""}),
        ("customer_ref", {"customer_ref": "has spaces"}),
        ("department", {"department": "Billing Dept"}),
        ("priority", {"priority": 99}),
        ("summary", {"summary": "x" * 501}),
    ],
)
def test_a_bad_create_request_is_invalid_argument_naming_the_field(handoffs, field, change) -> None:
    request = api.CreateHandoffRequest(
        request_id=str(uuid.uuid4()), case_id="C-1", customer_ref=pseudonym(), department="billing",
        priority=types_pb2.PRIORITY_NORMAL,
    )
    for name, value in change.items():
        setattr(request, name, value)
    error = rpc_error(lambda: handoffs.CreateHandoff(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_acknowledging_an_unknown_leg_is_not_found(handoffs) -> None:
    error = rpc_error(lambda: acknowledge(handoffs, "no-such-leg"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_acknowledging_twice_is_a_failed_precondition_naming_the_state(handoffs) -> None:
    leg = create(handoffs, unique("billing"))
    acknowledge(handoffs, leg.handoff_id)
    error = rpc_error(lambda: acknowledge(handoffs, leg.handoff_id))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ACKNOWLEDGED" in error.details()


def resolve_changes(stack: Stack, handoff_id: str, until) -> list:
    return read_events(stack.bootstrap, SLA_EVENTS,
                       lambda e: e.handoff_id == handoff_id and e.clock == types_pb2.CLOCK_KIND_RESOLVE,
                       lambda found: until([e.WhichOneof("change") for e in found]))


def test_the_resolve_clock_pauses_resumes_recomputes_stops_and_restarts_on_reopen(stack, handoffs) -> None:
    # given an acknowledged leg at work
    leg = create(handoffs, unique("billing"))
    acknowledge(handoffs, leg.handoff_id)

    def change(method, request_type, **fields):
        getattr(handoffs, method)(request_type(request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id, **fields),
                                  timeout=10)

    change("UpdateHandoffStatus", api.UpdateHandoffStatusRequest, status=types_pb2.LEG_STATUS_IN_PROGRESS)
    # when it waits on the customer for a while, then work resumes
    change("UpdateHandoffStatus", api.UpdateHandoffStatusRequest, status=types_pb2.LEG_STATUS_WAITING_ON_CUSTOMER)
    time.sleep(1.0)
    change("UpdateHandoffStatus", api.UpdateHandoffStatusRequest, status=types_pb2.LEG_STATUS_IN_PROGRESS)
    # and its priority rises, it is resolved, then reopened
    change("ChangePriority", api.ChangePriorityRequest, priority=types_pb2.PRIORITY_URGENT)
    change("ResolveHandoff", api.ResolveHandoffRequest, resolution="refunded")
    change("ReopenHandoff", api.ReopenHandoffRequest, reason="refund bounced")
    # then the resolve clock records each step, in order
    events = resolve_changes(stack, leg.handoff_id, lambda c: c.count("clock_started") >= 2)
    assert [e.WhichOneof("change") for e in events] == [
        "clock_started", "paused", "resumed", "recomputed", "met", "clock_started",
    ]
    started, _, resumed, recomputed, met, restarted = events
    # the pause moved the deadline by the paused time; urgent (30 s) pulled it in
    assert resumed.resumed.deadline.ToDatetime() > started.clock_started.deadline.ToDatetime()
    assert recomputed.recomputed.deadline.ToDatetime() < recomputed.recomputed.previous_deadline.ToDatetime()
    assert met.met.late is False
    # and the reopened leg runs a second resolve clock
    assert (restarted.clock_sequence, met.clock_sequence) == (2, 1)
