"""Every sla replica's read model of the whole stream, so any replica answers any SlaService call.

Tails sla.events.v1 (clocks and breaches), repeat.contacts.v1 (repeat contacts and their
cost), handoff.events.v1 (legs created, priorities, reopens) and contacts.v1 (contacts,
for the whole centre's first contact resolution) from the beginning into an
SlaReadModel. `caught_up()` (from common.feed) waits until everything written before the
call has been applied.
"""

from __future__ import annotations

from functools import partial

from common.feed import TopicFeed
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_EVENTS, TopicSpec
from sla.adapters import readmodel_codec as codec
from sla.adapters.readmodel_store import PriorityChange, SlaReadModel
from sla.domain.scorecard import LegRecord, ReopenRecord

FEEDS: tuple[TopicSpec, ...] = (SLA_EVENTS, REPEAT_CONTACTS, HANDOFF_EVENTS, CONTACTS)


def apply_record(store: SlaReadModel, spec: TopicSpec, message) -> None:
    """Apply one decoded record of the feed's topics to `store`."""
    if spec is SLA_EVENTS:
        change = codec.sla_change(message)
        if change is not None:
            store.apply_sla(change)
    elif spec is REPEAT_CONTACTS:
        store.record_repeat(codec.repeat_record(message))
    elif spec is HANDOFF_EVENTS:
        _apply_handoff(store, message)
    else:
        store.record_contact(*codec.contact_time(message))


def _apply_handoff(store: SlaReadModel, message) -> None:
    change = codec.handoff_change(message)
    if isinstance(change, LegRecord):
        store.record_leg(change)
    elif isinstance(change, PriorityChange):
        store.change_priority(change)
    elif isinstance(change, ReopenRecord):
        store.record_reopen(message.envelope.event_id, change)


class SlaFeed(TopicFeed):
    """Tails the read model's topics from the beginning into an SlaReadModel."""

    def __init__(self, bootstrap: str, store: SlaReadModel, security: KafkaSecurity = PLAINTEXT) -> None:
        super().__init__(bootstrap, FEEDS, partial(apply_record, store), name="sla-read-model", security=security)
