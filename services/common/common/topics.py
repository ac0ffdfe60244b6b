"""The topic catalogue: every topic the project writes, its key, its value type and its writer.

One entry per topic, declared once (docs/architecture.md). Topics that are joined share a
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
    # A compacted topic keeps the latest record of each key (cleanup.policy=compact).
    compacted: bool = False
    # How long a record is kept (retention.ms); None keeps every record (a compacted topic).
    retention_hours: int | None = 90 * 24

    @property
    def dlq(self) -> str:
        """The dead-letter topic for records of this topic that a consumer cannot read."""
        return f"{self.name}.dlq"


# Readers are every service that consumes the topic, read models included: the deployment
# grants each service's Kafka user exactly these (deploy/generate.py).
CONTACTS = TopicSpec("contacts.v1", "customer_ref", "ContactRecorded", "handoff", ("sla", "handoff"))
HANDOFF_EVENTS = TopicSpec(
    "handoff.events.v1", "customer_ref", "HandoffEvent", "handoff", ("handoff", "sla", "notify")
)
# Commands travel to the replica that owns the customer's partition; replies come back
# keyed by the waiting replica. Internal to the handoff service.
HANDOFF_COMMANDS = TopicSpec("handoff.commands.v1", "customer_ref", "HandoffCommand", "handoff", ("handoff",),
                             retention_hours=24)
HANDOFF_REPLIES = TopicSpec("handoff.replies.v1", "replica", "CommandReply", "handoff", ("handoff",),
                            retention_hours=1)
SLA_EVENTS = TopicSpec("sla.events.v1", "customer_ref", "SlaEvent", "sla", ("sla", "notify", "handoff"))
REPEAT_CONTACTS = TopicSpec(
    "repeat.contacts.v1", "customer_ref", "RepeatContactDetected", "sla", ("notify", "sla")
)
NOTIFICATIONS = TopicSpec(
    "notifications.v1", "receiver", "NotificationEvent", "notify", ("notify", "audit"), retention_hours=30 * 24
)
# Silences set over the API: compacted, so the latest state of each silence is kept for ever.
SILENCES = TopicSpec(
    "notify.silences.v1", "silence_id", "Silence", "notify", ("notify",), compacted=True, retention_hours=None
)

CATALOGUE: tuple[TopicSpec, ...] = (
    CONTACTS, HANDOFF_EVENTS, HANDOFF_COMMANDS, HANDOFF_REPLIES, SLA_EVENTS, REPEAT_CONTACTS, NOTIFICATIONS,
    SILENCES,
)


# Each stream app's consumer group id, and the tables whose changelogs it keeps.
HANDOFF_APP, SLA_APP, NOTIFY_APP = "handoff-legs", "handoff-sla", "handoff-notify"
TABLES: dict[str, tuple[str, ...]] = {
    HANDOFF_APP: ("legs", "requests"),
    SLA_APP: ("clocks", "customers", "marks"),
    NOTIFY_APP: ("legs", "deliveries", "pending", "escalations", "groups", "grouped", "sources", "marks"),
}


# A worker restores a store by reading its changelog from the beginning, so a restore reads
# whatever the broker's log cleaner has not removed yet. The cleaner never touches a
# partition's active segment, and by default a segment rolls after 7 days: a week of every
# superseded value and tombstone. Each changelog rolls a segment at least hourly, so a
# restore reads the live state, the changes of about the last hour, and what the cleaner has
# not reached (at most as much again as the rest, by its default dirty ratio of one half). A
# tombstone is kept an hour after its segment was cleaned: a restore that read the value it
# deletes reads the tombstone too, as long as the restore takes less than that (the startup
# probe allows 30 minutes).
CHANGELOG_SEGMENT_MS = 3_600_000
CHANGELOG_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.ms": str(CHANGELOG_SEGMENT_MS),
    "delete.retention.ms": str(CHANGELOG_SEGMENT_MS),
}


def changelog_name(app: str, table: str) -> str:
    """The changelog topic of `app`'s store (`<app>-<store>-changelog`)."""
    return f"{app}-{table}-changelog"


def changelog_topic_names() -> list[str]:
    """The changelog topic of every table, created by the project with the sources'
    partition count so tables stay co-partitioned with what feeds them."""
    return [changelog_name(app, table) for app, tables in TABLES.items() for table in tables]


def compacted_topic_names() -> list[str]:
    """The catalogue topics that are compacted (their DLQs are not)."""
    return [spec.name for spec in CATALOGUE if spec.compacted]


def all_topic_names() -> list[str]:
    """Every catalogue topic and its dead-letter topic (changelogs are listed apart)."""
    return [name for spec in CATALOGUE for name in (spec.name, spec.dlq)]
