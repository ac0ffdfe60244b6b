"""Every silence, as read from the compacted notify.silences.v1 topic, on every replica.

The pipeline asks `active(at)` before delivering; the API lists, finds and, after writing
a silence, applies it at once so the writer reads its own write.

Retention: a silence that ended more than `retention` before the latest start put is
forgotten when a silence is put (the store's own time, as the notifications' read model
keeps its own; silences are set by people, so a scan of them per put costs nothing).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from google.protobuf.message import Message

from common.topics import SILENCES, TopicSpec
from notify.adapters.api_codec import silence_from_pb
from notify.domain.silences import EXPIRED, Silence
from notify.settings import DEFAULT_RETENTION


class SilenceStore:
    """Silences by id; the newest record of an id wins (as compaction keeps it)."""

    def __init__(self, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._silences: dict[str, Silence] = {}
        self._retention = retention
        self._latest_start: datetime | None = None

    def __len__(self) -> int:
        return len(self._silences)

    def apply(self, spec: TopicSpec, message: Message) -> None:
        """A TopicFeed `apply`: take in one notify.silences.v1 record (ValueError if unusable)."""
        if spec.name != SILENCES.name:
            raise ValueError(f"SilenceStore reads {SILENCES.name}, not {spec.name}")
        self.put(silence_from_pb(message))

    def put(self, silence: Silence) -> None:
        """Record `silence`, replacing any earlier state of the same id; forget those that
        ended more than the retention before the latest start."""
        self._silences[silence.silence_id] = silence
        if self._latest_start is None or silence.starts_at > self._latest_start:
            self._latest_start = silence.starts_at
        cut = self._latest_start - self._retention
        for old in [s.silence_id for s in tuple(self._silences.values()) if s.ends_at < cut]:
            del self._silences[old]

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
