"""A poison command (one whose handling raises something no data error explains) never stops
the command owner: its batch is aborted and tried again a bounded number of times, then the
command goes to handoff.commands.v1.dlq with the error, and the commands after it on the
same partition are applied. The aborted attempts leave nothing on the broker."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer
from handoff.v1 import handoff_commands_pb2 as commands_pb2
from handoff.v1 import handoff_service_pb2 as api_pb2

from common.clock import WallClock
from common.codec import new_envelope, to_timestamp
from common.streams.engine import EngineSettings, start_engine
from common.topics import HANDOFF_COMMANDS, HANDOFF_EVENTS, HANDOFF_REPLIES
from handoff_svc.domain import legs
from handoff_svc.entrypoints.app import build
from handoff_svc.entrypoints.requests import new_id
from tests.support import read_events, read_records, wait_for

ATTEMPTS = 3


def command(customer_ref: str, replica: str, request_id: str, summary: str) -> commands_pb2.HandoffCommand:
    at = datetime.now(timezone.utc)
    request = api_pb2.CreateHandoffRequest(request_id=request_id, case_id="case-1", customer_ref=customer_ref,
                                           department="billing", summary=summary)
    return commands_pb2.HandoffCommand(
        envelope=new_envelope("handoff", at, at, event_id=str(uuid.uuid4()), request_id=request_id),
        reply_to=replica, customer_ref=customer_ref, actor="agent-7", occurred_at=to_timestamp(at), create=request,
    )


def test_a_poison_command_is_tried_a_bounded_number_of_times_then_dead_lettered(kafka_bootstrap, monkeypatch):
    # given an owner whose domain fails unexpectedly on one command (a bug, not bad data)
    tried: list[str] = []
    create = legs.create

    def failing_create(command: legs.CreateHandoff, at):
        if command.summary == "poison":
            tried.append(command.handoff_id)
            raise RuntimeError("a bug in the owner")
        return create(command, at)

    monkeypatch.setattr(legs, "create", failing_create)
    name = f"owner-poison-{uuid.uuid4().hex[:8]}"
    engine, _ = build(EngineSettings(bootstrap=kafka_bootstrap, group=name, instance=f"{name}-1",
                                     max_attempts=ATTEMPTS), WallClock())
    thread = start_engine(engine, name)
    try:
        assert engine.ready.wait(60)
        customer, replica = f"c-{uuid.uuid4().hex}", f"replica-{name}"
        poison, healthy = (command(customer, replica, f"req-{n}", summary) for n, summary in
                           ((1, "poison"), (2, "refund not received")))

        # when the poison command and then a healthy one for the same customer arrive
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
        for message in (poison, healthy):
            producer.produce(HANDOFF_COMMANDS.name, message.SerializeToString(), customer.encode())
        assert producer.flush(10) == 0

        # then the poison command is dead-lettered after ATTEMPTS tries, with the error
        dead = read_records(kafka_bootstrap, HANDOFF_COMMANDS.dlq,
                            lambda found: any(r.value == poison.SerializeToString() for r in found), timeout=60)
        [record] = [r for r in dead if r.value == poison.SerializeToString()]
        headers = dict(record.headers)
        assert headers["dlq.error"].startswith(f"failed {ATTEMPTS} times: RuntimeError: a bug in the owner".encode())
        assert headers["dlq.consumer"] == name.encode()
        assert len(tried) == ATTEMPTS
        # and the healthy command behind it is applied and answered, once
        replies = read_records(kafka_bootstrap, HANDOFF_REPLIES.name,
                               lambda found: any(r.key == replica.encode() for r in found), timeout=60)
        answered = [commands_pb2.CommandReply.FromString(r.value) for r in replies if r.key == replica.encode()]
        assert [reply.command_id for reply in answered] == [healthy.envelope.event_id]
        assert answered[0].handoffs[0].summary == "refund not received"
        # and the aborted attempts wrote nothing: the poison command's leg was never created
        healthy_leg = answered[0].handoffs[0].handoff_id
        # (read from the beginning of a topic other tests of the session fill too)
        created = read_events(kafka_bootstrap, HANDOFF_EVENTS, lambda e: e.customer_ref == customer,
                              lambda found: any(e.handoff_id == healthy_leg for e in found), timeout=180)
        assert [e.handoff_id for e in created] == [healthy_leg]
        assert new_id("create", "agent-7", "req-1") != healthy_leg
        assert wait_for(lambda: engine.failure is None and thread.is_alive(), timeout=1)
    finally:
        engine.stop()
        thread.join(60)
    assert engine.failure is None
