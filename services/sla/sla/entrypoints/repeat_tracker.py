"""The repeat tracker: keeps each customer's contacts and legs, and tells repeat contacts.

Leg changes come from handoff.events.v1 (after the clock engine has decided the leg's SLA
events), breaches the timer fired straight from the clock engine, contacts from
contacts.v1; both topics are keyed by customer_ref, so one worker sees all of a customer's
history. On wall time a contact is examined when it arrives. On event time it waits in the
customer's record until the partition's watermark has passed it, so it is examined against
every leg change that happened before it, however the topics interleave.

A repeat is sent in the same batch as the customer's record that remembers the contact, so
a crash loses neither and repeats neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import replace
from datetime import datetime

from common.clock import Clock, EventTime
from common.streams.store import framed, header_of, payload_of
from sla import metrics
from sla.adapters import codec, repeat_codec
from sla.adapters.customers import CustomerRecord, decode_customer, encode_customer
from sla.domain import repeats
from sla.domain.clocks import ClockBreached, ClockEvent, ClockMet
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


def _breaches(events: list[ClockEvent]) -> list[datetime]:
    """The breach instants among a leg's decided events (a late stop implies one)."""
    return [e.clock.deadline for e in events if isinstance(e, ClockBreached) or (isinstance(e, ClockMet) and e.late)]


class RepeatTracker:
    def __init__(self, customers: MutableMapping[str, bytes], breached_by: BreachedBy,
                 rules: RepeatRules, send: Send, recorded: Clock, event_time: EventTime | None = None) -> None:
        self._customers = customers
        self._breached_by = breached_by
        self._rules = rules
        self._send = send
        self._recorded = recorded
        self._event_time = event_time
        self._waiting: dict[int, DueIndex] = {}

    def _load(self, customer_ref: str, partition: int) -> CustomerRecord:
        raw = self._customers.get(customer_ref)
        return decode_customer(customer_ref, json.loads(payload_of(raw))) if raw else CustomerRecord(partition)

    def _save(self, customer_ref: str, record: CustomerRecord) -> None:
        # The tag says whether contacts wait for event time, so a rebuild decodes only those.
        payload = json.dumps(encode_customer(record), separators=(",", ":")).encode()
        self._customers[customer_ref] = framed(record.partition, payload, tag=1 if record.pending else 0)

    def on_leg_change(self, message, events: list[ClockEvent], partition: int) -> None:
        """Fold one HandoffEvent (and the breaches it caused) into the customer's legs."""
        self._fold_leg_change(message, events, partition)

    def _fold_leg_change(self, message, events: list[ClockEvent], partition: int) -> None:
        change, at = message.WhichOneof("change"), codec.occurred_at(message)
        record = self._load(message.customer_ref, partition)
        legs = {leg.handoff_id: leg for leg in record.legs}
        leg = legs.get(message.handoff_id)
        if change == "created" and leg is None:
            leg = LegHistory(message.handoff_id, message.case_id, message.department, at)
        elif leg is not None and change in LEG_CHANGES:
            leg = leg.with_change(at, LEG_CHANGES[change])
        if leg is None:
            return
        for breached_at in _breaches(events):
            leg = leg.with_breach(breached_at)
        if legs.get(leg.handoff_id) == leg:
            return
        legs[leg.handoff_id] = leg
        horizon = self._prune_horizon(record, at)
        kept = legs.values() if horizon is None else repeats.prune_legs(legs.values(), horizon, self._rules)
        self._save(message.customer_ref, replace(record, legs=tuple(kept)))

    def _prune_horizon(self, record: CustomerRecord, at: datetime) -> datetime | None:
        """The instant legs no longer live may be pruned at (None: keep every leg for now).

        On wall time a contact is examined when it arrives, so `at`. On event time a contact
        earlier than `at` may still wait, or still be on its way (contacts.v1 is read apart
        from handoff.events.v1); one on its way is no earlier than the customer's latest
        contact, and a customer without one may yet have any.
        """
        if self._event_time is None:
            return at
        if record.pending:
            return min(at, *(c.contacted_at for c in record.pending))
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
        deadline = event.clock.deadline
        legs = [leg.with_breach(deadline) if leg.handoff_id == leg_info.handoff_id else leg for leg in record.legs]
        if tuple(legs) != record.legs:
            self._save(leg_info.customer_ref, replace(record, legs=tuple(legs)))

    def on_contact(self, message, partition: int) -> None:
        """Examine a contact now (wall time) or once event time has passed it."""
        contact = repeat_codec.decode_contact(message)
        self._take_contact(contact, partition)
        if self._event_time is not None:
            self.settle(partition)

    def _take_contact(self, contact: Contact, partition: int) -> None:
        record = self._load(contact.customer_ref, partition)
        if record.knows_contact(contact.contact_id):
            return
        metrics.CONTACTS_SEEN.labels(contact.channel).inc()
        if self._event_time is None:
            self._examine(record, [contact])
            return
        self._save(contact.customer_ref, replace(record, pending=(*record.pending, contact)))
        self._waiting.setdefault(partition, DueIndex()).add(contact.contacted_at, contact.customer_ref)

    def settle(self, partition: int) -> None:
        """Examine the waiting contacts of `partition` that its watermark has passed (event time)."""
        mark = self._event_time.mark(partition)
        for customer_ref in dict.fromkeys(self._waiting.get(partition, DueIndex()).pop_due(mark)):
            record = self._load(customer_ref, partition)
            due = sorted((c for c in record.pending if c.contacted_at <= mark),
                         key=lambda c: (c.contacted_at, c.contact_id))
            if due:
                rest = tuple(c for c in record.pending if c.contacted_at > mark)
                self._examine(replace(record, pending=rest), due)

    def _examine(self, record: CustomerRecord, contacts: list[Contact]) -> None:
        for contact in contacts:
            legs = [self._with_clock_breach(leg, contact.contacted_at) for leg in record.legs]
            repeat = repeats.detect(contact, record.contacts, legs, self._rules)
            if repeat is not None:
                self._emit(repeat)
            kept = repeats.prune_contacts((*record.contacts, contact), contact.contacted_at, self._rules)
            record = replace(record, contacts=tuple(kept))
        self._save(contacts[0].customer_ref, record)

    def _with_clock_breach(self, leg: LegHistory, at: datetime) -> LegHistory:
        """`leg` with a breach its clocks show by `at` that has not come back through Kafka yet."""
        breached_at = self._breached_by(leg.handoff_id, at)
        return leg if breached_at is None else leg.with_breach(breached_at)

    def _emit(self, repeat: RepeatContact) -> None:
        self._send(repeat.contact.customer_ref, repeat_codec.encode_repeat(repeat, self._recorded.now()))
        department = repeat.leg.department if repeat.leg else UNATTRIBUTED_DEPARTMENT
        metrics.REPEAT_CONTACTS.labels(department, repeat.cause, repeat.contact.channel).inc()
        if repeat.avoidable:
            metrics.FAILURE_DEMAND_COST.labels(department, repeat.contact.channel, repeat.currency).inc(
                repeat.cost_minor / 100
            )

    def rebuild(self, partitions: frozenset[int]) -> None:
        """Re-index the waiting contacts of the partitions this worker now owns (event time)."""
        self._waiting.clear()
        if self._event_time is None:
            return
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
