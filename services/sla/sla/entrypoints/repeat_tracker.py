"""The repeat tracker: keeps each customer's contacts and legs, and tells repeat contacts.

Leg changes come from the handoff agent (after the clock engine has decided the leg's SLA
events), breaches the timer emitted come back through sla.events.v1, contacts from
contacts.v1; all three topics are keyed by customer_ref, so one worker sees all of a
customer's history. On wall time a contact is examined when it arrives. On event time it
waits in the customer's record until the partition's watermark has passed it, so it is
examined against every leg change that happened before it, however the topics interleave.

Three agents update a customer's record; examining a contact awaits the send of its repeat
between reading and writing the record (sending first is what makes a crash repeat, not
lose, the event), so one lock keeps each read-modify-write whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from dataclasses import replace
from datetime import datetime

from common.clock import Clock, EventTime
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
    def __init__(self, customers: MutableMapping[str, dict], breached_by: BreachedBy,
                 rules: RepeatRules, send: Send, recorded: Clock, event_time: EventTime | None = None) -> None:
        self._customers = customers
        self._breached_by = breached_by
        self._rules = rules
        self._send = send
        self._recorded = recorded
        self._event_time = event_time
        self._waiting: dict[int, DueIndex] = {}
        self._lock = asyncio.Lock()

    def _load(self, customer_ref: str, partition: int) -> CustomerRecord:
        raw = self._customers.get(customer_ref)
        return decode_customer(customer_ref, raw) if raw else CustomerRecord(partition)

    def _save(self, customer_ref: str, record: CustomerRecord) -> None:
        self._customers[customer_ref] = encode_customer(record)

    async def on_leg_change(self, message, events: list[ClockEvent], partition: int) -> None:
        """Fold one HandoffEvent (and the breaches it caused) into the customer's legs."""
        async with self._lock:
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

    async def on_breach(self, message, partition: int) -> None:
        """Remember a breach the timer emitted (read back from sla.events.v1)."""
        async with self._lock:
            self._fold_breach(message, partition)

    def _fold_breach(self, message, partition: int) -> None:
        record = self._load(message.customer_ref, partition)
        deadline = codec.breach_deadline(message)
        legs = [leg.with_breach(deadline) if leg.handoff_id == message.handoff_id else leg for leg in record.legs]
        if tuple(legs) != record.legs:
            self._save(message.customer_ref, replace(record, legs=tuple(legs)))

    async def on_contact(self, message, partition: int) -> None:
        """Examine a contact now (wall time) or once event time has passed it."""
        contact = repeat_codec.decode_contact(message)
        async with self._lock:
            await self._take_contact(contact, partition)
        if self._event_time is not None:
            await self.settle(partition)

    async def _take_contact(self, contact: Contact, partition: int) -> None:
        record = self._load(contact.customer_ref, partition)
        if record.knows_contact(contact.contact_id):
            return
        metrics.CONTACTS_SEEN.labels(contact.channel).inc()
        if self._event_time is None:
            await self._examine(record, [contact])
            return
        self._save(contact.customer_ref, replace(record, pending=(*record.pending, contact)))
        self._waiting.setdefault(partition, DueIndex()).add(contact.contacted_at, contact.customer_ref)

    async def settle(self, partition: int) -> None:
        """Examine the waiting contacts of `partition` that its watermark has passed (event time)."""
        mark = self._event_time.mark(partition)
        async with self._lock:
            for customer_ref in dict.fromkeys(self._waiting.get(partition, DueIndex()).pop_due(mark)):
                record = self._load(customer_ref, partition)
                due = sorted((c for c in record.pending if c.contacted_at <= mark),
                             key=lambda c: (c.contacted_at, c.contact_id))
                if due:
                    rest = tuple(c for c in record.pending if c.contacted_at > mark)
                    await self._examine(replace(record, pending=rest), due)

    async def _examine(self, record: CustomerRecord, contacts: list[Contact]) -> None:
        for contact in contacts:
            legs = [self._with_clock_breach(leg, contact.contacted_at) for leg in record.legs]
            repeat = repeats.detect(contact, record.contacts, legs, self._rules)
            if repeat is not None:
                await self._emit(repeat)
            kept = repeats.prune_contacts((*record.contacts, contact), contact.contacted_at, self._rules)
            record = replace(record, contacts=tuple(kept))
        self._save(contacts[0].customer_ref, record)

    def _with_clock_breach(self, leg: LegHistory, at: datetime) -> LegHistory:
        """`leg` with a breach its clocks show by `at` that has not come back through Kafka yet."""
        breached_at = self._breached_by(leg.handoff_id, at)
        return leg if breached_at is None else leg.with_breach(breached_at)

    async def _emit(self, repeat: RepeatContact) -> None:
        await self._send(repeat.contact.customer_ref, repeat_codec.encode_repeat(repeat, self._recorded.now()))
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
        for customer_ref, raw in self._customers.items():
            if raw["p"] in partitions:
                for contact in decode_customer(customer_ref, raw).pending:
                    self._waiting.setdefault(raw["p"], DueIndex()).add(contact.contacted_at, customer_ref)
