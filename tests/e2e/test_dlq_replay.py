"""`handoffctl dlq` against the dead letters the running services write: a malformed record
on handoff.events.v1 is listed under each consumer that set it aside, and a replay sends it
back once, where every consumer meets it again (and, still malformed, sets it aside anew)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from common.topics import HANDOFF_EVENTS
from devstack.stack import Stack
from handoffctl.main import app
from tests.support import pseudonym, running_stack, wait_for

pytestmark = pytest.mark.e2e

CONSUMERS = ["handoff-legs", "handoff-notify", "handoff-sla"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("dlq-replay")) as stack:
        yield stack


def dlq(stack: Stack, *args: str) -> dict:
    result = CliRunner().invoke(app, ["dlq", *args, "--json", "--kafka-bootstrap", stack.bootstrap],
                                env={"KAFKA_SECURITY_PROTOCOL": None})
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def letters_of(stack: Stack, key: str) -> list[dict]:
    listed = dlq(stack, "list", "--topic", HANDOFF_EVENTS.name, "--reason", "HandoffEvent")["dead_letters"]
    return [letter for letter in listed if letter["key"] == key]


def test_a_replayed_dead_letter_reaches_every_consumer_again_once(stack: Stack) -> None:
    # given garbage on handoff.events.v1, set aside by each of its consumers
    key = pseudonym()
    with KafkaProducer(bootstrap_servers=stack.bootstrap) as producer:
        producer.send(HANDOFF_EVENTS.name, key=key.encode(), value=b"\xff\x00 not protobuf " + uuid.uuid4().bytes
                      ).get(timeout=10)
    assert wait_for(lambda: len(letters_of(stack, key)) == 3, timeout=60), letters_of(stack, key)
    first = letters_of(stack, key)
    [by_sla] = [letter for letter in first if letter["consumer"] == "handoff-sla"]

    # when an operator replays sla's copy, twice
    replayed = dlq(stack, "replay", by_sla["id"], "--by", "ops-test")
    again = dlq(stack, "replay", by_sla["id"], "--by", "ops-test")

    # then the record went back once: each consumer set it aside once more, and only once
    assert wait_for(lambda: len(letters_of(stack, key)) == 6, timeout=60), letters_of(stack, key)
    later = letters_of(stack, key)
    assert sorted(letter["consumer"] for letter in first) == CONSUMERS
    assert [letter["id"] for letter in replayed["replayed"]] == [by_sla["id"]] and replayed["skipped"] == []
    assert again["replayed"] == [] and [letter["id"] for letter in again["skipped"]] == [by_sla["id"]]
    assert sorted(letter["consumer"] for letter in later) == sorted(CONSUMERS * 2)
    assert [letter["id"] for letter in later if letter["replayed"]] == [by_sla["id"]]
    assert not wait_for(lambda: len(letters_of(stack, key)) > 6, timeout=5)
    assert all(stack.services[name].is_running() for name in ("handoff", "sla", "notify"))
