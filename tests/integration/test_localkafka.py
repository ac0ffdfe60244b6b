"""The local broker every integration test relies on: it starts, holds the project's
topics, carries records, refuses to invent topics, and leaves no process behind."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaTimeoutError

from common.localkafka import ARCHIVE_UNUSED_DAYS, LocalKafka, class_archive, create_topics, ensure_jars
from common.topics import CONTACTS, SILENCES, all_topic_names, changelog_topic_names

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One broker for the module, with the project's topics already created."""
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as broker:
        create_topics(broker.bootstrap)
        yield broker


def partition_counts(bootstrap: str) -> dict[str, int]:
    """Every topic on the broker and how many partitions it has."""
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        return {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics()}


def is_alive(pid: int) -> bool:
    """Whether a process with this id still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_catalogue_topic_and_its_dlq_exists_with_four_partitions(kafka: LocalKafka) -> None:
    # given a started broker on which create_topics ran (fixture)
    # when we describe its topics
    counts = partition_counts(kafka.bootstrap)
    # then each catalogue topic and each dead-letter topic has four partitions
    expected = dict.fromkeys(all_topic_names(), 4)
    assert {name: counts.get(name) for name in expected} == expected


def test_a_produced_record_is_consumed_back(kafka: LocalKafka) -> None:
    # given a record produced to the contacts topic
    value = uuid.uuid4().bytes
    with KafkaProducer(bootstrap_servers=kafka.bootstrap) as producer:
        sent = producer.send(CONTACTS.name, key=b"customer-1", value=value).get(timeout=30)
    # when a consumer reads from that partition and offset
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    partition = TopicPartition(CONTACTS.name, sent.partition)
    consumer.assign([partition])
    consumer.seek(partition, sent.offset)
    received = []
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        received = [record for batch in consumer.poll(timeout_ms=500).values() for record in batch]
    consumer.close()
    # then it gets the same key and value back
    assert [(record.key, record.value) for record in received[:1]] == [(b"customer-1", value)]


def test_an_unknown_topic_is_not_auto_created(kafka: LocalKafka) -> None:
    # given a topic name nobody created; clients ask for auto-creation by default
    unknown = f"unknown.{uuid.uuid4().hex}"
    # when a producer sends to it and a consumer asks for its metadata
    with KafkaProducer(bootstrap_servers=kafka.bootstrap, max_block_ms=2000) as producer:
        with pytest.raises(KafkaTimeoutError):
            producer.send(unknown, value=b"lost").get(timeout=5)
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
    consumer.topics()  # a metadata fetch for all topics
    metadata = consumer.partitions_for_topic(unknown)
    consumer.close()
    # then the broker still does not have it
    assert not metadata
    assert unknown not in partition_counts(kafka.bootstrap)


def topic_configs(bootstrap: str, names: list[str], keys: set[str]) -> dict[str, dict[str, str]]:
    """The settings `keys` of each topic in `names`, as the broker reports them."""
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        answers = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    return {name: {key: config["value"] for key, config in configs.items() if key in keys}
            for name, configs in answers["topic"].items()}


def test_changelogs_are_compacted_and_roll_hourly(kafka: LocalKafka) -> None:
    # given the topics created by create_topics (fixture)
    keys = {"cleanup.policy", "segment.ms", "delete.retention.ms"}
    # when the broker describes their settings
    changelogs = topic_configs(kafka.bootstrap, changelog_topic_names(), keys)
    silences = topic_configs(kafka.bootstrap, [SILENCES.name], keys)
    # then every changelog is compacted and rolls a segment, and keeps a tombstone, an hour
    expected = {"cleanup.policy": "compact", "segment.ms": "3600000", "delete.retention.ms": "3600000"}
    assert changelogs == dict.fromkeys(changelog_topic_names(), expected)
    # and the catalogue's compacted topic is compacted, with the broker's segments
    assert silences == {SILENCES.name: {"cleanup.policy": "compact"}}


def test_creating_topics_twice_is_harmless(kafka: LocalKafka) -> None:
    # given the topics already exist (fixture)
    # when create_topics runs again
    create_topics(kafka.bootstrap)
    # then it succeeds and every topic still has four partitions
    counts = partition_counts(kafka.bootstrap)
    assert all(counts.get(name) == 4 for name in all_topic_names())


def test_existing_topics_with_another_partition_count_are_an_error(kafka: LocalKafka) -> None:
    # given topics created with four partitions (fixture)
    # when a caller expects six
    # then create_topics refuses loudly instead of leaving topics that are not co-partitioned
    with pytest.raises(RuntimeError, match="do not have 6 partitions"):
        create_topics(kafka.bootstrap, partitions=6)


def command_line(pid: int) -> list[str]:
    """The arguments a running process was started with."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_stop_ends_the_broker_process_and_shares_its_class_archive(tmp_path: Path) -> None:
    # given a running broker of its own, on Kafka's jars seen through a directory of its own
    # (so that no class-data archive exists for them yet)
    libs = tmp_path / "kafka" / "libs"
    libs.parent.mkdir()
    libs.symlink_to(ensure_jars())
    archive = class_archive(libs, shutil.which("java"))
    broker = LocalKafka(tmp_path / "first", libs=libs).start()
    pid = broker.pid
    assert pid is not None and is_alive(pid)
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'first' / 'classes.jsa'}" in command_line(pid)
    # and beside where it goes, the archives of two other Java runtimes: one unused for longer
    # than ARCHIVE_UNUSED_DAYS, one used lately
    archive.parent.mkdir()
    stale, recent = archive.parent / "stale.jsa", archive.parent / "recent.jsa"
    for other, days in ((stale, ARCHIVE_UNUSED_DAYS + 1), (recent, ARCHIVE_UNUSED_DAYS - 1)):
        other.write_bytes(b"archive")
        then = time.time() - days * 86_400
        os.utime(other, (then, then))
    # when it is stopped
    broker.stop()
    # then its process is gone, its log shows it started, and the archive its JVM wrote is shared
    assert not is_alive(pid)
    assert (tmp_path / "first" / "broker.log").stat().st_size > 0
    assert archive.exists() and not (tmp_path / "first" / "classes.jsa").exists()
    # and of the other two, only the one unused for too long is removed
    assert not stale.exists() and recent.exists()
    # and the next broker maps it, the JVM finding nothing in it to refuse, and serves, its
    # start marking the archive used
    os.utime(archive, (0, 0))
    with LocalKafka(tmp_path / "second", libs=libs) as second:
        assert f"-XX:SharedArchiveFile={archive}" in command_line(second.pid)
        assert time.time() - archive.stat().st_mtime < 600
        create_topics(second.bootstrap)
    assert "[cds" not in (tmp_path / "second" / "broker.log").read_text()


def test_the_bench_tells_the_brokers_jit_compiling_apart_from_its_other_cpu(kafka: LocalKafka) -> None:
    """bench.cpu.compiler_seconds reads the CPU of the broker's HotSpot compiler threads: a
    started broker has compiled something, and its compiler is a part of its whole CPU."""
    from bench.cpu import compiler_seconds, cpu_seconds

    assert kafka.pid is not None
    compiling, whole = compiler_seconds(kafka.pid), cpu_seconds(kafka.pid)
    assert compiling is not None and whole is not None
    assert 0 < compiling <= whole
    assert compiler_seconds(os.getpid()) == 0.0  # a Python process has no such threads
