"""The topic catalogue: every topic the project writes, its key, its value type and its writer.

One entry per topic, declared once (DESIGN.md section 6). Topics that are joined share a
partition count, so the catalogue carries one count for the whole local deployment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: its name, what keys and values it carries, and who writes it."""

    name: str
    key: str
    value: str
    writer: str
    readers: tuple[str, ...]

    @property
    def dlq(self) -> str:
        """The dead-letter topic for records of this topic that a consumer cannot read."""
        return f"{self.name}.dlq"


CONTACTS = TopicSpec("contacts.v1", "customer_ref", "ContactRecorded", "handoff", ("sla",))
HANDOFF_EVENTS = TopicSpec(
    "handoff.events.v1", "customer_ref", "HandoffEvent", "handoff", ("handoff", "sla", "notify")
)
SLA_EVENTS = TopicSpec("sla.events.v1", "customer_ref", "SlaEvent", "sla", ("sla", "notify"))
REPEAT_CONTACTS = TopicSpec(
    "repeat.contacts.v1", "customer_ref", "RepeatContactDetected", "sla", ("notify",)
)
NOTIFICATIONS = TopicSpec(
    "notifications.v1", "receiver", "NotificationEvent", "notify", ("notify", "audit")
)

CATALOGUE: tuple[TopicSpec, ...] = (CONTACTS, HANDOFF_EVENTS, SLA_EVENTS, REPEAT_CONTACTS, NOTIFICATIONS)


def all_topic_names() -> list[str]:
    """Every topic the project creates: the catalogue and one dead-letter topic each."""
    return [name for spec in CATALOGUE for name in (spec.name, spec.dlq)]
