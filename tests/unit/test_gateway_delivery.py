"""Delivery rules: which requests a gateway takes, which secret signs, what an answer means."""

from __future__ import annotations

import pytest

from common.validation import InvalidField
from gateways.domain.delivery import (
    DEADLINE_MARGIN,
    Delivery,
    Notification,
    Rejected,
    Unavailable,
    downstream_timeout,
)
from gateways.domain.ledger import ReceiptLedger
from gateways.domain.mail import recipients, smtp_failure
from gateways.domain.targets import valid_delivery
from gateways.domain.webhook import secret_for, webhook_receipt

NOTE = Notification(notification_id="n-1")


def delivery(**changes) -> Delivery:
    given = {"delivery_id": "d-1", "channel": "webhook", "target": "https://hooks.example/x", "notification": NOTE}
    return Delivery(**{**given, **changes})


# --- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"delivery_id": ""}, "delivery_id"),
        ({"delivery_id": "has space"}, "delivery_id"),
        ({"delivery_id": "tab\there"}, "delivery_id"),
        ({"delivery_id": "del\x7f"}, "delivery_id"),
        ({"delivery_id": "café"}, "delivery_id"),
        ({"delivery_id": "x" * 257}, "delivery_id"),
        ({"channel": ""}, "channel"),
        ({"channel": "email"}, "channel"),
        ({"target": ""}, "target"),
        ({"notification": None}, "notification"),
        ({"notification": Notification(notification_id="")}, "notification.notification_id"),
        ({"target": "ftp://hooks.example/x"}, "target"),
        ({"target": "hooks.example/x"}, "target"),
        ({"target": "https:///no-host"}, "target"),
        ({"target": "https://hooks.example:99999/x"}, "target"),
        ({"target": "https://hooks.example/a b"}, "target"),
    ],
)
def test_a_webhook_request_missing_or_malformed_names_its_field(changes, field):
    with pytest.raises(InvalidField) as raised:
        valid_delivery("webhook", delivery(**changes))

    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize("target", ["https://hooks.example/x", "http://127.0.0.1:8080/hooks/billing?team=2"])
def test_a_webhook_request_with_an_http_url_is_taken(target):
    assert valid_delivery("webhook", delivery(target=target)).target == target


def test_an_email_request_needs_an_address_list_and_the_log_request_a_name():
    assert valid_delivery("email", delivery(channel="email", target="lead@example.org"))
    assert valid_delivery("log", delivery(channel="log", target="ops"))
    with pytest.raises(InvalidField, match="^target: 'not-an-address' is not an e-mail address"):
        valid_delivery("email", delivery(channel="email", target="not-an-address"))
    with pytest.raises(InvalidField, match="^target: must be one line"):
        valid_delivery("log", delivery(channel="log", target="a\nb"))


def test_recipients_reads_a_list_with_display_names():
    assert recipients("target", '"Lead, Billing" <lead@example.org>, duty@cc.example') == (
        ("Lead, Billing", "lead@example.org"),
        ("", "duty@cc.example"),
    )


@pytest.mark.parametrize(
    "value",
    ["", " ", "lead@", "@example.org", "lead@example.org,,", "a@b@c", "lead@example.org\r\nBcc: x@y.z",
     "lead@exa mple.org", "a@b.org c@d.org", "Lead <a@b.org> junk", ", ".join(f"u{i}@example.org" for i in range(51))],
)
def test_recipients_refuses_what_is_not_an_address_list(value):
    with pytest.raises(InvalidField):
        recipients("target", value)


# --- secrets ----------------------------------------------------------------------------

SECRETS = {
    "https://hooks.example/": "secret-for-the-host-xxxx",
    "https://hooks.example/billing": "secret-for-billing-xxxxx",
    "*": "secret-for-anything-else",
}


@pytest.mark.parametrize(
    "target, secret",
    [
        ("https://hooks.example/billing", "secret-for-billing-xxxxx"),
        ("https://hooks.example/billing/team-2?x=1", "secret-for-billing-xxxxx"),
        ("https://HOOKS.example/billing", "secret-for-billing-xxxxx"),
        ("https://hooks.example/billing-archive", "secret-for-the-host-xxxx"),
        ("https://hooks.example/claims", "secret-for-the-host-xxxx"),
        ("https://hooks.example.evil.example/billing", "secret-for-anything-else"),
        ("https://hooks.example:8443/billing", "secret-for-anything-else"),
        ("http://hooks.example/billing", "secret-for-anything-else"),
    ],
)
def test_the_longest_prefix_on_a_path_boundary_chooses_the_secret(target, secret):
    assert secret_for(target, SECRETS) == secret


def test_without_a_catch_all_an_uncovered_target_has_no_secret():
    assert secret_for("https://other.example/", {"https://hooks.example/": "s" * 16}) is None


# --- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, response_id, receipt",
    [(200, None, "200"), (202, "req-7", "202 req-7"), (204, "  ", "204"), (201, "x" * 300, "201 " + "x" * 128)],
)
def test_a_2xx_answer_is_a_receipt_of_status_and_response_id(status, response_id, receipt):
    assert webhook_receipt(status, response_id) == receipt


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_a_5xx_or_a_come_back_later_answer_is_retryable(status):
    with pytest.raises(Unavailable, match=f"HTTP {status}"):
        webhook_receipt(status, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301, 302])
def test_any_other_answer_is_a_refusal_naming_the_status(status):
    with pytest.raises(Rejected, match=f"HTTP {status}"):
        webhook_receipt(status, None)


@pytest.mark.parametrize(
    "code, failure", [(421, Unavailable), (450, Unavailable), (451, Unavailable), (550, Rejected), (554, Rejected)]
)
def test_smtp_4xx_is_temporary_and_5xx_permanent(code, failure):
    result = smtp_failure(code, "mailbox\nbusy")

    assert type(result) is failure
    assert str(result) == f"SMTP server answered {code} mailbox busy"


# --- deadlines and the ledger -------------------------------------------------------


@pytest.mark.parametrize(
    "configured, remaining, expected",
    [(10.0, None, 10.0), (10.0, 30.0, 10.0), (10.0, 2.0, 2.0 - DEADLINE_MARGIN), (10.0, 0.05, 0.05 - DEADLINE_MARGIN)],
)
def test_the_downstream_timeout_is_cut_to_the_callers_deadline(configured, remaining, expected):
    assert downstream_timeout(configured, remaining) == pytest.approx(expected)


def test_the_ledger_keeps_the_first_receipt_of_an_id():
    ledger = ReceiptLedger(capacity=10)

    ledger.record("d-1", "200 first")
    ledger.record("d-1", "200 second")

    assert ledger.receipt_for("d-1") == "200 first"
    assert ledger.receipt_for("d-2") is None


def test_the_ledger_forgets_the_oldest_receipts_beyond_its_capacity():
    ledger = ReceiptLedger(capacity=3)

    for number in range(1, 6):
        ledger.record(f"d-{number}", str(number))

    assert len(ledger) == 3
    assert [ledger.receipt_for(f"d-{n}") for n in range(1, 6)] == [None, None, "3", "4", "5"]
