"""A customer's repeat-contact state in the `customers` table, and its JSON-ready form.

One document per customer_ref: the contacts already examined (within the repeat window),
the contacts waiting for event time to pass them, and the customer's recent legs.
"""

from __future__ import annotations

from typing import NamedTuple

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


# The encoded form of recently written or read legs. A customer's record is written whole
# at each change while most of its legs stay as they were: each unchanged leg (the very same
# object) reuses its form. Bounded: emptied when full.
_LEG_FORMS: dict[str, tuple[LegHistory, dict]] = {}
_LEG_FORMS_KEPT = 50_000


def _keep_form(leg: LegHistory, form: dict) -> dict:
    if len(_LEG_FORMS) >= _LEG_FORMS_KEPT:
        _LEG_FORMS.clear()
    _LEG_FORMS[leg.handoff_id] = (leg, form)
    return form


def _leg_form(leg: LegHistory, forms: dict[str, tuple[LegHistory, dict]] = _LEG_FORMS) -> dict:
    # `forms` is bound at definition: a local name, read once per leg of every record written.
    known = forms.get(leg.handoff_id)
    if known is not None and known[0] is leg:
        return known[1]
    return _keep_form(leg, {
        "id": leg.handoff_id,
        "case": leg.case_id,
        "department": leg.department,
        "created": epoch_us(leg.created_at),
        "changes": [[epoch_us(at), what] for at, what in leg.changes],
        "breached": epoch_us(leg.breached_at) if leg.breached_at else None,
    })


def _leg_of(fields: dict) -> LegHistory:
    leg = LegHistory(
        handoff_id=fields["id"],
        case_id=fields["case"],
        department=fields["department"],
        created_at=from_epoch_us(fields["created"]),
        changes=tuple((from_epoch_us(at), what) for at, what in fields["changes"]),
        breached_at=from_epoch_us(fields["breached"]) if fields["breached"] else None,
    )
    _keep_form(leg, fields)
    return leg


def encode_customer(record: CustomerRecord) -> dict:
    """Table value for a customer's record."""
    return {
        "p": record.partition,
        "contacts": [_contact(c) for c in record.contacts],
        "pending": [_contact(c) for c in record.pending],
        "legs": [_leg_form(leg) for leg in record.legs],
    }


def decode_customer(customer_ref: str, document: dict) -> CustomerRecord:
    """Inverse of `encode_customer`."""
    return CustomerRecord(
        partition=document["p"],
        contacts=tuple(_contact_of(customer_ref, c) for c in document["contacts"]),
        pending=tuple(_contact_of(customer_ref, c) for c in document["pending"]),
        legs=tuple(_leg_of(leg) for leg in document["legs"]),
    )
