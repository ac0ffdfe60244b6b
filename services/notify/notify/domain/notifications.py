"""What a receiver is told about an SLA event.

A notification's key names what it is about (a breach of one clock of one leg), so the
same breach read twice yields the same key and id and is delivered once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

NEW_LEG, WARNING, BREACH, AVOIDABLE_REPEAT = "new_leg", "warning", "breach", "avoidable_repeat"
ESCALATION, RESOLVED_AFTER_BREACH, DIGEST, INCIDENT = "escalation", "resolved_after_breach", "digest", "incident"
KINDS = (NEW_LEG, WARNING, BREACH, AVOIDABLE_REPEAT, ESCALATION, RESOLVED_AFTER_BREACH, DIGEST, INCIDENT)


@dataclass(frozen=True)
class Notification:
    notification_id: str
    key: str
    kind: str
    receiver: str
    department: str
    priority: str
    handoff_id: str
    case_id: str
    customer_ref: str
    clock: str
    title: str
    body: str
    occurred_at: datetime
    category: str = ""
    escalation_level: int = 0
    items: tuple["Notification", ...] = ()
    # A digest's group (grouping.group_key) and flush ("<seq>:<reason>"); empty otherwise.
    group_key: str = ""
    flush: str = ""
    # An escalation notice's original notification (its id and receiver), so that
    # acknowledging the notice acknowledges the original and stops its escalation.
    origin_id: str = ""
    origin_receiver: str = ""

    @property
    def labels(self) -> dict[str, str]:
        """What routes, silences and inhibit rules match on (notify.domain.routing.LABELS)."""
        return {"department": self.department, "priority": self.priority, "kind": self.kind,
                "category": self.category, "clock": self.clock, "handoff_id": self.handoff_id}
