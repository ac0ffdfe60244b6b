"""notify's silences read model on the real broker: a record of notify.silences.v1 that it
cannot read goes to notify.silences.v1.dlq with its reason, once, however often the feed
starts again; the good records around it are applied."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from common.feed import TopicFeed
from common.topics import SILENCES
from notify.adapters.api_codec import encode_silence
from notify.adapters.silence_store import SilenceStore
from notify.adapters.writer import RecordWriter
from notify.domain.routing import Matcher
from notify.domain.silences import Silence
from tests.support import read_records

pytestmark = pytest.mark.integration


def a_silence() -> Silence:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return Silence(silence_id=f"s-{uuid.uuid4()}", matchers=(Matcher("department", "=", "billing"),),
                   starts_at=now, ends_at=now + timedelta(hours=1), created_by="admin", comment="")


async def write(bootstrap: str, records: list[tuple[str, bytes]]) -> list[int]:
    """Write `records` (key, value) to notify.silences.v1; their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [(await producer.send_and_wait(SILENCES.name, value, key=key.encode())).offset
                for key, value in records]
    finally:
        await producer.stop()


async def start_and_stop_a_feed(bootstrap: str) -> SilenceStore:
    """A notify replica's silences feed, started (caught up) and stopped again."""
    store, writer = SilenceStore(), RecordWriter(bootstrap)
    await writer.start()
    feed = TopicFeed(bootstrap, [SILENCES], store.apply, name="notify-silences", dead_letter=writer.send_dead_letter)
    try:
        await feed.start()
    finally:
        await feed.stop()
        await writer.stop()
    return store


def dead_letters_of(bootstrap: str, key: str) -> list:
    return [r for r in read_records(bootstrap, SILENCES.dlq, until=lambda _: False, timeout=3)
            if r.key == key.encode()]


def test_an_unreadable_silence_goes_to_the_dead_letter_topic_once_with_its_reason(kafka_bootstrap: str) -> None:
    # given a record that is no Silence, between two good silences
    before, after, garbage_key = a_silence(), a_silence(), f"garbage-{uuid.uuid4()}"
    offsets = asyncio.run(write(kafka_bootstrap, [
        (before.silence_id, encode_silence(before)),
        (garbage_key, b"\xff\xff not a silence"),
        (after.silence_id, encode_silence(after)),
    ]))
    # when a replica's feed reads the topic, and then starts again (a restart, or a second replica)
    store = asyncio.run(start_and_stop_a_feed(kafka_bootstrap))
    asyncio.run(start_and_stop_a_feed(kafka_bootstrap))
    # then the good silences are applied and the bad record is in the DLQ once, untouched, with why
    assert store.get(before.silence_id) is not None and store.get(after.silence_id) is not None
    [letter] = dead_letters_of(kafka_bootstrap, garbage_key)
    headers = {name: value.decode() for name, value in letter.headers}
    assert letter.value == b"\xff\xff not a silence"
    assert headers["dlq.topic"] == SILENCES.name and headers["dlq.offset"] == str(offsets[1])
    assert headers["dlq.consumer"] == "notify-silences"
    assert "not a Silence" in headers["dlq.error"]


def test_a_record_the_read_model_fails_on_is_skipped_with_where_it_failed(kafka_bootstrap: str) -> None:
    # given a read model with a bug that one silence meets, between two good silences
    before, poison, after = a_silence(), a_silence(), a_silence()
    store = SilenceStore()

    def apply(spec, message) -> None:
        if message.silence_id == poison.silence_id:
            raise RuntimeError("a bug in the read model")
        store.apply(spec, message)

    skipped = REGISTRY.get_sample_value("handoff_read_model_failures_total",
                                        {"read_model": "buggy-silences", "topic": SILENCES.name}) or 0.0
    asyncio.run(write(kafka_bootstrap, [(s.silence_id, encode_silence(s)) for s in (before, poison, after)]))

    async def follow() -> None:
        writer = RecordWriter(kafka_bootstrap)
        await writer.start()
        feed = TopicFeed(kafka_bootstrap, [SILENCES], apply, name="buggy-silences", dead_letter=writer.send_dead_letter)
        try:
            await feed.start()
            # when another silence is written after it, the feed is still following
            later = a_silence()
            await write(kafka_bootstrap, [(later.silence_id, encode_silence(later))])
            await feed.caught_up(timeout=30)
            assert store.get(later.silence_id) is not None
        finally:
            await feed.stop()
            await writer.stop()

    asyncio.run(follow())
    # then the silences around it are applied, and it is in the DLQ with the error and where it was raised
    assert store.get(before.silence_id) is not None and store.get(after.silence_id) is not None
    assert store.get(poison.silence_id) is None
    [letter] = dead_letters_of(kafka_bootstrap, poison.silence_id)
    error = dict(letter.headers)["dlq.error"].decode()
    assert error.startswith("RuntimeError: a bug in the read model at test_silence_feed_dead_letters.py:")
    assert REGISTRY.get_sample_value("handoff_read_model_failures_total",
                                     {"read_model": "buggy-silences", "topic": SILENCES.name}) == skipped + 1


def test_a_feed_has_applied_a_silence_written_before_caught_up_returns(kafka_bootstrap: str) -> None:
    """A feed's fetches wait long at the broker when nothing comes: a silence written while it
    follows is applied by the time `caught_up()` returns, as a read after that write needs,
    and so is each of several written one after the other."""
    silences = [a_silence() for _ in range(3)]
    ids = [s.silence_id for s in silences]

    async def scenario() -> list[list[str]]:
        store = SilenceStore()
        feed = TopicFeed(kafka_bootstrap, [SILENCES], store.apply, name="silences")
        await feed.start()
        seen = []
        try:
            for silence in silences:
                await write(kafka_bootstrap, [(silence.silence_id, encode_silence(silence))])
                await feed.caught_up()
                seen.append(sorted(s.silence_id for s in store.all(include_expired=True, at=silence.starts_at)
                                   if s.silence_id in ids))
        finally:
            await feed.stop()
        return seen

    assert asyncio.run(scenario()) == [sorted(ids[:1]), sorted(ids[:2]), sorted(ids)]
