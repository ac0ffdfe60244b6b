"""How a notification looks on each channel: webhook JSON and signature, e-mail, log line."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from gateways.domain.delivery import Delivery, Notification, canonical_json
from gateways.domain.logline import log_line
from gateways.domain.mail import email_message, message_id, subject, text_body
from gateways.domain.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_matches,
    webhook_body,
    webhook_headers,
)

SENT = datetime(2025, 3, 3, 9, 0, 5, tzinfo=timezone.utc)
OCCURRED = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
BREACH = Notification(
    notification_id="n-1",
    key="breach:h-1:resolve:2025-03-03T09:00:00+00:00",
    kind="breach",
    receiver="billing",
    department="billing",
    priority="URGENT",
    handoff_id="h-1",
    case_id="case-1",
    customer_ref="c-1",
    clock="resolve",
    title="resolve SLA breached: URGENT handoff h-1",
    body="Case case-1 held by billing passed its resolve deadline.",
    occurred_at=OCCURRED,
    labels={"priority": "urgent", "department": "billing"},
)
DIGEST = Notification(
    notification_id="n-digest",
    kind="digest",
    receiver="billing",
    department="billing",
    items=(BREACH, Notification(notification_id="n-2", kind="warning", handoff_id="h-2", title="ack SLA at 80%")),
)


def delivery(notification: Notification = BREACH, target: str = "https://hooks.example/billing") -> Delivery:
    return Delivery("d-1", "webhook", target, notification)


# --- webhook ------------------------------------------------------------------------


def test_webhook_body_is_compact_sorted_json_with_every_notification_field():
    body = webhook_body(delivery(), SENT)

    assert body == (
        b'{"delivery_id":"d-1","notification":{"body":"Case case-1 held by billing passed its resolve deadline.",'
        b'"case_id":"case-1","clock":"resolve","customer_ref":"c-1","department":"billing","escalation_level":0,'
        b'"handoff_id":"h-1","items":[],"key":"breach:h-1:resolve:2025-03-03T09:00:00+00:00","kind":"breach",'
        b'"labels":{"department":"billing","priority":"urgent"},"notification_id":"n-1",'
        b'"occurred_at":"2025-03-03T09:00:00Z","priority":"URGENT","receiver":"billing",'
        b'"title":"resolve SLA breached: URGENT handoff h-1"},"sent_at":"2025-03-03T09:00:05Z"}'
    )


def test_webhook_body_nests_digest_items_and_keeps_non_ascii_as_utf8():
    notification = Notification(notification_id="n-3", kind="digest", title="Überfällig", items=DIGEST.items)

    document = json.loads(webhook_body(delivery(notification), SENT).decode("utf-8"))

    assert document["notification"]["title"] == "Überfällig"
    assert [item["notification_id"] for item in document["notification"]["items"]] == ["n-1", "n-2"]
    assert document["notification"]["items"][1]["clock"] is None
    assert "Überfällig".encode() in webhook_body(delivery(notification), SENT)


def test_signature_matches_the_rfc_4231_hmac_sha256_test_vector():
    # RFC 4231 test case 2; the same digest as `openssl dgst -sha256 -hmac Jefe`.
    assert signature(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_signature_of_a_rendered_body_matches_openssl():
    body = webhook_body(delivery(), SENT)

    # printf %s "$body" | openssl dgst -sha256 -hmac receiver-secret-0123456789
    assert signature(body, "receiver-secret-0123456789") == (
        "sha256=7883c12b2d4f4ba197f416acd67859a6348db1772a2bcff0a61035fc7bfe47b4"
    )


def test_a_receiver_accepts_the_signature_only_for_the_same_body_and_secret():
    body = webhook_body(delivery(), SENT)
    header = signature(body, "receiver-secret-0123456789")

    assert signature_matches(body, "receiver-secret-0123456789", header)
    assert not signature_matches(body + b" ", "receiver-secret-0123456789", header)
    assert not signature_matches(body, "another-secret-0123456789", header)


def test_webhook_headers_carry_signature_delivery_id_and_the_signed_send_time():
    body = webhook_body(delivery(), SENT)

    headers = webhook_headers(delivery(), body, "receiver-secret-0123456789", SENT)

    assert headers[SIGNATURE_HEADER] == signature(body, "receiver-secret-0123456789")
    assert headers[DELIVERY_HEADER] == "d-1"
    assert headers[TIMESTAMP_HEADER] == json.loads(body)["sent_at"] == "2025-03-03T09:00:05Z"
    assert headers["Content-Type"] == "application/json; charset=utf-8"


# --- e-mail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "notification, expected",
    [
        (BREACH, "[BREACH] URGENT billing: resolve SLA breached: URGENT handoff h-1"),
        (DIGEST, "[DIGEST] NORMAL billing: 2 notifications"),
        (
            Notification(notification_id="n-4", kind="escalation", department="claims", escalation_level=2, title="t"),
            "[ESCALATION L2] NORMAL claims: t",
        ),
        (Notification(notification_id="n-5", kind="new_leg", title="a\r\nBcc: x@evil.example"), "[NEW LEG] NORMAL: a Bcc: x@evil.example"),
    ],
)
def test_subject_tags_kind_priority_and_department_on_one_line(notification, expected):
    assert subject(notification) == expected


def test_text_body_gives_title_body_facts_and_the_ids():
    text = text_body(Delivery("d-1", "email", "lead@example.org", BREACH))

    assert text.splitlines()[:3] == [BREACH.title, "", BREACH.body]
    for fact in (
        "Department: billing",
        "Priority: URGENT",
        "Handoff: h-1",
        "Case: case-1",
        "Clock: resolve",
        "Occurred at: 2025-03-03T09:00:00Z",
        "Labels: department=billing, priority=urgent",
    ):
        assert fact in text.splitlines()
    assert "Escalation level" not in text
    assert text.endswith("notification n-1, delivery d-1\n")


def test_text_body_lists_each_digest_member():
    text = text_body(Delivery("d-1", "email", "lead@example.org", DIGEST))

    assert "2 notifications in this digest:" in text
    assert "  - [BREACH] URGENT billing: resolve SLA breached: URGENT handoff h-1 (handoff h-1)" in text
    assert "  - [WARNING] NORMAL: ack SLA at 80% (handoff h-2)" in text


def test_email_message_has_headers_a_stable_message_id_and_the_text():
    to = (("Billing Lead", "lead@example.org"), ("", "duty@example.org"))

    message = email_message(Delivery("d-1", "email", "x", BREACH), "handoff@cc.example", to, SENT)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)

    assert parsed["From"] == "handoff@cc.example"
    assert parsed["To"] == "Billing Lead <lead@example.org>, duty@example.org"
    assert parsed["Subject"] == subject(BREACH)
    assert parsed["Date"] == "Mon, 03 Mar 2025 09:00:05 +0000"
    assert parsed["Message-ID"] == message_id("d-1", "handoff@cc.example")
    assert parsed["X-Handoff-Delivery"] == "d-1"
    assert parsed.get_content() == text_body(Delivery("d-1", "email", "x", BREACH))


def test_message_id_is_the_same_for_the_same_delivery_and_differs_between_deliveries():
    first = message_id("d-1", "handoff@cc.example")

    assert first == message_id("d-1", "handoff@cc.example")
    assert first != message_id("d-2", "handoff@cc.example")
    assert first.startswith("<") and first.endswith(".handoff@cc.example>")


# --- log ------------------------------------------------------------------------------


def test_log_line_is_one_json_line_numbered_and_stamped():
    line = log_line(Delivery("d-1", "log", "ops", Notification(notification_id="n-1", title="two\nlines")), 7, SENT)

    assert "\n" not in line
    document = json.loads(line)
    assert (document["seq"], document["logged_at"], document["target"]) == (7, "2025-03-03T09:00:05Z", "ops")
    assert document["delivery_id"] == "d-1"
    assert document["notification"]["title"] == "two\nlines"


@pytest.mark.parametrize("text", ["plain", "two\nlines\ttab\x00nul\x1funit", "quote \" and \\ backslash",
                                  "é ß 漢字 😀", "\u2028\u2029\ufeff\x7f", ""])
def test_rendered_json_is_the_bytes_of_compact_sorted_json_with_characters_as_they_are(text):
    document = {"z": text, "a": [text, 1, None, True, -5], "m": {"y": text, "b": {"k": [text]}}}

    assert canonical_json(document) == json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
