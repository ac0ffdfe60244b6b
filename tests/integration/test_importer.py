"""Historical import against the real broker: what `handoffctl import` writes, read back
from handoff.events.v1 and contacts.v1; nothing written when a row is bad; the same ids
when imported twice; an interrupted import that says what it wrote and completes on re-run."""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from common.codec import decode, from_timestamp
from common.ids import derived_event_id
from common.topics import CONTACTS, HANDOFF_EVENTS, TopicSpec
from handoff_svc.adapters.csvimport import CONTACT_COLUMNS, HANDOFF_COLUMNS
from handoff_svc.entrypoints.importer import ImportInterrupted, ImportRejected, import_files
from tests.support import unique

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def leg(handoff_id: str, customer: str, created: datetime, **later: object) -> dict:
    row = dict(handoff_id=handoff_id, case_id=f"{handoff_id}-case", customer_ref=customer, department="billing",
               priority="high", category="refund", summary="Refund, not received", created_at=created.isoformat())
    row.update({column: value.isoformat() if isinstance(value, datetime) else value for column, value in later.items()})
    return row


def end_offsets(bootstrap: str, topic: TopicSpec) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        return consumer.end_offsets([TopicPartition(topic.name, p) for p in consumer.partitions_for_topic(topic.name)])
    finally:
        consumer.close()


def records_since(bootstrap: str, topic: TopicSpec, start: dict[TopicPartition, int], prefix: str, count: int,
                  timeout: float = 30) -> list:
    """(record, decoded value) of `topic` from the `start` offsets on, whose key starts with
    `prefix`: read until `count` are found or `timeout` runs out."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign(list(start))
    for partition, offset in start.items():
        consumer.seek(partition, offset)
    found: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                found += [(r, decode(topic, r.value)) for r in batch if r.key.decode().startswith(prefix)]
    finally:
        consumer.close()
    return found


def test_imported_events_carry_their_original_times_source_import_and_the_customer_key(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # given a transferred case for one customer, a cancelled and an open leg for another, and contacts
    run = unique("imp")
    alice, bob = f"{run}-alice", f"{run}-bob"
    h1, h2, h3, h4 = (f"{run}-h{n}" for n in range(1, 5))
    handoffs = write_csv(tmp_path / "legs.csv", HANDOFF_COLUMNS, [
        leg(h1, alice, T0.astimezone(CET), acknowledged_at=T0 + timedelta(minutes=10),
            transferred_to="field-service", next_handoff_id=h2),
        {**leg(h2, alice, T0 + timedelta(hours=1), resolved_at=T0 + timedelta(hours=5), previous_handoff_id=h1),
         "department": "field-service", "case_id": f"{h1}-case"},
        leg(h3, bob, T0 + timedelta(minutes=30), cancelled_at=T0 + timedelta(hours=2)),
        leg(h4, bob, T0 + timedelta(hours=3)),
    ])
    contacts = write_csv(tmp_path / "contacts.csv", CONTACT_COLUMNS, [
        dict(contact_id=f"{run}-k1", customer_ref=alice, case_id=f"{h1}-case", channel="call",
             contacted_at=(T0 - timedelta(minutes=5)).isoformat(), reason="refund missing"),
        dict(contact_id=f"{run}-k2", customer_ref=bob, channel="email",
             contacted_at=(T0 + timedelta(hours=4)).astimezone(timezone(timedelta(hours=2))).isoformat()),
    ])
    start = {topic: end_offsets(kafka_bootstrap, topic) for topic in (HANDOFF_EVENTS, CONTACTS)}
    before = datetime.now(timezone.utc)

    # when they are imported
    report = asyncio.run(import_files(kafka_bootstrap, handoffs, contacts, progress=False))

    # then each customer's events are on the topic, keyed by customer, in the order they happened
    after = datetime.now(timezone.utc)
    assert (report.legs, report.contacts, report.events) == (4, 2, 10)
    records = records_since(kafka_bootstrap, HANDOFF_EVENTS, start[HANDOFF_EVENTS], run, 8)
    by_customer = {
        customer: [(m.WhichOneof("change"), m.handoff_id, from_timestamp(m.envelope.occurred_at))
                   for r, m in sorted(records, key=lambda pair: pair[0].offset) if r.key == customer.encode()]
        for customer in (alice, bob)
    }
    assert by_customer[alice] == [
        ("created", h1, T0), ("acknowledged", h1, T0 + timedelta(minutes=10)),
        ("transferred", h1, T0 + timedelta(hours=1)), ("created", h2, T0 + timedelta(hours=1)),
        ("resolved", h2, T0 + timedelta(hours=5)),
    ]
    assert by_customer[bob] == [
        ("created", h3, T0 + timedelta(minutes=30)), ("cancelled", h3, T0 + timedelta(hours=2)),
        ("created", h4, T0 + timedelta(hours=3)),
    ]
    for record, message in records:
        assert record.key == message.customer_ref.encode()
        assert message.envelope.source == "import"
        assert before - timedelta(seconds=1) <= from_timestamp(message.envelope.recorded_at) <= after
        assert message.envelope.event_id == derived_event_id("import", message.handoff_id, message.WhichOneof("change"))
    transferred = next(m for _, m in records if m.WhichOneof("change") == "transferred")
    assert (transferred.transferred.to_department, transferred.transferred.new_handoff_id) == ("field-service", h2)
    # and the contacts are on contacts.v1 at the times they happened
    contact_records = records_since(kafka_bootstrap, CONTACTS, start[CONTACTS], run, 2)
    contacts_read = sorted((m.contact_id, r.key.decode(), from_timestamp(m.envelope.occurred_at),
                            from_timestamp(m.contacted_at), m.envelope.source) for r, m in contact_records)
    assert contacts_read == [
        (f"{run}-k1", alice, T0 - timedelta(minutes=5), T0 - timedelta(minutes=5), "import"),
        (f"{run}-k2", bob, T0 + timedelta(hours=4), T0 + timedelta(hours=4), "import"),
    ]


def test_a_file_with_one_bad_row_writes_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    # given good legs and contacts, and one leg acknowledged before it was created
    run = unique("bad")
    rows = [leg(f"{run}-h{n}", f"{run}-c{n}", T0) for n in range(20)]
    rows[13]["acknowledged_at"] = (T0 - timedelta(minutes=1)).isoformat()
    handoffs = write_csv(tmp_path / "legs.csv", HANDOFF_COLUMNS, rows)
    contacts = write_csv(tmp_path / "contacts.csv", CONTACT_COLUMNS, [
        dict(contact_id=f"{run}-k1", customer_ref=f"{run}-c1", channel="call", contacted_at=T0.isoformat())])
    offsets = {topic: end_offsets(kafka_bootstrap, topic) for topic in (HANDOFF_EVENTS, CONTACTS)}

    # when they are imported
    with pytest.raises(ImportRejected) as rejected:
        asyncio.run(import_files(kafka_bootstrap, handoffs, contacts, progress=False))

    # then the bad row is named by line and reason, and neither topic gained a record
    assert rejected.value.listing() == [f"{handoffs}:15: acknowledged_at: is before created_at"]
    assert {topic: end_offsets(kafka_bootstrap, topic) for topic in offsets} == offsets


def test_importing_the_same_files_twice_writes_the_same_event_ids(kafka_bootstrap: str, tmp_path: Path) -> None:
    # given a few legs and a contact, imported once
    run = unique("twice")
    handoffs = write_csv(tmp_path / "legs.csv", HANDOFF_COLUMNS, [
        leg(f"{run}-h{n}", f"{run}-c{n % 3}", T0 + timedelta(minutes=n), acknowledged_at=T0 + timedelta(hours=1))
        for n in range(6)])
    contacts = write_csv(tmp_path / "contacts.csv", CONTACT_COLUMNS, [
        dict(contact_id=f"{run}-k1", customer_ref=f"{run}-c1", channel="chat", contacted_at=T0.isoformat())])
    start = {topic: end_offsets(kafka_bootstrap, topic) for topic in (HANDOFF_EVENTS, CONTACTS)}
    first = asyncio.run(import_files(kafka_bootstrap, handoffs, contacts, progress=False))

    # when they are imported again
    second = asyncio.run(import_files(kafka_bootstrap, handoffs, contacts, progress=False))

    # then every event id was written exactly twice, once by each import
    assert first.events == second.events == 13
    records = (records_since(kafka_bootstrap, HANDOFF_EVENTS, start[HANDOFF_EVENTS], run, 24)
               + records_since(kafka_bootstrap, CONTACTS, start[CONTACTS], run, 2))
    ids = Counter(message.envelope.event_id for _, message in records)
    assert len(ids) == 13
    assert set(ids.values()) == {2}


def test_an_interrupted_import_reports_what_it_wrote_and_running_it_again_completes_it(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # given enough legs that writing them takes a while
    run = unique("cut")
    handoffs = write_csv(tmp_path / "legs.csv", HANDOFF_COLUMNS, [
        leg(f"{run}-h{n}", f"{run}-c{n % 500}", T0 + timedelta(seconds=n), acknowledged_at=T0 + timedelta(days=1),
            resolved_at=T0 + timedelta(days=2))
        for n in range(30_000)])
    start = end_offsets(kafka_bootstrap, HANDOFF_EVENTS)

    # when the import is cancelled (as Ctrl-C does) once its first records reach the broker
    async def import_and_cancel_once_writing() -> None:
        task = asyncio.ensure_future(import_files(kafka_bootstrap, handoffs, None, progress=False))
        loop = asyncio.get_running_loop()
        watcher = threading.Thread(target=_cancel_when_grown, args=(kafka_bootstrap, start, loop, task), daemon=True)
        watcher.start()
        try:
            await task
        finally:
            watcher.join(timeout=60)

    with pytest.raises(ImportInterrupted) as interrupted:
        asyncio.run(import_and_cancel_once_writing())

    # then it says how many events were written, and exactly those are on the topic
    total = 90_000
    assert interrupted.value.total == total
    assert 0 < interrupted.value.written < total
    assert "re-running the same import is safe" in str(interrupted.value)
    # (asking for one more than the count reads the whole topic until the timeout)
    written = records_since(kafka_bootstrap, HANDOFF_EVENTS, start, run, interrupted.value.written + 1, timeout=10)
    assert len(written) == interrupted.value.written
    # and running it again writes every event, so each is on the topic at least once
    report = asyncio.run(import_files(kafka_bootstrap, handoffs, None, progress=False))
    assert report.events == total
    records = records_since(kafka_bootstrap, HANDOFF_EVENTS, start, run, total + interrupted.value.written)
    assert len({message.envelope.event_id for _, message in records}) == total


def _cancel_when_grown(bootstrap: str, start: dict[TopicPartition, int], loop: asyncio.AbstractEventLoop,
                       task: asyncio.Future) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not task.done():
            if sum(consumer.end_offsets(list(start)).values()) > sum(start.values()):
                loop.call_soon_threadsafe(task.cancel)
                return
            time.sleep(0.01)
    finally:
        consumer.close()
