"""Event ids: random for events a request causes, derived for events another event causes."""

from __future__ import annotations

import hashlib
import uuid

# Namespace for ids derived from their cause (uuid5), so a replay derives the same ids.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3f0e-6a53-4b8e-9d0c-4f3a2f6c1b7e")
_NAMESPACE_BYTES = _DERIVED_ID_NAMESPACE.bytes


def new_event_id() -> str:
    """A fresh random event id."""
    return str(uuid.uuid4())


def derived_event_id(*cause: object) -> str:
    """A deterministic event id (a UUIDv5 of the cause): the same cause always yields the same id."""
    # uuid.uuid5 spelled out: the same bytes, without building UUID objects (hot in replays).
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "|".join(map(str, cause)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
