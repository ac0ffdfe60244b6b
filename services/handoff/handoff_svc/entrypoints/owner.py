"""Applies commands on the replica that owns the customer's partition.

One command at a time per partition (agent concurrency 1), against the `legs` table, so
replicas never disagree. Each request id is answered once: a retry gets the stored reply
and writes nothing. Events get ids derived from the request, so a reprocessed command
(at-least-once) writes ids that consumers have already seen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

import grpc
from handoff.v1 import handoff_commands_pb2 as commands_pb2

from common.clock import Clock
from common.codec import from_timestamp, new_envelope
from common.ids import derived_event_id, new_event_id
from common.topics import CONTACTS, HANDOFF_EVENTS, HANDOFF_REPLIES
from common.validation import InvalidField
from handoff_svc import metrics
from handoff_svc.adapters import codec
from handoff_svc.domain import contacts, legs
from handoff_svc.entrypoints.requests import LEG_COMMANDS, create_command, new_id, record_contact_command

Send = Callable[[str, str, bytes], Awaitable[None]]


class LegNotFound(LookupError):
    pass


class CommandOwner:
    def __init__(
        self, legs_table: MutableMapping[str, dict], done: MutableMapping[str, str], send: Send, clock: Clock
    ) -> None:
        self._legs = legs_table
        self._done = done
        self._send = send
        self._clock = clock

    async def on_command(self, message: commands_pb2.HandoffCommand, partition: int) -> None:
        """Apply one command (or replay its stored reply) and answer the waiting replica."""
        kind = message.WhichOneof("command")
        request = getattr(message, kind)
        # Scoped by caller: a request id is the caller's own idempotency key.
        done_key = f"{kind}:{message.actor}:{request.request_id}"
        stored = self._done.get(done_key)
        if stored is not None:
            reply = commands_pb2.CommandReply.FromString(bytes.fromhex(stored))
        else:
            reply = await self._apply(kind, request, message, done_key)
            self._done[done_key] = reply.SerializeToString().hex()
        reply.command_id = message.envelope.event_id
        reply.envelope.CopyFrom(new_envelope("handoff", self._clock.now(), self._clock.now(), event_id=new_event_id()))
        await self._send(HANDOFF_REPLIES.name, message.reply_to, reply.SerializeToString())

    async def _apply(self, kind: str, request, message, done_key: str) -> commands_pb2.CommandReply:
        at = from_timestamp(message.occurred_at)
        try:
            if kind == "record_contact":
                return await self._record_contact(request, message, at, done_key)
            events = self._decide(kind, request, message, at)
        except (InvalidField, legs.InvalidCommand) as error:
            return commands_pb2.CommandReply(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=str(error))
        except legs.InvalidTransition as error:
            return commands_pb2.CommandReply(code=grpc.StatusCode.FAILED_PRECONDITION.value[0], message=str(error))
        except LegNotFound as error:
            return commands_pb2.CommandReply(code=grpc.StatusCode.NOT_FOUND.value[0], message=str(error))
        changed: dict[str, legs.Leg] = {}
        for index, event in enumerate(events):
            value = codec.encode_event(event, derived_event_id(done_key, index), self._clock.now(), request.request_id)
            await self._send(HANDOFF_EVENTS.name, message.customer_ref, value)
            leg = legs.apply(changed.get(event.handoff_id) or self._find(event.handoff_id), event)
            changed[event.handoff_id] = leg
            self._legs[event.handoff_id] = codec.leg_to_record(leg)
            _count(event)
        if not changed:
            # Nothing changed (a create already applied, the same priority): answer with the leg.
            handoff_id = new_id("create", message.actor, request.request_id) if kind == "create" else request.handoff_id
            changed[handoff_id] = self._load(handoff_id)
        return commands_pb2.CommandReply(handoffs=[codec.leg_to_pb(leg) for leg in changed.values()])

    def _decide(self, kind: str, request, message, at) -> list[legs.HandoffEvent]:
        if kind == "create":
            command = create_command(request, message.actor, customer_ref=message.customer_ref)
            existing = self._legs.get(command.handoff_id)
            return [] if existing is not None else [legs.create(command, at)]
        convert, handle = LEG_COMMANDS[kind]
        result = handle(self._load(request.handoff_id), convert(request, message.actor), at)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    def _find(self, handoff_id: str) -> legs.Leg | None:
        record = self._legs.get(handoff_id)
        return None if record is None else codec.leg_from_record(record)

    def _load(self, handoff_id: str) -> legs.Leg:
        leg = self._find(handoff_id)
        if leg is None:
            raise LegNotFound(f"handoff {handoff_id} not found")
        return leg

    async def _record_contact(self, request, message, at, done_key: str) -> commands_pb2.CommandReply:
        command = record_contact_command(request, message.actor, customer_ref=message.customer_ref)
        event = contacts.record(command, at)
        value = codec.encode_contact(event, derived_event_id(done_key, 0), self._clock.now(), request.request_id)
        await self._send(CONTACTS.name, command.customer_ref, value)
        metrics.CONTACTS_RECORDED.labels(command.channel.value.lower()).inc()
        return commands_pb2.CommandReply(contact=codec.contact_to_pb(event.contact))


IMPORT_SOURCE = "import"


class ImportedLegs:
    """Folds imported legs (events written straight to handoff.events.v1 by an import,
    source "import") into the owner's table, so later commands on them are applied."""

    def __init__(self, legs_table: MutableMapping[str, dict]) -> None:
        self._legs = legs_table

    async def on_event(self, message, partition: int) -> None:
        if message.envelope.source != IMPORT_SOURCE:
            return  # written by the owner itself, already in the table
        event = codec.decode_event(message)
        if event is None:
            return
        record = self._legs.get(event.handoff_id)
        current = None if record is None else codec.leg_from_record(record)
        if isinstance(event, legs.HandoffCreated) and current is not None:
            return  # an import run twice
        self._legs[event.handoff_id] = codec.leg_to_record(legs.apply(current, event))


def _count(event: legs.HandoffEvent) -> None:
    if isinstance(event, legs.HandoffCreated):
        metrics.LEGS_CREATED.labels(event.leg.department, event.leg.priority.value.lower()).inc()
    else:
        metrics.LEG_CHANGES.labels(event.department, type(event).__name__.removeprefix("Handoff").lower()).inc()
