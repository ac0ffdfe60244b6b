"""Every replica's read model: all legs, their breaches and all contacts, kept current by
tailing handoff.events.v1, sla.events.v1 and contacts.v1 from the beginning.

Every replica reads every partition, so any replica answers reads. `caught_up()` waits
until the model holds everything written before the call, which makes a read after a
write (on any replica) see that write.

What it keeps (README, "Retention"): a closed leg (with its breach mark and the ids of its
events) and a contact until `history` (READ_MODEL_HISTORY) before the newest instant read;
an open leg for as long as it is open. Counted on the events' instants, not on wall time, so
a replica rebuilt from the topics holds what a running one holds.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from common.codec import from_timestamp
from common.expiries import Expiries
from common.feed import TopicFeed
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.settings import READ_MODEL_HISTORY
from common.topics import CONTACTS, HANDOFF_EVENTS, SLA_EVENTS, TopicSpec
from handoff_svc.adapters.codec import decode_contact, decode_event
from handoff_svc.domain.contacts import Contact
from handoff_svc.domain.legs import UNRESOLVED, HandoffEvent, Leg, apply

FEEDS: tuple[TopicSpec, ...] = (HANDOFF_EVENTS, SLA_EVENTS, CONTACTS)


class LegStore:
    """Legs by id, breaches by leg, contacts by customer; each event applied once."""

    def __init__(self, history: timedelta = READ_MODEL_HISTORY) -> None:
        self._history = history
        self._legs: dict[str, Leg] = {}
        self._applied: set[str] = set()
        self._event_ids: dict[str, list[str]] = defaultdict(list)
        self._breached: set[str] = set()
        self._legs_by_customer: dict[str, list[str]] = defaultdict(list)
        self._contacts: dict[str, dict[str, Contact]] = defaultdict(dict)
        # ("leg", handoff id), ("breach", handoff id), ("contact", customer, contact id).
        self._expiries = Expiries()
        self._newest: datetime | None = None

    def get(self, handoff_id: str) -> Leg | None:
        return self._legs.get(handoff_id)

    def is_breached(self, handoff_id: str) -> bool:
        return handoff_id in self._breached

    def legs(self) -> list[Leg]:
        return list(self._legs.values())

    def customer_legs(self, customer_ref: str) -> list[Leg]:
        return [self._legs[h] for h in self._legs_by_customer.get(customer_ref, ())]

    def customer_contacts(self, customer_ref: str) -> list[Contact]:
        return list(self._contacts.get(customer_ref, {}).values())

    def was_applied(self, event_id: str) -> bool:
        return event_id in self._applied

    def __len__(self) -> int:
        return len(self._legs)

    def sizes(self) -> dict[str, int]:
        """How many entries each structure holds (what retention bounds)."""
        return {"legs": len(self._legs), "applied": len(self._applied), "event_ids": len(self._event_ids),
                "breached": len(self._breached), "customers": len(self._legs_by_customer),
                "contacts": sum(len(c) for c in self._contacts.values()), "expiries": len(self._expiries)}

    def apply(self, event_id: str, event: HandoffEvent) -> Leg | None:
        """Apply `event` unless already applied; returns the leg after it."""
        if event_id in self._applied:
            return self._legs.get(event.handoff_id)
        known = event.handoff_id in self._legs
        leg = apply(self._legs.get(event.handoff_id), event)
        self._applied.add(event_id)
        self._event_ids[leg.handoff_id].append(event_id)
        self._legs[event.handoff_id] = leg
        if not known:
            self._legs_by_customer[leg.customer_ref].append(leg.handoff_id)
        # A closed leg goes `history` after it closed; an open (or reopened) one is kept.
        closed = None if leg.status in UNRESOLVED else _closed_at(leg) + self._history
        self._expiries.expire(("leg", leg.handoff_id), closed)
        self._read(event.at)
        return leg

    def record_breach(self, handoff_id: str, at: datetime) -> None:
        self._breached.add(handoff_id)
        # A breach read before its leg (the topics are read independently), or of a leg
        # already forgotten, goes when its instant leaves the history and no leg holds it.
        self._expiries.expire(("breach", handoff_id), at + self._history)
        self._read(at)

    def record_contact(self, contact: Contact) -> None:
        self._contacts[contact.customer_ref][contact.contact_id] = contact
        self._expiries.expire(("contact", contact.customer_ref, contact.contact_id), contact.contacted_at + self._history)
        self._read(contact.contacted_at)

    def _read(self, at: datetime) -> None:
        """`at` was read: forget what its history no longer covers."""
        if self._newest is None or at > self._newest:
            self._newest = at
        for key in self._expiries.due(self._newest):
            if key[0] == "leg":
                self._forget_leg(key[1])
            elif key[0] == "breach":
                if key[1] not in self._legs:
                    self._breached.discard(key[1])
            else:
                self._forget_contact(key[1], key[2])

    def _forget_leg(self, handoff_id: str) -> None:
        leg = self._legs.pop(handoff_id)
        self._applied.difference_update(self._event_ids.pop(handoff_id, ()))
        self._breached.discard(handoff_id)
        ids = self._legs_by_customer[leg.customer_ref]
        ids.remove(handoff_id)
        if not ids:
            del self._legs_by_customer[leg.customer_ref]

    def _forget_contact(self, customer_ref: str, contact_id: str) -> None:
        contacts = self._contacts[customer_ref]
        del contacts[contact_id]
        if not contacts:
            del self._contacts[customer_ref]


def _closed_at(leg: Leg) -> datetime:
    return leg.updated_at or leg.created_at


class LegFeed(TopicFeed):
    """Tails the feed topics from the beginning into a LegStore."""

    def __init__(self, bootstrap: str, store: LegStore, security: KafkaSecurity = PLAINTEXT) -> None:
        super().__init__(bootstrap, FEEDS, self._apply_message, name="leg-feed", security=security)
        self._store = store

    def _apply_message(self, spec: TopicSpec, message) -> None:
        if spec is HANDOFF_EVENTS:
            event = decode_event(message)
            if event is not None:
                self._store.apply(message.envelope.event_id, event)
        elif spec is SLA_EVENTS:
            if message.WhichOneof("change") == "breached":
                self._store.record_breach(message.handoff_id, from_timestamp(message.breached.breached_at))
        else:
            self._store.record_contact(decode_contact(message))
