"""A contact written to another partition than its customer's (a producer with librdkafka's
default partitioner, say) is forwarded to the customer's partition, counted, and examined
there against the customer's earlier contact."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import Producer
from handoff.v1 import contacts_pb2, types_pb2

from bench.probes import scrape, total
from common.codec import new_envelope, to_timestamp
from common.kafkaio import key_partition
from common.localkafka import LocalKafka, create_topics
from common.topics import CONTACTS, REPEAT_CONTACTS
from devstack.stack import Stack
from tests.support import around_the_clock, read_records, write_policies

pytestmark = pytest.mark.e2e
PARTITIONS = 4


def contact(customer_ref: str, contact_id: str, at: datetime) -> bytes:
    return contacts_pb2.ContactRecorded(
        envelope=new_envelope("telephony", at, at), contact_id=contact_id, customer_ref=customer_ref,
        channel=types_pb2.CONTACT_CHANNEL_CALL, contacted_at=to_timestamp(at),
    ).SerializeToString()


def test_a_contact_on_the_wrong_partition_is_forwarded_and_still_meets_the_customers_history(tmp_path: Path) -> None:
    with LocalKafka(tmp_path / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(tmp_path, write_policies(tmp_path, around_the_clock("1h", "8h")), bootstrap=kafka.bootstrap,
                      env={"SLA_ROLE": "worker"})
        try:
            sla = stack.start_service("sla")
            # given a customer's call an hour ago, on the customer's partition
            customer = f"cust-{uuid.uuid4().hex[:8]}"
            right = key_partition(customer.encode(), PARTITIONS)
            wrong = (right + 1) % PARTITIONS
            now = datetime.now(timezone.utc)
            producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
            producer.produce(CONTACTS.name, key=customer, value=contact(customer, "c-1", now - timedelta(hours=1)),
                             partition=right)
            # when the next call is written to another partition
            producer.produce(CONTACTS.name, key=customer, value=contact(customer, "c-2", now), partition=wrong)
            assert producer.flush(30) == 0
            del producer  # its threads would otherwise keep calling the broker after it stops

            # then it is forwarded to the customer's partition, saying where it came from
            contacts = read_records(kafka.bootstrap, CONTACTS.name, lambda found: len(found) >= 3, timeout=60)
            placed = [(r.partition, dict(r.headers or []).get("forwarded.from.partition")) for r in contacts]
            assert sorted(placed, key=str) == sorted([(right, None), (wrong, None), (right, str(wrong).encode())],
                                                     key=str)
            # and examined there: a repeat of the first call
            [repeat] = [contacts_pb2.RepeatContactDetected.FromString(r.value) for r in
                        read_records(kafka.bootstrap, REPEAT_CONTACTS.name, lambda found: len(found) >= 1, timeout=60)]
            assert (repeat.contact_id, repeat.previous_contact_id) == ("c-2", "c-1")
            # and counted
            samples = scrape(sla.endpoints["metrics"])
            assert total(samples, "handoff_misplaced_records_total") == 1
        finally:
            stack.stop()
