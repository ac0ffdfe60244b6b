"""Every silence, as read from the compacted notify.silences.v1 topic, on every replica.

The pipeline asks `active(at)` before delivering; the API lists, finds and, after writing
a silence, applies it at once so the writer reads its own write.
"""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf.message import Message

from common.topics import SILENCES, TopicSpec
from notify.adapters.api_codec import silence_from_pb
from notify.domain.silences import EXPIRED, Silence


class SilenceStore:
    """Silences by id; the newest record of an id wins (as compaction keeps it)."""

    def __init__(self) -> None:
        self._silences: dict[str, Silence] = {}

    def __len__(self) -> int:
        return len(self._silences)

    def apply(self, spec: TopicSpec, message: Message) -> None:
        """A TopicFeed `apply`: take in one notify.silences.v1 record (ValueError if unusable)."""
        if spec.name != SILENCES.name:
            raise ValueError(f"SilenceStore reads {SILENCES.name}, not {spec.name}")
        self.put(silence_from_pb(message))

    def put(self, silence: Silence) -> None:
        """Record `silence`, replacing any earlier state of the same id."""
        self._silences[silence.silence_id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def active(self, at: datetime) -> list[Silence]:
        """The silences holding back notifications at `at` (started, not yet ended).

        Asked on the stream engine's thread while the API's loop may add one: the values are
        copied in one step first (tuple() of a dict view does not let another thread in)."""
        return [s for s in tuple(self._silences.values()) if s.starts_at <= at < s.ends_at]

    def all(self, include_expired: bool = False, at: datetime | None = None) -> list[Silence]:
        """Every silence (pending and active; expired ones too if asked), soonest ending first.

        Expiry is judged at `at`, by default the wall clock (callers with a Clock pass it).
        """
        silences = list(self._silences.values())
        if not include_expired:
            at = at or datetime.now(timezone.utc)
            silences = [s for s in silences if s.status(at) != EXPIRED]
        return sorted(silences, key=lambda s: (s.ends_at, s.silence_id))
