"""Commands the edge hands to its own engine (the inbox): applied in the engine's next pass,
their replies written to the reply topic in the batch, taken up again after an abort, and
sent on through the command topic when the partition went elsewhere meanwhile."""

from __future__ import annotations

import pytest
from handoff.v1 import handoff_commands_pb2 as commands_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2

from common.codec import new_envelope, to_timestamp
from common.streams.engine import Abort
from common.streams.store import ChangelogStore
from common.topics import HANDOFF_COMMANDS, HANDOFF_EVENTS, HANDOFF_REPLIES
from handoff_svc.entrypoints.app import INBOX_POLL_S, OwnerProcessor
from tests.unit.conftest import T0


class FixedClock:
    def now(self):
        return T0


def create_command(request_id: str, reply_to: str) -> commands_pb2.HandoffCommand:
    """A create of customer cust-1 that replica `reply_to` sends; its id is cmd-<request_id>."""
    request = api_pb2.CreateHandoffRequest(request_id=request_id, case_id="case-1", customer_ref="cust-1",
                                           department="billing")
    return commands_pb2.HandoffCommand(
        envelope=new_envelope("handoff", T0, T0, event_id=f"cmd-{request_id}", request_id=request_id),
        reply_to=reply_to, customer_ref="cust-1", actor="agent-7", occurred_at=to_timestamp(T0), create=request)


class Replica:
    """An owner's processor and its inbox, with the engine's part played by hand."""

    def __init__(self, owned: frozenset[int] = frozenset({0, 1})) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.processor = OwnerProcessor(FixedClock(), lambda topic, key, value: self.sent.append((topic, key, value)))
        self.processor.assigned(owned)

    def hand_over(self, request_id: str, partition: int = 0) -> str:
        """The edge puts a create in the inbox; its command id."""
        command = create_command(request_id, "replica-1")
        self.processor.inbox.put(command, partition)
        return command.envelope.event_id

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.sent]

    def writes(self) -> list[tuple[int, str, bytes | None]]:
        return [write for store in self.processor.stores for write in store.writes()]

    def replies(self) -> list[commands_pb2.CommandReply]:
        return [commands_pb2.CommandReply.FromString(value) for topic, key, value in self.sent
                if (topic, key) == (HANDOFF_REPLIES.name, "replica-1")]


def _commit(stores: tuple[ChangelogStore, ...]) -> None:
    for store in stores:
        store.commit()


def test_a_handed_over_command_is_applied_in_the_next_pass_with_its_reply_in_the_batch():
    replica = Replica()
    # given a command in the inbox: the engine is asked to look at once
    command_id = replica.hand_over("req-1")
    assert replica.processor.wake_s() == 0.0
    # when the engine's pass reaches the end of its batch
    replica.processor.before_commit()
    # then the command's event, its stores and its reply are written in the batch: the caller
    # reads the reply once the transaction's records are readable, as for a command from the topic
    assert replica.topics() == [HANDOFF_EVENTS.name, HANDOFF_REPLIES.name]
    assert {key for _, key, _ in replica.writes()} == {"create:agent-7:req-1", replica_leg(replica)}
    [reply] = replica.replies()
    assert reply.command_id == command_id and reply.handoffs[0].department == "billing"
    # and once committed, an empty inbox lets the engine wait for records again
    _commit(replica.processor.stores)
    replica.processor.committed()
    assert replica.processor.wake_s() == INBOX_POLL_S


def replica_leg(replica: Replica) -> str:
    [key] = [key for key, _ in replica.processor.legs.items()]
    return key


def test_an_aborted_batch_puts_its_commands_back_first_in_line():
    replica = Replica()
    first, second = replica.hand_over("req-1"), replica.hand_over("req-2")
    replica.processor.before_commit()
    # when the batch's transaction is aborted (its records are never readable; the stores roll back)
    for store in replica.processor.stores:
        store.rollback()
    replica.processor.aborted()
    # and a command arrives meanwhile
    third = replica.hand_over("req-3")
    # then the next pass applies the aborted ones again, in their order, before the newcomer
    replica.sent.clear()
    replica.processor.before_commit()
    _commit(replica.processor.stores)
    replica.processor.committed()
    assert [reply.command_id for reply in replica.replies()] == [first, second, third]
    # and each create is written once, by the batch that committed
    assert replica.topics().count(HANDOFF_EVENTS.name) == 3
    assert len(replica.processor.legs) == 3
    # and nothing waits to be applied again
    replica.sent.clear()
    replica.processor.aborted()
    replica.processor.before_commit()
    assert replica.sent == []


def test_a_command_whose_partition_went_elsewhere_is_sent_on_through_the_command_topic():
    replica = Replica(owned=frozenset({0, 1}))
    # given a command handed over while partition 1 was this replica's
    command_id = replica.hand_over("req-1", partition=1)
    # when partition 1 goes to another replica before the engine gets to it
    replica.processor.revoked(frozenset({1}))
    assert not replica.processor.inbox.owns(1)
    replica.processor.before_commit()
    # then the command goes to the command topic as it was (the new owner answers on the reply topic)
    [(topic, key, value)] = replica.sent
    assert (topic, key) == (HANDOFF_COMMANDS.name, "cust-1")
    assert commands_pb2.HandoffCommand.FromString(value).envelope.event_id == command_id
    # and nothing is applied or answered here
    assert replica.writes() == []
    assert replica.replies() == []


def test_a_command_from_the_topic_is_still_answered_on_the_reply_topic():
    replica = Replica()
    replica.processor.process(HANDOFF_COMMANDS, create_command("req-1", "replica-2"), 0)
    topic, key, value = replica.sent[-1]
    assert (topic, key) == (HANDOFF_REPLIES.name, "replica-2")
    assert commands_pb2.CommandReply.FromString(value).command_id == "cmd-req-1"


def test_a_handed_over_command_that_fails_aborts_its_batch_then_goes_to_the_command_topic(monkeypatch):
    # (where the engine tries it a bounded number of times and then dead-letters it)
    replica = Replica()
    command_id = replica.hand_over("req-1")

    def failing(command, partition):
        raise RuntimeError("a stored leg that cannot be read")

    monkeypatch.setattr(replica.processor.owner, "on_command", failing)
    # when applying it raises: the batch is aborted (the engine rolls back and tells the processor)
    with pytest.raises(Abort, match=command_id):
        replica.processor.before_commit()
    replica.processor.aborted()
    # then the next pass sends it on to the command topic instead of applying it again here
    replica.processor.before_commit()
    [(topic, key, value)] = replica.sent
    assert (topic, key) == (HANDOFF_COMMANDS.name, "cust-1")
    assert commands_pb2.HandoffCommand.FromString(value).envelope.event_id == command_id
