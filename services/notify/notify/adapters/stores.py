"""notify's tables on the stream engine: JSON values in ChangelogStores.

The engine's stores hold bytes with a header naming the partition that owns the key. notify's
handlers read and write plain JSON values (dicts, lists, strings) by key, so each table is a
mapping that frames what it is given with the partition being worked on (`Place`): the
partition of the record being handled, or of the due item a timer is taking.

Values are written as json.dumps(value, separators=(",", ":")) writes them, and always were;
orjson writes the same bytes several times faster for most values, and is used where it does
(see `encoded`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from common.streams.store import ChangelogStore, framed, payload_of

# One encoder for every write (json.dumps with separators builds one per call).
_json_encode = json.JSONEncoder(separators=(",", ":")).encode
# Whatever json would not write (a dataclass, a datetime, a str or int subclass) goes to json too.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def encoded(value: Any, floats: bool = False) -> bytes:
    """`value` as json.dumps(value, separators=(",", ":")) writes it (ASCII, non-ASCII escaped).

    orjson writes the same bytes for strings, ints, bools, None, lists and dicts with str keys,
    except that it leaves non-ASCII characters and DEL unescaped: such a value, and one orjson
    refuses (non-str keys, ints beyond 64 bits), is written by json. orjson also writes some
    floats differently (1e-05 as 0.00001, inf as null), so a table whose values hold `floats`
    is written by json alone. (It writes a UUID or a plain Enum, which json refuses: no table
    holds one.)
    """
    if not floats:
        try:
            text = orjson.dumps(value, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
        else:
            if text.isascii() and b"\x7f" not in text:
                return text
    return _json_encode(value).encode()


def decoded(payload: bytes) -> Any:
    """A table value, as json.loads reads it: orjson, or json for what orjson refuses (NaN,
    Infinity, lone surrogates). orjson reads an int beyond 64 bits as a float: the tables hold
    none (their ints are partitions, offsets, counts)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


class Place:
    """The partition the handlers are working on; the tables stamp it on what they write."""

    partition: int = 0


class JsonTable(MutableMapping[str, Any]):
    def __init__(self, store: ChangelogStore, place: Place, floats: bool = False) -> None:
        """`floats`: its values may hold floats (written by json alone, see `encoded`)."""
        self.store = store
        self._place = place
        self._floats = floats

    def __getitem__(self, key: str) -> Any:
        return decoded(payload_of(self.store[key]))

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.store.get(key)
        return default if raw is None else decoded(payload_of(raw))

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = framed(self._place.partition, encoded(value, self._floats))

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
        return decoded(payload_of(raw))

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return iter([decoded(payload_of(raw)) for raw in self.store.values()])

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter([(key, decoded(payload_of(raw))) for key, raw in self.store.items()])
