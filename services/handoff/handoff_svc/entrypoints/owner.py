"""Applies commands on the replica that owns the customer's partition.

Commands of a partition are applied in order by the stream engine's one member that owns
it, against the `legs` store, so replicas never disagree. Each request id is answered
once: a retry gets the stored reply and writes nothing. Events get ids derived from the
request, so a command applied again (after an aborted batch) writes the same ids.

Both stores forget (README, "Retention"): a stored reply its TTL after it was given, a
closed leg (resolved, transferred, cancelled) the repeat window after it closed. The
instant is in the value's store header, where the engine's timers find it; a reopen
rewrites the leg without one.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

import grpc
from handoff.v1 import handoff_commands_pb2 as commands_pb2

from common.clock import Clock, epoch_us
from common.codec import from_timestamp, new_envelope
from common.ids import derived_event_id, new_event_id
from common.streams.store import forget_due, framed, payload_of
from common.topics import CONTACTS, HANDOFF_EVENTS
from common.validation import InvalidField
from handoff_svc import metrics
from handoff_svc.adapters import codec
from handoff_svc.domain import contacts, legs
from handoff_svc.entrypoints.requests import LEG_COMMANDS, create_command, new_id, record_contact_command
from handoff_svc.settings import Retention

Send = Callable[[str, str, bytes], None]


class LegNotFound(LookupError):
    pass


class OwnedLegs:
    """The `legs` store seen as legs: each value a framed leg that asks to be forgotten
    the repeat window after it closed."""

    def __init__(self, store: MutableMapping[str, bytes], clock: Clock, retention: Retention) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention

    def find(self, handoff_id: str) -> legs.Leg | None:
        value = self._store.get(handoff_id)
        return None if value is None else codec.leg_from_state(payload_of(value))

    def save(self, leg: legs.Leg, partition: int) -> None:
        # Closed: resolved, transferred or cancelled.
        due = 0 if leg.status in legs.UNRESOLVED else forget_due(epoch_us(self._forget_at(leg)))
        self._store[leg.handoff_id] = framed(partition, codec.leg_to_state(leg), due)

    def _forget_at(self, leg: legs.Leg) -> datetime:
        # Counted from when the owner learns of the close at the earliest: an imported leg
        # closed long ago is still found by a change that follows the import.
        closed = leg.updated_at or leg.created_at
        return max(closed, self._clock.now()) + self._retention.repeat_window


class CommandOwner:
    def __init__(self, legs_store: MutableMapping[str, bytes], replies: MutableMapping[str, bytes], send: Send,
                 clock: Clock, retention: Retention = Retention()) -> None:
        self._legs = OwnedLegs(legs_store, clock, retention)
        self._replies = replies
        self._send = send
        self._clock = clock
        self._retention = retention

    def on_command(self, message: commands_pb2.HandoffCommand, partition: int) -> commands_pb2.CommandReply:
        """Apply one command (or replay its stored reply); the reply for the waiting caller."""
        kind = message.WhichOneof("command")
        request = getattr(message, kind)
        # Scoped by caller: a request id is the caller's own idempotency key.
        done_key = f"{kind}:{message.actor}:{request.request_id}"
        stored = self._replies.get(done_key)
        if stored is not None:
            reply = commands_pb2.CommandReply.FromString(payload_of(stored))
        else:
            reply = self._apply(kind, request, message, done_key, partition)
            forget_at = forget_due(epoch_us(self._clock.now() + self._retention.reply_ttl))
            self._replies[done_key] = framed(partition, reply.SerializeToString(), forget_at)
        reply.command_id = message.envelope.event_id
        reply.envelope.CopyFrom(new_envelope("handoff", self._clock.now(), self._clock.now(), event_id=new_event_id()))
        return reply

    def _apply(self, kind: str, request, message, done_key: str, partition: int) -> commands_pb2.CommandReply:
        at = from_timestamp(message.occurred_at)
        try:
            if kind == "record_contact":
                return self._record_contact(request, message, at, done_key)
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
            self._send(HANDOFF_EVENTS.name, message.customer_ref, value)
            leg = legs.apply(changed.get(event.handoff_id) or self._legs.find(event.handoff_id), event)
            changed[event.handoff_id] = leg
            self._legs.save(leg, partition)
            _count(event)
        if not changed:
            # Nothing changed (a create already applied, the same priority): answer with the leg.
            handoff_id = new_id("create", message.actor, request.request_id) if kind == "create" else request.handoff_id
            changed[handoff_id] = self._load(handoff_id)
        return commands_pb2.CommandReply(handoffs=[codec.leg_to_pb(leg) for leg in changed.values()])

    def _decide(self, kind: str, request, message, at) -> list[legs.HandoffEvent]:
        if kind == "create":
            command = create_command(request, message.actor, customer_ref=message.customer_ref)
            existing = self._legs.find(command.handoff_id)
            return [] if existing is not None else [legs.create(command, at)]
        convert, handle = LEG_COMMANDS[kind]
        result = handle(self._load(request.handoff_id), convert(request, message.actor), at)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    def _load(self, handoff_id: str) -> legs.Leg:
        leg = self._legs.find(handoff_id)
        if leg is None:
            raise LegNotFound(f"handoff {handoff_id} not found")
        return leg

    def _record_contact(self, request, message, at, done_key: str) -> commands_pb2.CommandReply:
        command = record_contact_command(request, message.actor, customer_ref=message.customer_ref)
        event = contacts.record(command, at)
        value = codec.encode_contact(event, derived_event_id(done_key, 0), self._clock.now(), request.request_id)
        self._send(CONTACTS.name, command.customer_ref, value)
        metrics.CONTACTS_RECORDED.labels(command.channel.value.lower()).inc()
        return commands_pb2.CommandReply(contact=codec.contact_to_pb(event.contact))


IMPORT_SOURCE = "import"


class ImportedLegs:
    """Folds imported legs (events written straight to handoff.events.v1 by an import,
    source "import") into the owner's store, so later commands on them are applied."""

    def __init__(self, legs_store: MutableMapping[str, bytes], clock: Clock, retention: Retention = Retention()) -> None:
        self._legs = OwnedLegs(legs_store, clock, retention)

    def on_event(self, message, partition: int) -> None:
        if message.envelope.source != IMPORT_SOURCE:
            return  # written by the owner itself, already in the store
        event = codec.decode_event(message)
        if event is None:
            return
        current = self._legs.find(event.handoff_id)
        if isinstance(event, legs.HandoffCreated) and current is not None:
            return  # an import run twice
        self._legs.save(legs.apply(current, event), partition)


def _count(event: legs.HandoffEvent) -> None:
    if isinstance(event, legs.HandoffCreated):
        metrics.LEGS_CREATED.labels(event.leg.department, event.leg.priority.value.lower()).inc()
    else:
        metrics.LEG_CHANGES.labels(event.department, type(event).__name__.removeprefix("Handoff").lower()).inc()
