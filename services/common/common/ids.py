"""Event ids: random for events a request causes, derived for events another event causes."""

from __future__ import annotations

import uuid

# Namespace for ids derived from their cause (uuid5), so a replay derives the same ids.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3f0e-6a53-4b8e-9d0c-4f3a2f6c1b7e")


def new_event_id() -> str:
    """A fresh random event id."""
    return str(uuid.uuid4())


def derived_event_id(*cause: object) -> str:
    """A deterministic event id: the same cause always yields the same id."""
    return str(uuid.uuid5(_DERIVED_ID_NAMESPACE, "|".join(str(part) for part in cause)))
