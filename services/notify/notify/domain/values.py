"""Copies of notify's frozen value classes with some fields changed.

`dataclasses.replace` goes through the generated `__init__`, one `object.__setattr__` per
field of a frozen class, and was the costliest step of a notification (a breach makes
four such copies). The value classes here validate nothing on construction, so a copy of
their fields is the same value, made in a fraction of the time.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def evolve(instance: T, **changes: Any) -> T:
    """`instance` with `changes` (a frozen dataclass without __post_init__ or slots)."""
    fields = instance.__dict__
    if not changes.keys() <= fields.keys():  # compared in place: the difference is a new set
        unknown = changes.keys() - fields.keys()
        raise TypeError(f"{type(instance).__name__} has no field {sorted(unknown)[0]!r}")
    copy = object.__new__(type(instance))
    copy.__dict__.update(fields)
    copy.__dict__.update(changes)
    return copy
