"""Repeat contacts end to end: a leg created and contacts recorded through HandoffService on
the real broker, the sla worker detecting, pricing and counting the repeat, SlaService scoring
it; and a restart of the sla worker mid-stream that neither loses nor repeats a repeat."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import sla_service_pb2 as sla_api
from handoff.v1 import sla_service_pb2_grpc as sla_grpc
from handoff.v1 import types_pb2
from prometheus_client.parser import text_string_to_metric_families

from common.auth import customer_ref_for
from common.ids import derived_event_id
from common.topics import REPEAT_CONTACTS, SLA_EVENTS
from devstack.stack import DEV_CUSTOMER_REF_KEY, Stack
from tests.support import admin_channel, around_the_clock, read_events, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e

TIMEOUT = 15
GRACE = timedelta(seconds=2)
# Acks breach within seconds; a 10-minute repeat window and a 2-second transfer grace, so
# contacts a few seconds apart repeat one another.
POLICIES = around_the_clock("3s", "1h") + """repeat_contacts:
  window: 10m
  transfer_grace: 2s
  currency: EUR
  cost_per_contact: {call: 450, chat: 250, email: 300, messaging: 200}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("repeat-contacts"), POLICIES) as stack:
        yield stack


def customer_ref(raw_customer_id: str) -> str:
    """The pseudonym the handoff service's edge turns a raw customer id into."""
    return customer_ref_for(raw_customer_id, DEV_CUSTOMER_REF_KEY.encode())


def handoffs(channel: grpc.Channel) -> api_grpc.HandoffServiceStub:
    return api_grpc.HandoffServiceStub(channel)


def create_leg(stack: Stack, raw_customer_id: str, case_id: str, department: str) -> api.Handoff:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        return handoffs(channel).CreateHandoff(api.CreateHandoffRequest(
            request_id=str(uuid.uuid4()), case_id=case_id, customer_id=raw_customer_id, department=department),
            timeout=TIMEOUT)


def record_contact(stack: Stack, raw_customer_id: str, case_id: str, channel: int) -> api.Contact:
    with admin_channel(stack.services["handoff"].grpc) as grpc_channel:
        return handoffs(grpc_channel).RecordContact(api.RecordContactRequest(
            request_id=str(uuid.uuid4()), customer_id=raw_customer_id, case_id=case_id, channel=channel),
            timeout=TIMEOUT)


def after_grace(previous: api.Contact) -> None:
    """Wait until a contact recorded now lies past the transfer grace after `previous`."""
    due = previous.contacted_at.ToDatetime(tzinfo=timezone.utc) + GRACE + timedelta(milliseconds=500)
    while (wait := (due - datetime.now(timezone.utc)).total_seconds()) > 0:
        time.sleep(wait)


def wait_for_breach(stack: Stack, handoff_id: str) -> None:
    breaches = read_events(stack.bootstrap, SLA_EVENTS,
                           lambda e: e.handoff_id == handoff_id and e.WhichOneof("change") == "breached",
                           until=lambda found: len(found) >= 1, timeout=30)
    assert [e.clock for e in breaches] == [types_pb2.CLOCK_KIND_ACK]


def repeats_of(stack: Stack, ref: str, expected: int, timeout: float = 45) -> list:
    """The repeat contacts of customer `ref`, read until `expected` are there and then a little
    past them, so one emitted twice would be seen."""
    first = read_events(stack.bootstrap, REPEAT_CONTACTS, lambda m: m.customer_ref == ref,
                        until=lambda found: len(found) >= expected, timeout=timeout)
    assert len(first) >= expected, [m.contact_id for m in first]
    return read_events(stack.bootstrap, REPEAT_CONTACTS, lambda m: m.customer_ref == ref,
                       until=lambda found: len(found) > expected, timeout=4)


def metric_samples(url: str) -> list:
    with urllib.request.urlopen(url, timeout=10) as response:
        return [s for f in text_string_to_metric_families(response.read().decode()) for s in f.samples]


def sample(url: str, name: str, **labels: str) -> float:
    return sum(s.value for s in metric_samples(url) if s.name == name and labels.items() <= s.labels.items())


def test_a_contact_after_a_breach_repeats_the_last_one_as_avoidable_failure_demand(stack: Stack) -> None:
    # given a leg for a customer known by a raw id, and a first call about its case
    department, case_id, raw_customer = unique("billing"), unique("case"), unique("customer-id")
    ref = customer_ref(raw_customer)
    leg = create_leg(stack, raw_customer, case_id, department)
    first = record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_CALL)
    # (the edge pseudonymised the raw id: only the customer_ref travels on)
    assert leg.customer_ref == first.customer_ref == ref != raw_customer

    # when the leg's ack clock breaches and the customer then chats, past the transfer grace
    wait_for_breach(stack, leg.handoff_id)
    after_grace(first)
    second = record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_CHAT)

    # then exactly one repeat: the chat, blamed on the breached leg, priced as a chat
    (repeat,) = repeats_of(stack, ref, expected=1)
    assert (repeat.contact_id, repeat.previous_contact_id, repeat.cause) == (
        second.contact_id, first.contact_id, types_pb2.REPEAT_CAUSE_SLA_BREACHED)
    assert (repeat.handoff_id, repeat.case_id, repeat.department) == (leg.handoff_id, case_id, department)
    assert (repeat.channel, repeat.cost_minor, repeat.currency) == (types_pb2.CONTACT_CHANNEL_CHAT, 250, "EUR")
    assert repeat.envelope.event_id == derived_event_id(second.contact_id, "repeat")
    assert repeat.contacted_at == second.contacted_at

    # and the sla worker counts it by cause, and its cost as failure demand in euros
    metrics = stack.services["sla"].endpoints["metrics"]
    assert wait_for(lambda: sample(metrics, "handoff_repeat_contacts_total", department=department,
                                   cause="sla_breached", channel="chat") == 1, timeout=10)
    assert sample(metrics, "handoff_repeat_contacts_total", department=department) == 1
    assert sample(metrics, "handoff_failure_demand_cost_total", department=department, channel="chat",
                  currency="EUR") == pytest.approx(2.5)

    # and the department's scorecard shows one avoidable repeat with that cost
    with admin_channel(stack.services["sla"].grpc) as channel:
        card = sla_grpc.SlaServiceStub(channel).GetScorecard(
            sla_api.GetScorecardRequest(department=department), timeout=TIMEOUT)
    counts = {r.cause: r.count for r in card.repeat_contacts}
    assert counts == {
        types_pb2.REPEAT_CAUSE_SLA_BREACHED: 1, types_pb2.REPEAT_CAUSE_WITHIN_SLA: 0,
        types_pb2.REPEAT_CAUSE_AFTER_RESOLUTION: 0, types_pb2.REPEAT_CAUSE_UNATTRIBUTED: 0,
    }
    assert (card.avoidable_repeats, card.failure_demand_cost_minor, card.currency) == (1, 250, "EUR")
    assert (card.legs, card.breaches, card.first_contact_resolution) == (1, 1, 0.0)


def test_a_restart_of_the_sla_worker_mid_stream_loses_and_repeats_no_repeat_contact(stack: Stack) -> None:
    # given a breached leg and a customer who has called twice (one repeat emitted)
    department, case_id, raw_customer = unique("claims"), unique("case"), unique("customer-id")
    ref = customer_ref(raw_customer)
    leg = create_leg(stack, raw_customer, case_id, department)
    wait_for_breach(stack, leg.handoff_id)
    contacts = [record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_CALL)]
    after_grace(contacts[-1])
    contacts.append(record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_CALL))
    assert len(repeats_of(stack, ref, expected=1)) == 1

    # when the sla worker is stopped right after a third call, a fourth comes while it is down,
    # and a fifth after it is back
    after_grace(contacts[-1])
    contacts.append(record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_EMAIL))
    assert stack.services["sla"].stop(timeout=30) == 0
    after_grace(contacts[-1])
    contacts.append(record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_CHAT))
    stack.start_service("sla")
    after_grace(contacts[-1])
    contacts.append(record_contact(stack, raw_customer, case_id, types_pb2.CONTACT_CHANNEL_MESSAGING))

    # then every contact after the first repeats the one before it, each emitted exactly once
    repeats = repeats_of(stack, ref, expected=4, timeout=60)
    ids = Counter(m.envelope.event_id for m in repeats)
    assert [i for i, n in ids.items() if n > 1] == []
    assert sorted((m.contact_id, m.previous_contact_id) for m in repeats) == sorted(
        (later.contact_id, earlier.contact_id) for earlier, later in zip(contacts, contacts[1:]))
    assert set(ids) == {derived_event_id(c.contact_id, "repeat") for c in contacts[1:]}
    # all blamed on the breached leg, each priced by its channel
    assert {(m.cause, m.handoff_id) for m in repeats} == {(types_pb2.REPEAT_CAUSE_SLA_BREACHED, leg.handoff_id)}
    assert sorted(m.cost_minor for m in repeats) == [200, 250, 300, 450]
    stack.check_alive()
