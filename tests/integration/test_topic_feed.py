"""common.feed.TopicFeed on the real broker, where a partition's end is not simply its last
record + 1: transaction markers, aborted records, records deleted from the start."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import codec
from common.feed import Raw, TopicFeed
from common.kafkaio import MissingTopic
from common.topics import TopicSpec
from notify.adapters.api_codec import encode_silence
from tests.integration.test_silence_feed_dead_letters import a_silence
from tests.support import native_threads, threads_left

pytestmark = pytest.mark.integration
START_LIMIT_S = 30.0


@pytest.fixture
def topic(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> TopicSpec:
    """A topic of this test alone (two partitions) that carries silences."""
    name = f"feed-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    monkeypatch.setitem(codec.VALUE_TYPES, name, codec.VALUE_TYPES["notify.silences.v1"])
    return TopicSpec(name, "silence_id", "Silence", "notify", ("notify",))


def write(bootstrap: str, topic: str, partition: int, count: int, commit: bool = True) -> list[str]:
    """`count` silences in one transaction on `partition`, committed or aborted; their ids."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"feed-test-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    silences = [a_silence() for _ in range(count)]
    for silence in silences:
        producer.produce(topic, encode_silence(silence), silence.silence_id.encode(), partition=partition)
    producer.flush(30)  # on the broker before the end: an abort would drop them unsent otherwise
    (producer.commit_transaction if commit else producer.abort_transaction)(30)
    return [silence.silence_id for silence in silences]


class Recorded:
    """What a feed applied (silence ids) and what its observer was told."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.observed: list[tuple[Raw, str]] = []

    def apply(self, spec: TopicSpec, message) -> None:
        self.applied.append(message.silence_id)

    def observe(self, raw: Raw, message) -> None:
        self.observed.append((raw, message.silence_id))


async def started(bootstrap: str, topic: TopicSpec, recorded: Recorded) -> TopicFeed:
    feed = TopicFeed(bootstrap, [topic], recorded.apply, name="feed-test", observe=recorded.observe)
    await asyncio.wait_for(feed.start(), START_LIMIT_S)
    return feed


def test_a_partition_holding_only_an_aborted_transaction_does_not_hold_the_feed_back(
        kafka_bootstrap: str, topic: TopicSpec) -> None:
    # given a partition whose only records were aborted (and so are followed by a marker)
    write(kafka_bootstrap, topic.name, 0, 3, commit=False)
    committed = write(kafka_bootstrap, topic.name, 1, 2)

    async def scenario() -> Recorded:
        recorded = Recorded()
        feed = await started(kafka_bootstrap, topic, recorded)
        try:
            # then the feed is caught up, whether or not it counts open transactions
            await feed.caught_up(timeout=START_LIMIT_S)
            await feed.caught_up(timeout=START_LIMIT_S, include_open=True)
        finally:
            await feed.stop()
        return recorded

    recorded = asyncio.run(scenario())
    assert recorded.applied == committed


def test_records_deleted_from_the_start_of_a_partition_do_not_hold_a_new_feed_back(
        kafka_bootstrap: str, topic: TopicSpec) -> None:
    # given a partition whose records were all deleted (its first offset is now its end)
    write(kafka_bootstrap, topic.name, 0, 2)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    gone = TopicPartition(topic.name, 0, 3)  # two records and the commit marker
    admin.delete_records([gone])[gone].result(30)

    async def scenario() -> tuple[list[str], Recorded]:
        recorded = Recorded()
        feed = await started(kafka_bootstrap, topic, recorded)  # then it starts (it is caught up)
        try:
            # and what is written later is applied by the time caught_up() returns (counting the
            # transactions under way: its markers may not be written yet when its commit returns)
            later = await asyncio.to_thread(write, kafka_bootstrap, topic.name, 0, 1)
            await feed.caught_up(timeout=START_LIMIT_S, include_open=True)
        finally:
            await feed.stop()
        return later, recorded

    later, recorded = asyncio.run(scenario())
    assert recorded.applied == later


def test_the_observer_is_told_where_each_record_was_read(kafka_bootstrap: str, topic: TopicSpec) -> None:
    first = write(kafka_bootstrap, topic.name, 1, 2)
    second = write(kafka_bootstrap, topic.name, 1, 1)

    async def scenario() -> Recorded:
        recorded = Recorded()
        feed = await started(kafka_bootstrap, topic, recorded)
        try:
            await feed.caught_up(timeout=START_LIMIT_S, include_open=True)  # the last markers written
        finally:
            await feed.stop()
        return recorded

    recorded = asyncio.run(scenario())
    # offsets 0 and 1, the first transaction's marker at 2, then 3
    assert recorded.observed == [(Raw(1, 0, first[0].encode()), first[0]), (Raw(1, 1, first[1].encode()), first[1]),
                                 (Raw(1, 3, second[0].encode()), second[0])]


def test_a_feed_of_a_topic_that_does_not_exist_says_so_and_leaves_no_thread_behind(kafka_bootstrap: str) -> None:
    # given a topic the project never created
    missing = TopicSpec(f"feed-missing-{uuid.uuid4().hex[:12]}", "silence_id", "Silence", "notify", ("notify",))

    async def scenario() -> str:
        feed = TopicFeed(kafka_bootstrap, [missing], Recorded().apply, name="feed-missing")
        # when the feed starts
        with pytest.raises(MissingTopic) as refused:
            await asyncio.wait_for(feed.start(), START_LIMIT_S)
        return str(refused.value)

    before = native_threads()
    message = asyncio.run(scenario())
    # then the error names the topic, and the failed start closed its client (librdkafka's
    # threads are the process's, not Python's)
    assert message == f"topic {missing.name} does not exist; create the project's topics first"
    assert threads_left(before) == set()
