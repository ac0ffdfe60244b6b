"""Every replica's read model: all legs, their breaches and all contacts, kept current by
tailing handoff.events.v1, sla.events.v1 and contacts.v1 from the beginning.

Every replica reads every partition, so any replica answers reads. `caught_up()` waits
until the model holds everything written before the call, which makes a read after a
write (on any replica) see that write.
"""

from __future__ import annotations

from collections import defaultdict

from common.feed import TopicFeed
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import CONTACTS, HANDOFF_EVENTS, SLA_EVENTS, TopicSpec
from handoff_svc.adapters.codec import decode_contact, decode_event
from handoff_svc.domain.contacts import Contact
from handoff_svc.domain.legs import HandoffEvent, Leg, apply

FEEDS: tuple[TopicSpec, ...] = (HANDOFF_EVENTS, SLA_EVENTS, CONTACTS)


class LegStore:
    """Legs by id, breaches by leg, contacts by customer; each event applied once."""

    def __init__(self) -> None:
        self._legs: dict[str, Leg] = {}
        self._applied: set[str] = set()
        self._breached: set[str] = set()
        self._legs_by_customer: dict[str, list[str]] = defaultdict(list)
        self._contacts: dict[str, dict[str, Contact]] = defaultdict(dict)

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

    def apply(self, event_id: str, event: HandoffEvent) -> Leg | None:
        """Apply `event` unless already applied; returns the leg after it."""
        if event_id in self._applied:
            return self._legs.get(event.handoff_id)
        known = event.handoff_id in self._legs
        leg = apply(self._legs.get(event.handoff_id), event)
        self._applied.add(event_id)
        self._legs[event.handoff_id] = leg
        if not known:
            self._legs_by_customer[leg.customer_ref].append(leg.handoff_id)
        return leg

    def record_breach(self, handoff_id: str) -> None:
        self._breached.add(handoff_id)

    def record_contact(self, contact: Contact) -> None:
        self._contacts[contact.customer_ref][contact.contact_id] = contact


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
                self._store.record_breach(message.handoff_id)
        else:
            self._store.record_contact(decode_contact(message))
