"""What the bench reads from outside a service: its memory, its /metrics, its consumer group's lag.

Nothing here changes a service; each probe is what an operator could read too (/proc, the
Prometheus endpoint, the broker's committed offsets), so the figures built on them hold
for a service in production as well.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


def rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` (VmRSS), or None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def open_fds(pid: int) -> int | None:
    """How many file descriptors `pid` holds open (entries of /proc/<pid>/fd), or None."""
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None


def scrape(url: str, timeout: float = 5.0) -> list[tuple[str, dict[str, str], float]]:
    """Every sample on a /metrics page as (name, labels, value)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    """The sum of a metric's samples over all its label values (0 when absent)."""
    return sum(value for sample, _, value in samples if sample == name)


def by_label(samples: list[tuple[str, dict[str, str], float]], name: str, label: str) -> dict[str, float]:
    """A metric summed per value of one label."""
    sums: dict[str, float] = {}
    for sample, labels, value in samples:
        if sample == name:
            sums[labels.get(label, "")] = sums.get(labels.get(label, ""), 0.0) + value
    return sums


def gauge(url: str, name: str) -> float | None:
    """One metric's total on `url`, or None when the endpoint does not answer."""
    try:
        return total(scrape(url), name)
    except OSError:
        return None


def gc_pauses(url: str, longer_than: str = "0.05") -> tuple[float, float]:
    """(pauses longer than `longer_than` seconds, seconds paused in all) of the garbage
    collector so far, from a process's handoff_gc_pause_seconds histogram."""
    samples = scrape(url)
    within = sum(value for name, labels, value in samples
                 if name == "handoff_gc_pause_seconds_bucket" and labels.get("le") == longer_than)
    return (total(samples, "handoff_gc_pause_seconds_count") - within,
            total(samples, "handoff_gc_pause_seconds_sum"))


# A pause line of the JVM's unified GC log (-Xlog:gc): "... Pause Young (Normal) (...) 120M->40M(512M) 9.670ms"
_PAUSE = re.compile(r"Pause .*?(\d+)M->(\d+)M\(\d+M\) ([\d.]+)ms")


@dataclass(frozen=True)
class Collection:
    """One stop-the-world pause of a JVM's collector: the heap before and after it, and how long."""

    before_mb: int
    after_mb: int
    pause_ms: float


class GcLog:
    """A broker's GC log, read as it grows: each `new()` returns the pauses written since the
    last call. The heap after a young collection is what is live plus the old generation's
    garbage that no marking cycle has reclaimed yet, so it climbs between cycles."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def new(self) -> list[Collection]:
        try:
            with self._path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except OSError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [Collection(int(m[1]), int(m[2]), float(m[3])) for m in _PAUSE.finditer(complete.decode(errors="replace"))]


class KafkaProbe:
    """End offsets of topics and a consumer group's committed offsets (kafka-python, synchronous)."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    def __enter__(self) -> "KafkaProbe":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._consumer.close()
        self._admin.close()

    def _partitions(self, topics: list[str]) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in topics for p in sorted(self._consumer.partitions_for_topic(topic))]

    def records(self, topic: str) -> int:
        """Records written to `topic` so far (the sum of its end offsets)."""
        return sum(self._consumer.end_offsets(self._partitions([topic])).values())

    def lag(self, group: str, topics: list[str]) -> int:
        """Records of `topics` the group has not committed yet (from each partition's start if never)."""
        partitions = self._partitions(topics)
        ends = self._consumer.end_offsets(partitions)
        starts = self._consumer.beginning_offsets(partitions)
        committed = self._admin.list_group_offsets({group: partitions}).get(group, {})
        lag = 0
        for tp in partitions:
            mark = committed.get(tp)
            offset = mark.offset if mark is not None and mark.offset >= 0 else starts[tp]
            lag += max(ends[tp] - offset, 0)
        return lag

    def group_lag(self, group: str) -> tuple[int, int]:
        """(lag, partitions) of the group over every topic it has committed offsets on ((0, 0) before its
        first commit)."""
        committed = self._admin.list_group_offsets({group: None}).get(group, {})
        topics = sorted({tp.topic for tp in committed})
        return (self.lag(group, topics), len(self._partitions(topics))) if topics else (0, 0)

    def wait_for_lag(self, groups: Sequence[str], topics: list[str], time_limit: float, behind: int = 0,
                     poll: float = 0.5) -> float | None:
        """Seconds until every group has committed all but `behind` records of `topics`; None if
        not within the limit."""
        started = time.perf_counter()
        while time.perf_counter() - started < time_limit:
            if all(self.lag(group, topics) <= behind for group in groups):
                return time.perf_counter() - started
            time.sleep(poll)
        return None
