"""A notification as an e-mail: recipients, subject, plain-text body, and the message itself.

The Message-ID derives from the delivery id, so a message sent again after a restart (when
the gateway has forgotten it) carries the same id and mail systems can tell it is one.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from common.validation import InvalidField
from gateways.domain.delivery import Delivery, Notification, Rejected, Unavailable, instant

MAX_RECIPIENTS = 50
_MAX_SUBJECT = 200
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_NAMED = re.compile(r'(?:"(?P<quoted>[^"]*)"|(?P<plain>[^<>"]*?))\s*<(?P<address>[^<>]*)>')


def address(field: str, value: str) -> str:
    """One plain ASCII address, local@domain."""
    if len(value) > 254 or not _ADDRESS.fullmatch(value):
        raise InvalidField(field, f"{value!r} is not an e-mail address")
    return value


def _entries(value: str) -> list[str]:
    """Split at commas outside double quotes."""
    entries, current, quoted = [], [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*entries, "".join(current)]


def recipients(field: str, value: str) -> tuple[tuple[str, str], ...]:
    """A comma-separated list of `addr` or `Name <addr>` entries, as (name, address) pairs."""
    if any(c in value for c in "\r\n\0"):
        raise InvalidField(field, "must be one line")
    if not value.strip():
        raise InvalidField(field, "is required")
    entries = [entry.strip() for entry in _entries(value)]
    if len(entries) > MAX_RECIPIENTS:
        raise InvalidField(field, f"lists {len(entries)} addresses; at most {MAX_RECIPIENTS}")
    pairs = []
    for entry in entries:
        if not entry:
            raise InvalidField(field, "has an empty entry")
        named = _NAMED.fullmatch(entry)
        name, addr = (named["quoted"] or named["plain"] or "", named["address"]) if named else ("", entry)
        pairs.append((name.strip(), address(field, addr)))
    return tuple(pairs)


def message_id(delivery_id: str, sender: str) -> str:
    """`<hash-of-delivery-id.handoff@sender-domain>`: the same delivery, the same id."""
    digest = hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}.handoff@{sender.rpartition('@')[2]}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def subject(notification: Notification) -> str:
    """`[BREACH] URGENT billing: <title>`, on one line."""
    tag = notification.kind.replace("_", " ").upper()
    if notification.escalation_level:
        tag += f" L{notification.escalation_level}"
    title = notification.title
    if not title and notification.items:
        title = f"{len(notification.items)} notifications"
    where = " ".join(part for part in (notification.priority, notification.department) if part)
    line = _one_line(f"[{tag}] {where}: {title or notification.key or notification.notification_id}")
    return line if len(line) <= _MAX_SUBJECT else line[: _MAX_SUBJECT - 1] + "…"


def _facts(notification: Notification) -> list[str]:
    facts = [
        ("Kind", notification.kind),
        ("Department", notification.department),
        ("Priority", notification.priority),
        ("Handoff", notification.handoff_id),
        ("Case", notification.case_id),
        ("Customer", notification.customer_ref),
        ("Clock", notification.clock),
        ("Occurred at", instant(notification.occurred_at) or ""),
        ("Escalation level", str(notification.escalation_level) if notification.escalation_level else ""),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(notification.labels.items()))),
    ]
    return [f"{name}: {value}" for name, value in facts if value]


def text_body(delivery: Delivery) -> str:
    """The plain-text body: title, body, the facts, then one line per digest member."""
    notification = delivery.notification
    lines = [notification.title]
    if notification.body:
        lines += ["", notification.body]
    lines += ["", *_facts(notification)]
    if notification.items:
        lines += ["", f"{len(notification.items)} notifications in this digest:"]
        lines += [f"  - {subject(item)} (handoff {item.handoff_id or '-'})" for item in notification.items]
    lines += ["", "--", f"notification {notification.notification_id}, delivery {delivery.delivery_id}"]
    return "\n".join(lines).strip("\n") + "\n"


def email_message(
    delivery: Delivery, sender: str, to: tuple[tuple[str, str], ...], sent_at: datetime
) -> EmailMessage:
    """The complete message: headers and a UTF-8 plain-text body."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(formataddr(pair) for pair in to)
    message["Subject"] = subject(delivery.notification)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id(delivery.delivery_id, sender)
    message["X-Handoff-Delivery"] = delivery.delivery_id
    message["X-Handoff-Notification"] = delivery.notification.notification_id
    message.set_content(text_body(delivery))
    return message


def smtp_failure(code: int, reply: str) -> Unavailable | Rejected:
    """A 4xx reply is temporary (try again later); a 5xx is permanent; anything else, temporary."""
    reason = f"SMTP server answered {code} {_one_line(reply)}".strip()
    return Rejected(reason) if 500 <= code < 600 else Unavailable(reason)
