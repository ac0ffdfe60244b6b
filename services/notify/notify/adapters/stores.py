"""notify's tables on the stream engine: JSON values in ChangelogStores.

The engine's stores hold bytes with a header naming the partition that owns the key. notify's
handlers read and write plain JSON values (dicts, lists, strings) by key, so each table is a
mapping that frames what it is given with the partition being worked on (`Place`): the
partition of the record being handled, or of the due item a timer is taking.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from common.streams.store import ChangelogStore, framed, payload_of

# One encoder for every write (json.dumps with separators builds one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


class Place:
    """The partition the handlers are working on; the tables stamp it on what they write."""

    partition: int = 0


class JsonTable(MutableMapping[str, Any]):
    def __init__(self, store: ChangelogStore, place: Place) -> None:
        self.store = store
        self._place = place

    def __getitem__(self, key: str) -> Any:
        return json.loads(payload_of(self.store[key]))

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.store.get(key)
        return default if raw is None else json.loads(payload_of(raw))

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = framed(self._place.partition, _encode(value).encode())

    def __delitem__(self, key: str) -> None:
        del self.store[key]

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self.store.items()])

    def __len__(self) -> int:
        return len(self.store)

    def pop(self, key: str, default: Any = None) -> Any:
        raw = self.store.get(key)
        if raw is None:
            return default
        del self.store[key]
        return json.loads(payload_of(raw))

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return iter([json.loads(payload_of(raw)) for raw in self.store.values()])

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter([(key, json.loads(payload_of(raw))) for key, raw in self.store.items()])
