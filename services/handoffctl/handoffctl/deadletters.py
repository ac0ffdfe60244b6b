"""Dead letters on Kafka for `handoffctl dlq`: read the `<topic>.dlq` topics, replay records once.

A replay is recorded in the DLQ itself. In one Kafka transaction the record goes back to its
source topic with audit headers (`dlq.replayed-from` names the dead letter) and a marker
goes to the dead letter's own DLQ partition (no value; `dlq.replay-of` is its offset). Every
replay uses the same transactional id, so a replay that starts fences any other still
running (its transaction aborts) before it reads the markers committed so far and skips the
records they name: a record is replayed once, however many replays run, one after another
or side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from common.topics import CATALOGUE

TRANSACTIONAL_ID = "handoffctl-dlq-replay"
REPLAY_OF, REPLAYED_FROM, REPLAYED_BY, REPLAYED_AT = "dlq.replay-of", "dlq.replayed-from", "dlq.replayed-by", "dlq.replayed-at"
SOURCE_TOPICS = tuple(spec.name for spec in CATALOGUE)


class DeadLetterError(RuntimeError):
    """A DLQ that cannot be read or a replay that cannot be written; the message says which."""


@dataclass(frozen=True)
class Replay:
    """When and by whom a dead letter was sent back to its source topic."""

    at: datetime
    by: str


@dataclass(frozen=True)
class DeadLetter:
    """One record of a `<topic>.dlq`, with where it came from, why, and whether it was replayed."""

    dlq_topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    consumer: str
    reason: str
    replay: Replay | None = None

    @property
    def id(self) -> str:
        """`<dlq topic>:<partition>:<offset>`, the name `show` and `replay` take."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Filter:
    """Which dead letters a command means; an empty field matches every record."""

    topics: tuple[str, ...] = ()
    consumer: str = ""
    since: datetime | None = None
    until: datetime | None = None
    reason: str = ""

    def matches(self, letter: DeadLetter) -> bool:
        """True when the record passes every given filter (reason: a case-blind substring)."""
        return (
            (not self.topics or letter.source_topic in self.topics)
            and (not self.consumer or letter.consumer == self.consumer)
            and (self.since is None or letter.timestamp >= self.since)
            and (self.until is None or letter.timestamp < self.until)
            and self.reason.lower() in letter.reason.lower()
        )


def parse_id(text: str) -> tuple[str, int, int]:
    """`contacts.v1.dlq:2:15` -> (topic, partition, offset); ValueError names what is wrong."""
    topic, _, rest = text.partition(":")
    partition, _, offset = rest.partition(":")
    if not topic.endswith(".dlq") or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not a dead letter id (<topic>.dlq:<partition>:<offset>)")
    return topic, int(partition), int(offset)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def _headers(record) -> dict[str, str]:
    return {name: (value or b"").decode("utf-8", "replace") for name, value in record.headers() or []}


def _instant(record) -> datetime:
    return datetime.fromtimestamp(record.timestamp()[1] / 1000, tz=timezone.utc)


class DeadLetterQueue:
    """The DLQ topics of one cluster: read them to their current end, replay from them."""

    def __init__(self, bootstrap: str, client: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self._config = {"bootstrap.servers": bootstrap, **(client or {})}
        self._timeout = timeout

    def read(self, topics: Iterable[str] = SOURCE_TOPICS) -> list[DeadLetter]:
        """Every dead letter of the given source topics, oldest first per partition, with its replay if any."""
        letters: dict[tuple[str, int, int], DeadLetter] = {}
        replays: dict[tuple[str, int, int], Replay] = {}
        for record in self._records([f"{topic}.dlq" for topic in topics]):
            headers = _headers(record)
            if REPLAY_OF in headers:
                of = _int(headers[REPLAY_OF])
                if of is not None:
                    replays[record.topic(), record.partition(), of] = Replay(_instant(record), headers.get(REPLAYED_BY, ""))
                continue
            letters[record.topic(), record.partition(), record.offset()] = DeadLetter(
                record.topic(), record.partition(), record.offset(), _instant(record), record.key(), record.value(),
                headers.get("dlq.topic", record.topic().removesuffix(".dlq")), _int(headers.get("dlq.partition")),
                _int(headers.get("dlq.offset")), headers.get("dlq.consumer", ""), headers.get("dlq.error", ""),
            )
        return [
            DeadLetter(**{**letter.__dict__, "replay": replays.get(place)}) if place in replays else letter
            for place, letter in letters.items()
        ]

    def _records(self, topics: list[str]) -> Iterator:
        """Every committed record of `topics`, from the start to the end they have now."""
        consumer = Consumer({**self._config, "group.id": "handoffctl-dlq", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "enable.partition.eof": False})
        try:
            metadata = consumer.list_topics(timeout=self._timeout)
            missing = [topic for topic in topics if topic not in metadata.topics]
            if missing:
                raise DeadLetterError(f"topic {', '.join(missing)} does not exist; create the project's topics first")
            ends: dict[tuple[str, int], int] = {}
            for topic in topics:
                for partition in metadata.topics[topic].partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=self._timeout)
                    if high > low:
                        ends[topic, partition] = high
            if not ends:
                return
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic, partition in ends])
            deadline = time.monotonic() + self._timeout
            while ends:
                record = consumer.poll(0.2)
                if record is None:
                    # Transaction markers take offsets but yield no record: compare positions.
                    positions = consumer.position([TopicPartition(t, p) for t, p in ends])
                    for tp in positions:
                        if tp.offset >= ends[tp.topic, tp.partition]:
                            ends.pop((tp.topic, tp.partition))
                    if ends and time.monotonic() > deadline:
                        raise DeadLetterError(f"{', '.join(topics)} not read to the end within {self._timeout:.0f} s")
                    continue
                if record.error():
                    raise DeadLetterError(f"reading {record.topic()}: {record.error()}")
                place = record.topic(), record.partition()
                if place not in ends:
                    continue
                if record.offset() + 1 >= ends[place]:
                    ends.pop(place)
                yield record
        except KafkaException as error:
            raise DeadLetterError(str(error.args[0])) from None
        finally:
            consumer.close()

    def replay(self, ids: Iterable[str], actor: str, now: datetime) -> tuple[list[DeadLetter], list[DeadLetter]]:
        """Send the named dead letters back to their source topics; (replayed, skipped as already replayed).

        Unknown ids raise DeadLetterError before anything is written.
        """
        wanted = [parse_id(text) for text in ids]
        # murmur2: the partition Kafka's default partitioner gives the key (README: contacts.v1).
        producer = Producer({**self._config, "transactional.id": TRANSACTIONAL_ID, "partitioner": "murmur2_random"})
        try:
            # Fences every earlier replay: any of its transactions still open is aborted, so
            # the markers read next are all the replays that will ever have happened.
            producer.init_transactions(self._timeout)
            topics = sorted({topic.removesuffix(".dlq") for topic, _, _ in wanted})
            known = {(letter.dlq_topic, letter.partition, letter.offset): letter for letter in self.read(topics)}
            unknown = [f"{t}:{p}:{o}" for t, p, o in wanted if (t, p, o) not in known]
            if unknown:
                raise DeadLetterError(f"no dead letter {', '.join(unknown)}")
            chosen = [known[place] for place in dict.fromkeys(wanted)]
            fresh = [letter for letter in chosen if letter.replay is None]
            if fresh:
                producer.begin_transaction()
                for letter in fresh:
                    self._send_back(producer, letter, actor, now)
                producer.commit_transaction(self._timeout)
        except KafkaException as error:
            raise DeadLetterError(f"replay not written: {error.args[0]}") from None
        finally:
            producer.flush(self._timeout)
        done = Replay(now, actor)
        return ([DeadLetter(**{**letter.__dict__, "replay": done}) for letter in fresh],
                [letter for letter in chosen if letter.replay is not None])

    @staticmethod
    def _send_back(producer: Producer, letter: DeadLetter, actor: str, now: datetime) -> None:
        audit = [(REPLAYED_BY, actor.encode()), (REPLAYED_AT, now.isoformat().encode())]
        producer.produce(letter.source_topic, key=letter.key, value=letter.value,
                         headers=[(REPLAYED_FROM, letter.id.encode()), *audit])
        producer.produce(letter.dlq_topic, key=None, value=None, partition=letter.partition,
                         headers=[(REPLAY_OF, str(letter.offset).encode()), *audit])
