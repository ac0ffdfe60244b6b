"""A customer's repeat-contact state in the `customers` table, and its JSON store value.

One document per customer_ref: the contacts already examined (within the repeat window),
the contacts waiting for event time to pass them, and the customer's recent legs.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from common.clock import epoch_us, from_epoch_us
from sla.domain.repeats import Contact, LegHistory


class CustomerRecord(NamedTuple):
    """What repeat detection keeps of one customer; `partition` owns it (a named tuple: one is
    built at every change of the customer's legs or contacts, and a tuple is cheap to build)."""

    partition: int
    contacts: tuple[Contact, ...] = ()
    pending: tuple[Contact, ...] = ()
    legs: tuple[LegHistory, ...] = ()

    def knows_contact(self, contact_id: str) -> bool:
        """Has this contact been examined or queued already (a redelivered record)?"""
        return any(c.contact_id == contact_id for c in (*self.contacts, *self.pending))


# Instants are microseconds since the epoch: exact, and cheaper to write and read than ISO text.
def _contact(contact: Contact) -> list:
    return [contact.contact_id, contact.case_id, contact.channel, epoch_us(contact.contacted_at)]


def _contact_of(customer_ref: str, fields: list) -> Contact:
    contact_id, case_id, channel, at = fields
    return Contact(contact_id, customer_ref, case_id, channel, from_epoch_us(at))


class LegForms(NamedTuple):
    """The encoded legs of a record as last written: each leg and its JSON form, in order. A
    customer's record is written whole at each change while most of its legs stay as they
    were: the next write of that customer starts from these instead of encoding every leg again."""

    legs: tuple[LegHistory, ...] = ()
    forms: tuple[bytes, ...] = ()


NO_FORMS = LegForms()


def _leg_form(leg: LegHistory) -> bytes:
    return orjson.dumps({
        "id": leg.handoff_id,
        "case": leg.case_id,
        "department": leg.department,
        "created": epoch_us(leg.created_at),
        "changes": [[epoch_us(at), what] for at, what in leg.changes],
        "breached": epoch_us(leg.breached_at) if leg.breached_at else None,
    })


def _leg_of(fields: dict) -> LegHistory:
    return LegHistory(
        handoff_id=fields["id"],
        case_id=fields["case"],
        department=fields["department"],
        created_at=from_epoch_us(fields["created"]),
        changes=tuple((from_epoch_us(at), what) for at, what in fields["changes"]),
        breached_at=from_epoch_us(fields["breached"]) if fields["breached"] else None,
    )


def encode_customer(record: CustomerRecord, known: LegForms = NO_FORMS) -> tuple[bytes, LegForms]:
    """Table value for a customer's record (JSON), and the forms of its legs; `known` are the
    forms of an earlier write of the same customer.

    A leg's form depends on its fields alone, so a write reuses `known` when the record's legs
    are those legs with one added (a leg created: the common case, one form encoded) or the
    same legs, and otherwise the form of each leg that is still the very same object. The
    bytes are those of encoding every leg anew."""
    legs, count = record.legs, len(known.legs)
    if len(legs) == count + 1 and legs[:count] == known.legs:
        forms = (*known.forms, _leg_form(legs[-1]))
    elif legs == known.legs:
        forms = known.forms
    else:
        # An id stands for one object only while that object lives: `known` keeps its legs alive.
        reuse = dict(zip(map(id, known.legs), known.forms))
        forms = tuple([_known_or_new(reuse.get(id(leg)), leg) for leg in legs])
    payload = orjson.dumps({
        "p": record.partition,
        "contacts": [_contact(c) for c in record.contacts],
        "pending": [_contact(c) for c in record.pending],
        "legs": orjson.Fragment(b"".join((b"[", b",".join(forms), b"]"))),
    })
    return payload, LegForms(legs, forms)


def _known_or_new(form: bytes | None, leg: LegHistory) -> bytes:
    return _leg_form(leg) if form is None else form


def decode_customer(customer_ref: str, document: dict) -> CustomerRecord:
    """Inverse of `encode_customer`."""
    return CustomerRecord(
        partition=document["p"],
        contacts=tuple(_contact_of(customer_ref, c) for c in document["contacts"]),
        pending=tuple(_contact_of(customer_ref, c) for c in document["pending"]),
        legs=tuple(_leg_of(leg) for leg in document["legs"]),
    )
