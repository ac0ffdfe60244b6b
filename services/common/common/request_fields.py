"""Request fields the gRPC servicers read alike: optional instants, page sizes, page tokens.

A page token is opaque to callers: the key of the last item served, its parts joined by
"|" and base64-encoded. Each service says which parts its keys have (`decode_page_token`'s
`parse`); any text it did not hand out is INVALID_ARGUMENT on `page_token`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from common.codec import from_timestamp
from common.validation import InvalidField

K = TypeVar("K")
DEFAULT_PAGE, MAX_PAGE = 50, 500


def instant(request, field: str) -> datetime | None:
    """The request's timestamp `field`, None when unset (InvalidField when out of range)."""
    if not request.HasField(field):
        return None
    try:
        return from_timestamp(getattr(request, field))
    except (ValueError, OverflowError):
        raise InvalidField(field, "is not a valid time") from None


def page_size(value: int) -> int:
    """A requested page size: 0..MAX_PAGE, where 0 means DEFAULT_PAGE."""
    if not 0 <= value <= MAX_PAGE:
        raise InvalidField("page_size", f"must be 0..{MAX_PAGE} (0 for {DEFAULT_PAGE})")
    return value or DEFAULT_PAGE


def encode_page_token(*parts: str) -> str:
    """An opaque token for the page after the item whose key has these `parts`."""
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


def decode_page_token(token: str, parse: Callable[[list[str]], K]) -> K | None:
    """The key an `encode_page_token` token names, by `parse` (ValueError for a key it refuses);
    None for no token; InvalidField for any other text."""
    if not token:
        return None
    try:
        return parse(base64.urlsafe_b64decode(token.encode()).decode().split("|"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidField("page_token", "is not a token this service handed out") from None
