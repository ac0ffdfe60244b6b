"""CommandOwner: the partition owner applies each command once against its stores and answers.

The owner's stores are mappings and its sender a function, so dicts and a list stand in for
the engine's stores and Kafka here; what goes over the wire is read back through the codecs.
"""

from __future__ import annotations

from datetime import timedelta

import grpc
from handoff.v1 import handoff_commands_pb2 as commands_pb2
from handoff.v1 import handoff_events_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2
from handoff.v1 import types_pb2

from common.codec import new_envelope, to_timestamp
from common.topics import HANDOFF_EVENTS
from handoff_svc.adapters.codec import decode_event
from handoff_svc.entrypoints.owner import CommandOwner
from tests.unit.conftest import T0

AT = T0 + timedelta(minutes=1)


class FixedClock:
    def now(self):
        return T0 + timedelta(minutes=2)


class Owner:
    """A CommandOwner over in-memory stores, recording everything it sends."""

    def __init__(self) -> None:
        self.legs: dict[str, bytes] = {}
        self.sent: list[tuple[str, str, bytes]] = []
        self._owner = CommandOwner(self.legs, {}, self._send, FixedClock())
        self._commands = 0

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def command(self, kind: str, request, customer_ref: str, actor: str) -> commands_pb2.CommandReply:
        """Send one command and return the owner's reply."""
        self._commands += 1
        message = commands_pb2.HandoffCommand(
            envelope=new_envelope("handoff", AT, AT, event_id=f"cmd-{self._commands}", request_id=request.request_id),
            reply_to="replica-1", customer_ref=customer_ref, actor=actor, occurred_at=to_timestamp(AT),
            **{kind: request},
        )
        reply = self._owner.on_command(message, 0)
        assert reply.command_id == f"cmd-{self._commands}"
        return commands_pb2.CommandReply.FromString(reply.SerializeToString())

    def events(self) -> list:
        return [decode_event(handoff_events_pb2.HandoffEvent.FromString(v)) for t, _, v in self.sent
                if t == HANDOFF_EVENTS.name]


def create_request(request_id: str, customer_ref: str, department: str = "billing") -> api_pb2.CreateHandoffRequest:
    return api_pb2.CreateHandoffRequest(
        request_id=request_id, case_id="case-1", customer_ref=customer_ref, department=department,
        priority=types_pb2.PRIORITY_HIGH, summary="Refund not received",
    )


def test_a_create_opens_a_leg_and_its_retry_answers_the_same_leg_writing_nothing():
    # given
    owner = Owner()
    first = owner.command("create", create_request("req-1", "cust-1"), "cust-1", "agent-7")

    # when
    retry = owner.command("create", create_request("req-1", "cust-1"), "cust-1", "agent-7")

    # then
    assert first.code == retry.code == 0
    assert list(first.handoffs) == list(retry.handoffs)
    assert first.handoffs[0].status == types_pb2.LEG_STATUS_OPEN
    assert len(owner.events()) == 1
    assert list(owner.legs) == [first.handoffs[0].handoff_id]


def test_a_transfer_answers_the_ended_leg_then_the_opened_one():
    # given
    owner = Owner()
    leg = owner.command("create", create_request("req-1", "cust-1"), "cust-1", "agent-7").handoffs[0]
    owner.command("acknowledge", api_pb2.AcknowledgeHandoffRequest(request_id="req-2", handoff_id=leg.handoff_id),
                  "cust-1", "billing-3")

    # when
    reply = owner.command(
        "transfer",
        api_pb2.TransferHandoffRequest(request_id="req-3", handoff_id=leg.handoff_id, to_department="collections"),
        "cust-1", "billing-3",
    )

    # then
    ended, opened = reply.handoffs
    assert (ended.handoff_id, ended.status, ended.next_handoff_id) == (
        leg.handoff_id, types_pb2.LEG_STATUS_TRANSFERRED, opened.handoff_id)
    assert (opened.status, opened.department, opened.previous_handoff_id) == (
        types_pb2.LEG_STATUS_OPEN, "collections", leg.handoff_id)
    assert set(owner.legs) == {leg.handoff_id, opened.handoff_id}


def test_a_refused_transition_answers_failed_precondition_naming_the_state_and_writes_nothing():
    # given
    owner = Owner()
    leg = owner.command("create", create_request("req-1", "cust-1"), "cust-1", "agent-7").handoffs[0]

    # when
    reply = owner.command("reopen", api_pb2.ReopenHandoffRequest(request_id="req-2", handoff_id=leg.handoff_id),
                          "cust-1", "billing-3")

    # then
    assert reply.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "OPEN" in reply.message
    assert len(owner.events()) == 1


def test_a_command_on_an_unknown_leg_answers_not_found():
    reply = Owner().command("acknowledge", api_pb2.AcknowledgeHandoffRequest(request_id="req-2", handoff_id="h-404"),
                            "cust-1", "billing-3")

    assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "h-404" in reply.message


def test_two_callers_who_pick_the_same_request_id_each_get_their_own_leg():
    # given: agent-7 opens a billing leg for cust-1 with request id "1"
    owner = Owner()
    theirs = owner.command("create", create_request("1", "cust-1"), "cust-1", "agent-7").handoffs[0]

    # when: another caller, for another customer and department, also numbers its first request "1"
    mine = owner.command("create", create_request("1", "cust-2", "support"), "cust-2", "agent-9")

    # then: it gets a new leg for its customer, never the other caller's leg
    assert mine.code == 0
    assert (mine.handoffs[0].customer_ref, mine.handoffs[0].department) == ("cust-2", "support")
    assert mine.handoffs[0].handoff_id != theirs.handoff_id
