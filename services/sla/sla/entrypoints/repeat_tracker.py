"""The repeat tracker: keeps each customer's contacts and legs, and tells repeat contacts.

Leg changes come from handoff.events.v1 (after the clock engine has decided the leg's SLA
events), breaches the timer fired straight from the clock engine, contacts from
contacts.v1; both topics are keyed by customer_ref, so one worker sees all of a customer's
history. A contact waits in the customer's record until time has passed its instant, so it
is examined against every leg change up to and at its instant, however the topics
interleave: on event time until the partition's watermark has passed it, or a heartbeat
says the partition's changes up to it are all in; on wall time until the wall clock has
passed it (at once, for a contact from the past).

A customer is forgotten a repeat window after the last thing that happened to it. On event
time that waits, besides, until the partition's contacts have been read past that instant:
a contact still on its way from before it would otherwise find the customer's legs gone.

A repeat is sent in the same batch as the customer's record that remembers the contact, so
a crash loses neither and repeats neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime, timezone

import orjson

from common.clock import EPOCH, Clock, EventTime, epoch_us
from common.metrics import child
from common.streams.store import forget_due, framed, header_of, payload_of
from sla import metrics
from sla.adapters import codec, repeat_codec
from sla.adapters.customers import NO_FORMS, CustomerRecord, LegForms, decode_customer, encode_customer
from sla.domain import repeats
from sla.domain.clocks import TICK, ClockBreached, ClockEvent
from common.dueindex import DueIndex
from sla.domain.repeats import Contact, LegHistory, RepeatContact, RepeatRules
from sla.entrypoints.engine import Send

# When a leg's clocks had breached by an instant, if they had (the clock engine knows).
BreachedBy = Callable[[str, datetime], datetime | None]
# Handoff changes that end or reopen a leg, as the repeat rules name them.
LEG_CHANGES = {
    "resolved": repeats.RESOLVED,
    "reopened": repeats.REOPENED,
    "transferred": repeats.TRANSFERRED,
    "cancelled": repeats.CANCELLED,
}
UNATTRIBUTED_DEPARTMENT = "none"
_END_OF_TIME = datetime.max.replace(tzinfo=timezone.utc)
# Decoded customer records kept beside the store (bounded: emptied when full).
DECODED_KEPT = 10_000


def _breaches(events: list[ClockEvent]) -> list[datetime]:
    """The breach instants among a leg's decided events (a late stop comes after its breach)."""
    return [e.occurred_at for e in events if isinstance(e, ClockBreached)]


class RepeatTracker:
    """`clock` is wall time (`recorded` unless given); `event_time` replaces it for replay,
    with `contacts_read`, how far each partition's contacts have been read."""

    def __init__(self, customers: MutableMapping[str, bytes], breached_by: BreachedBy,
                 rules: RepeatRules, send: Send, recorded: Clock, event_time: EventTime | None = None,
                 clock: Clock | None = None, contacts_read: EventTime | None = None) -> None:
        self._customers = customers
        self._breached_by = breached_by
        self._rules = rules
        self._send = send
        self._recorded = recorded
        self._event_time = event_time
        self._clock = clock or recorded
        self._waiting: dict[int, DueIndex] = {}
        # customer_ref -> (store value, its record, the encoded forms of the record's legs).
        self._decoded: dict[str, tuple[bytes, CustomerRecord, LegForms]] = {}
        # Per partition, the instant of its latest heartbeat: its leg changes up to then are all in.
        self._sealed: dict[int, datetime] = {}
        self._contacts_read = contacts_read
        # Per partition, the customers whose time to be forgotten has come on the leg changes
        # but not yet on the contacts read (event time), by that time; and the same, as a set.
        self._held: dict[int, DueIndex] = {}
        self._held_refs: set[str] = set()

    def _load(self, customer_ref: str, partition: int) -> CustomerRecord:
        raw = self._customers.get(customer_ref)
        if raw is None:
            return CustomerRecord(partition)
        known = self._decoded.get(customer_ref)
        if known is not None and known[0] is raw:
            return known[1]
        record = decode_customer(customer_ref, orjson.loads(payload_of(raw)))
        self._remember(customer_ref, raw, record)
        return record

    def _remember(self, customer_ref: str, raw: bytes, record: CustomerRecord, forms: LegForms = NO_FORMS) -> None:
        """Keep the decoded record of recently used customers (valid while the store holds that
        very value) and the forms of its legs, which the customer's next write reuses."""
        if len(self._decoded) >= DECODED_KEPT:
            self._decoded.clear()
        self._decoded[customer_ref] = (raw, record, forms)

    def _save(self, customer_ref: str, record: CustomerRecord) -> None:
        # The tag says whether contacts wait, so a rebuild decodes only those; the due instant
        # brings the timer back once time has passed the earliest (on a quiet partition too),
        # or, with nothing waiting and no leg open, when the customer is to be forgotten.
        known = self._decoded.get(customer_ref)
        payload, forms = encode_customer(record, known[2] if known is not None else NO_FORMS)
        if record.pending:
            due = epoch_us(min(c.contacted_at for c in record.pending) + TICK)
        else:
            forget_at = self._forget_at(record)
            due = forget_due(epoch_us(forget_at)) if forget_at is not None else 0
        raw = self._customers[customer_ref] = framed(record.partition, payload, due, tag=1 if record.pending else 0)
        self._remember(customer_ref, raw, record, forms)

    def _forget_at(self, record: CustomerRecord) -> datetime | None:
        """When a customer is forgotten: the repeat window after the last thing that happened
        (a contact, a leg created or changed), once no contact waits and no leg is open; None
        while one is. A contact after that starts a record afresh: nothing it could repeat is left."""
        if record.pending or any(leg.ended_at(_END_OF_TIME) is None for leg in record.legs):
            return None
        instants = [c.contacted_at for c in record.contacts]
        for leg in record.legs:
            instants += [leg.created_at, *(at for at, _ in leg.changes)]
        if not instants:
            return None
        return max(instants) + self._rules.window + TICK

    def forget_if_due(self, customer_ref: str, partition: int) -> None:
        """The timer came for a customer with nothing waiting: forget it if its time has come."""
        raw = self._customers.get(customer_ref)
        if raw is None or header_of(raw).tag:
            return
        forget_at = self._forget_at(self._load(customer_ref, partition))
        if forget_at is None or self._now(partition) < forget_at:
            return
        if self._contacts_read is not None and self._contacts_read.mark(partition) < forget_at:
            if customer_ref not in self._held_refs:
                self._held_refs.add(customer_ref)
                self._held.setdefault(partition, DueIndex()).add(forget_at, customer_ref)
            return
        del self._customers[customer_ref]
        self._decoded.pop(customer_ref, None)

    def forget_held(self, partition: int) -> None:
        """`partition`'s contacts have been read further: forget the customers held for that."""
        held = self._held.get(partition)
        if not held or self._contacts_read is None:
            return
        for customer_ref in dict.fromkeys(held.pop_due(self._contacts_read.mark(partition))):
            self._held_refs.discard(customer_ref)
            self.forget_if_due(customer_ref, partition)

    def _now(self, partition: int) -> datetime:
        return self._event_time.mark(partition) if self._event_time is not None else self._clock.now()

    def on_leg_change(self, message, events: list[ClockEvent], partition: int, at: datetime | None = None) -> None:
        """Fold one HandoffEvent (and the breaches it caused) into the customer's legs; `at` is
        its occurred_at when the caller has read it already."""
        self._fold_leg_change(message, events, partition, at or codec.occurred_at(message))

    def _fold_leg_change(self, message, events: list[ClockEvent], partition: int, at: datetime) -> None:
        change = message.WhichOneof("change")
        breaches = _breaches(events)
        if change != "created" and change not in LEG_CHANGES and not breaches:
            return  # an acknowledgement, a pause...: nothing the customer's legs keep
        record = self._load(message.customer_ref, partition)
        legs = {leg.handoff_id: leg for leg in record.legs}
        leg = legs.get(message.handoff_id)
        if change == "created" and leg is None:
            leg = LegHistory(message.handoff_id, message.case_id, message.department, at)
        elif leg is not None and change in LEG_CHANGES:
            leg = leg.with_change(at, LEG_CHANGES[change])
        if leg is None:
            return
        for breached_at in breaches:
            leg = leg.with_breach(breached_at)
        if legs.get(leg.handoff_id) == leg:
            return
        legs[leg.handoff_id] = leg
        horizon = self._prune_horizon(record, at)
        kept = legs.values() if horizon is None else repeats.prune_legs(legs.values(), horizon, self._rules)
        self._save(message.customer_ref, record._replace(legs=tuple(kept)))

    def _prune_horizon(self, record: CustomerRecord, at: datetime) -> datetime | None:
        """The instant legs no longer live may be pruned at (None: keep every leg for now).

        A contact earlier than `at` may still wait. On wall time no other one is earlier than
        `at`. On event time one may still be on its way (contacts.v1 is read apart from
        handoff.events.v1); it is no earlier than the customer's latest contact, and a
        customer without one may yet have any.
        """
        if record.pending:
            return min(at, *(c.contacted_at for c in record.pending))
        if self._event_time is None:
            return at
        if record.contacts:
            return min(at, max(c.contacted_at for c in record.contacts))
        return None

    def on_breaches(self, events: Iterable[ClockEvent], partition: int) -> None:
        """Remember the breaches the timer fired."""
        for event in events:
            if isinstance(event, ClockBreached):
                self._fold_breach(event, partition)

    def _fold_breach(self, event: ClockBreached, partition: int) -> None:
        leg_info = event.leg
        record = self._load(leg_info.customer_ref, partition)
        at = event.occurred_at
        legs = [leg.with_breach(at) if leg.handoff_id == leg_info.handoff_id else leg for leg in record.legs]
        if tuple(legs) != record.legs:
            self._save(leg_info.customer_ref, record._replace(legs=tuple(legs)))

    def on_contact(self, message, partition: int) -> datetime:
        """Examine a contact once time has passed it (at once when it already has); returns its instant."""
        contact = repeat_codec.decode_contact(message)
        self._take_contact(contact, partition)
        self.settle(partition)
        return contact.contacted_at

    def _take_contact(self, contact: Contact, partition: int) -> None:
        record = self._load(contact.customer_ref, partition)
        if record.knows_contact(contact.contact_id):
            return
        child(metrics.CONTACTS_SEEN, contact.channel).inc()
        self._save(contact.customer_ref, record._replace(pending=(*record.pending, contact)))
        self._waiting.setdefault(partition, DueIndex()).add(contact.contacted_at, contact.customer_ref)

    def seal(self, partition: int, at: datetime) -> None:
        """A heartbeat: `partition`'s leg changes up to `at` are all in."""
        self._sealed[partition] = max(at, self._sealed.get(partition, EPOCH))

    def _settled_until(self, partition: int) -> datetime:
        """The latest instant whose contacts may be examined: before now, or up to a heartbeat."""
        return max(self._now(partition) - TICK, self._sealed.get(partition, EPOCH))

    def settle(self, partition: int) -> None:
        """Examine the waiting contacts of `partition` that time has passed."""
        waiting = self._waiting.get(partition)
        if not waiting:  # the common case: runs after every record
            return
        until = self._settled_until(partition)
        for customer_ref in dict.fromkeys(waiting.pop_due(until)):
            record = self._load(customer_ref, partition)
            due = sorted((c for c in record.pending if c.contacted_at <= until),
                         key=lambda c: (c.contacted_at, c.contact_id))
            if due:
                rest = tuple(c for c in record.pending if c.contacted_at > until)
                self._examine(record._replace(pending=rest), due)

    def settle_all(self) -> None:
        """Examine the waiting contacts of every partition that time has passed, and forget the
        customers whose time has come (in-memory runs and tests: a scan)."""
        for partition in list(self._waiting):
            self.settle(partition)
        for customer_ref, raw in list(self._customers.items()):
            header = header_of(raw)
            if header.due_us and not header.tag:
                self.forget_if_due(customer_ref, header.partition)

    def _examine(self, record: CustomerRecord, contacts: list[Contact]) -> None:
        for contact in contacts:
            legs = [self._with_clock_breach(leg, contact.contacted_at) for leg in record.legs]
            repeat = repeats.detect(contact, record.contacts, legs, self._rules)
            if repeat is not None:
                self._emit(repeat)
            kept = repeats.prune_contacts((*record.contacts, contact), contact.contacted_at, self._rules)
            record = record._replace(contacts=tuple(kept))
        self._save(contacts[0].customer_ref, record)

    def _with_clock_breach(self, leg: LegHistory, at: datetime) -> LegHistory:
        """`leg` with a breach its clocks show by `at` that has not come back through Kafka yet."""
        breached_at = self._breached_by(leg.handoff_id, at)
        return leg if breached_at is None else leg.with_breach(breached_at)

    def _emit(self, repeat: RepeatContact) -> None:
        self._send(repeat.contact.customer_ref, repeat_codec.encode_repeat(repeat, self._recorded.now()))
        department = repeat.leg.department if repeat.leg else UNATTRIBUTED_DEPARTMENT
        child(metrics.REPEAT_CONTACTS, department, repeat.cause, repeat.contact.channel).inc()
        if repeat.avoidable:
            metrics.FAILURE_DEMAND_COST.labels(department, repeat.contact.channel, repeat.currency).inc(
                repeat.cost_minor / 100
            )

    def rebuild(self, partitions: frozenset[int]) -> None:
        """Re-index the waiting contacts of the partitions this worker now owns."""
        self._waiting.clear()
        # Held customers of partitions kept stay held (their timers have fired); others go.
        for partition in set(self._held) - partitions:
            self._held_refs.difference_update(self._held.pop(partition).pop_due(_END_OF_TIME))
        self.reindex(customer_ref for customer_ref, raw in self._customers.items()
                     if header_of(raw).partition in partitions and header_of(raw).tag)

    def reindex(self, customer_refs: Iterable[str]) -> None:
        """Index the waiting contacts of these customers again (after a rebuild or a rollback)."""
        for customer_ref in customer_refs:
            raw = self._customers.get(customer_ref)
            if raw is None or not header_of(raw).tag:
                continue
            record = self._load(customer_ref, header_of(raw).partition)
            for contact in record.pending:
                self._waiting.setdefault(record.partition, DueIndex()).add(contact.contacted_at, customer_ref)
