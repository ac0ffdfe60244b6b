"""`handoffctl dlq` on a real broker: dead letters listed by topic, consumer, time and reason,
shown with their value, and replayed to their source topic once, however often replay runs."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from common.codec import new_envelope
from common.dlq import dead_letter_headers
from common.topics import CONTACTS, HANDOFF_EVENTS
from handoff.v1 import contacts_pb2
from handoffctl.main import app
from tests.support import read_records

pytestmark = pytest.mark.integration


def contact_bytes(customer_ref: str) -> bytes:
    at = datetime.now(timezone.utc)
    return contacts_pb2.ContactRecorded(envelope=new_envelope("telephony", at, at), contact_id=str(uuid.uuid4()),
                                        customer_ref=customer_ref).SerializeToString()


def dead_letter(bootstrap: str, topic, key: str, value: bytes, reason: str, consumer: str) -> None:
    """Write a dead letter as the consumers do (common.dlq's headers)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    headers = dead_letter_headers(topic, 1, 42, reason, consumer)
    producer.send(topic.dlq, key=key.encode(), value=value, headers=headers).get(15)
    producer.close()


def cli(bootstrap: str, *args: str) -> dict:
    result = CliRunner().invoke(app, ["dlq", *args, "--json", "--kafka-bootstrap", bootstrap],
                                env={"KAFKA_SECURITY_PROTOCOL": None})
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def replayed_copies(bootstrap: str, letter_id: str, at_least: int = 1) -> list:
    """Records of the source topic whose audit header names `letter_id`."""

    def copies(records: list) -> list:
        return [r for r in records if (("dlq.replayed-from", letter_id.encode()) in (r.headers or []))]

    return copies(read_records(bootstrap, letter_id.split(".dlq")[0], lambda rs: len(copies(rs)) >= at_least,
                               timeout=10))


def test_list_filters_by_topic_consumer_time_and_reason(kafka_bootstrap: str) -> None:
    consumer = f"group-{uuid.uuid4().hex[:8]}"
    before = datetime.now(timezone.utc).isoformat()
    dead_letter(kafka_bootstrap, CONTACTS, "c-1", b"\x00garbage", "not a ContactRecorded: truncated", consumer)
    dead_letter(kafka_bootstrap, CONTACTS, "c-2", contact_bytes("c-2"), "unknown department: x", consumer)
    dead_letter(kafka_bootstrap, HANDOFF_EVENTS, "c-3", b"\x01", "KeyError: 'legs'", consumer)

    everything = cli(kafka_bootstrap, "list", "--consumer", consumer)["dead_letters"]
    contacts = cli(kafka_bootstrap, "list", "--consumer", consumer, "--topic", "contacts.v1")["dead_letters"]
    by_reason = cli(kafka_bootstrap, "list", "--consumer", consumer, "--reason", "UNKNOWN DEPARTMENT")["dead_letters"]
    later = cli(kafka_bootstrap, "list", "--consumer", consumer, "--since", "2999-01-01T00:00:00Z")["dead_letters"]
    earlier = cli(kafka_bootstrap, "list", "--consumer", consumer, "--until", before)["dead_letters"]

    assert sorted(letter["reason"] for letter in everything) == [
        "KeyError: 'legs'", "not a ContactRecorded: truncated", "unknown department: x"]
    assert {letter["source_topic"] for letter in contacts} == {"contacts.v1"} and len(contacts) == 2
    assert [letter["reason"] for letter in by_reason] == ["unknown department: x"]
    assert (later, earlier) == ([], [])
    first = everything[0]
    assert (first["consumer"], first["source_partition"], first["source_offset"], first["replayed"]) == (
        consumer, 1, 42, False)
    assert first["id"] == f"{first['dlq_topic']}:{first['partition']}:{first['offset']}"


def test_show_gives_the_key_and_the_decoded_value(kafka_bootstrap: str) -> None:
    consumer = f"group-{uuid.uuid4().hex[:8]}"
    dead_letter(kafka_bootstrap, CONTACTS, "c-show", contact_bytes("c-show"), "unknown department: x", consumer)
    [letter] = cli(kafka_bootstrap, "list", "--consumer", consumer)["dead_letters"]

    shown = cli(kafka_bootstrap, "show", letter["id"])

    assert (shown["key"], shown["reason"], shown["consumer"]) == ("c-show", "unknown department: x", consumer)
    assert 'customer_ref: "c-show"' in shown["decoded"]


def test_replay_sends_a_record_back_once_with_an_audit_header(kafka_bootstrap: str) -> None:
    consumer = f"group-{uuid.uuid4().hex[:8]}"
    value = contact_bytes("c-replay")
    dead_letter(kafka_bootstrap, CONTACTS, "c-replay", value, "unknown department: x", consumer)
    [letter] = cli(kafka_bootstrap, "list", "--consumer", consumer)["dead_letters"]

    first = cli(kafka_bootstrap, "replay", letter["id"], "--by", "ops-alice")
    second = cli(kafka_bootstrap, "replay", letter["id"], "--by", "ops-bob")
    by_filter = cli(kafka_bootstrap, "replay", "--consumer", consumer, "--all-matching")
    [listed] = cli(kafka_bootstrap, "list", "--consumer", consumer)["dead_letters"]

    assert [r["id"] for r in first["replayed"]] == [letter["id"]] and first["skipped"] == []
    assert second["replayed"] == [] and [s["replayed_by"] for s in second["skipped"]] == ["ops-alice"]
    assert by_filter == {"replayed": [], "skipped": []}
    assert (listed["replayed"], listed["replayed_by"]) == (True, "ops-alice")
    [copy] = replayed_copies(kafka_bootstrap, letter["id"], at_least=2)
    headers = dict(copy.headers)
    assert (copy.key, copy.value, headers["dlq.replayed-by"]) == (b"c-replay", value, b"ops-alice")


def test_concurrent_replays_of_one_record_write_it_once(kafka_bootstrap: str) -> None:
    consumer = f"group-{uuid.uuid4().hex[:8]}"
    dead_letter(kafka_bootstrap, CONTACTS, "c-race", contact_bytes("c-race"), "unknown department: x", consumer)
    [letter] = cli(kafka_bootstrap, "list", "--consumer", consumer)["dead_letters"]
    command = [sys.executable, "-m", "handoffctl.main", "dlq", "replay", letter["id"], "--json",
               "--kafka-bootstrap", kafka_bootstrap]

    processes = [subprocess.Popen([*command, "--by", f"ops-{n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for n in range(3)]
    outcomes = [(process.wait(120), *process.communicate()) for process in processes]
    final = cli(kafka_bootstrap, "replay", letter["id"])

    succeeded = [json.loads(out) for code, out, _ in outcomes if code == 0]
    # The last to start fences the others: it always succeeds, a fenced one says so.
    assert succeeded and all("replay not written" in err for code, _, err in outcomes if code != 0)
    assert sum(len(found["replayed"]) for found in succeeded) + len(final["replayed"]) == 1
    assert len(replayed_copies(kafka_bootstrap, letter["id"], at_least=2)) == 1


def test_an_unknown_id_is_refused_and_nothing_is_written(kafka_bootstrap: str) -> None:
    result = CliRunner().invoke(app, ["dlq", "replay", "contacts.v1.dlq:0:999999999",
                                      "--kafka-bootstrap", kafka_bootstrap])

    assert result.exit_code == 1
    assert "no dead letter contacts.v1.dlq:0:999999999" in result.stderr
