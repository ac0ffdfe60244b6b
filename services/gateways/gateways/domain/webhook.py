"""A notification as a signed webhook: the JSON body, its headers, and what the answer means.

The signature is HMAC-SHA256 over the exact body bytes with the receiver's secret. The
send time is inside the body (`sent_at`), so it is signed too; `X-Handoff-Timestamp`
repeats it for receivers that reject stale requests before parsing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from common.validation import InvalidField
from gateways.domain.delivery import Delivery, Rejected, Unavailable, canonical_json, instant, notification_fields

SIGNATURE_HEADER = "X-Handoff-Signature"
DELIVERY_HEADER = "X-Handoff-Delivery"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
# Response headers whose value, when present, becomes part of the receipt (first wins).
RESPONSE_ID_HEADERS = ("X-Handoff-Receipt", "X-Request-Id")
# The secret used for targets that no prefix covers, when configured.
ANY_TARGET = "*"
_MAX_URL = 2048
_MAX_RESPONSE_ID = 128
# 4xx answers that ask to come back later rather than refuse the request.
_RETRY_LATER = {408, 425, 429}


def webhook_url(field: str, value: str) -> str:
    """An absolute http(s) URL with a host."""
    if len(value) > _MAX_URL or any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidField(field, f"must be an http(s) URL of at most {_MAX_URL} characters without spaces")
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise InvalidField(field, f"is not a URL: {error}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidField(field, "must be an http:// or https:// URL with a host")
    return value


def _normal(url: str) -> str:
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}{query}"


def secret_for(target: str, secrets: Mapping[str, str]) -> str | None:
    """The secret of the longest URL prefix covering `target` (on a path boundary), else `*`'s."""
    url = _normal(target)
    best: tuple[int, str] | None = None
    for prefix, secret in secrets.items():
        if prefix == ANY_TARGET:
            continue
        stem = _normal(prefix)
        covers = url == stem or (
            url.startswith(stem) and (stem.endswith("/") or url[len(stem)] in "/?#")
        )
        if covers and (best is None or len(stem) > best[0]):
            best = (len(stem), secret)
    return best[1] if best else secrets.get(ANY_TARGET)


def webhook_body(delivery: Delivery, sent_at: datetime) -> bytes:
    """Compact JSON with sorted keys, UTF-8: the bytes that are signed and sent."""
    document = {
        "delivery_id": delivery.delivery_id,
        "sent_at": instant(sent_at),
        "notification": notification_fields(delivery.notification),
    }
    return canonical_json(document)


def signature(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of body keyed with secret>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, secret: str, header: str) -> bool:
    """What a receiver checks: the header is the body's signature (compared in constant time)."""
    return hmac.compare_digest(signature(body, secret).encode(), header.encode())


def webhook_headers(delivery: Delivery, body: bytes, secret: str, sent_at: datetime) -> dict[str, str]:
    """The headers of the POST that carries `body`."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: signature(body, secret),
        DELIVERY_HEADER: delivery.delivery_id,
        TIMESTAMP_HEADER: instant(sent_at) or "",
    }


def webhook_receipt(status: int, response_id: str | None) -> str:
    """`"<status>"` or `"<status> <response id>"` for a 2xx; otherwise raise what it means."""
    if 200 <= status < 300:
        reference = (response_id or "").strip()[:_MAX_RESPONSE_ID]
        return f"{status} {reference}" if reference else str(status)
    if status >= 500 or status in _RETRY_LATER:
        raise Unavailable(f"receiver answered HTTP {status}")
    if 300 <= status < 400:
        raise Rejected(f"receiver answered HTTP {status} (redirects are not followed)")
    raise Rejected(f"receiver answered HTTP {status}")
