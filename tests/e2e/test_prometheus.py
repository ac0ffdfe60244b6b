"""A real Prometheus on loopback scrapes the stack and evaluates deploy/prometheus/rules.yaml
while a known scenario plays: four billing breaches and two avoidable repeat contacts. The
recording rules give those values, HandoffBreachesRising fires for billing, and every
Grafana panel's query returns data.

The rules run with every `for:` set to 0s: how long a condition must hold is covered by the
promtool unit tests (deploy/prometheus/tests.yaml); here only what Prometheus computes from
the live metrics is in question."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2
from kafka import KafkaProducer

from common.topics import SLA_EVENTS
from deploy import dashboards, tools
from devstack.stack import Stack
from tests.support import admin_channel, around_the_clock, pseudonym, read_events, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POLICIES = around_the_clock("3s", "1h") + """repeat_contacts:
  window: 10m
  transfer_grace: 2s
  currency: EUR
  cost_per_contact: {call: 450, chat: 250, email: 300, messaging: 200}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("prometheus-stack"), POLICIES) as stack:
        yield stack


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a Prometheus scraping every service each second, with the project's rules."""
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
    jobs = [{"job_name": name, "static_configs": [{"targets": [urllib.parse.urlparse(process.endpoints["metrics"]).netloc]}]}
            for name, process in stack.services.items() if "metrics" in process.endpoints]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yaml")], "scrape_configs": jobs}))
    address = f"127.0.0.1:{free_port()}"
    with open(workdir / "prometheus.log", "w") as log:
        process = subprocess.Popen([str(tools.prometheus_bin() / "prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={address}"],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: bool(query(address, "up == 1")), timeout=30), (workdir / "prometheus.log").read_text()[-2000:]
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def query(address: str, promql: str) -> list[dict]:
    url = f"http://{address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["data"]["result"]
    except OSError:
        return []


def values(address: str, promql: str) -> dict[str, float]:
    return {json.dumps({k: v for k, v in item["metric"].items() if k != "__name__"}, sort_keys=True): float(item["value"][1])
            for item in query(address, promql)}


def handoffs(stack: Stack):
    return admin_channel(stack.services["handoff"].grpc)


def create_leg(stack: Stack, customer: str) -> api.Handoff:
    with handoffs(stack) as channel:
        return api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
            request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=customer, department="billing"),
            timeout=15)


def record_contact(stack: Stack, customer: str, case_id: str, channel: int) -> api.Contact:
    with handoffs(stack) as grpc_channel:
        return api_grpc.HandoffServiceStub(grpc_channel).RecordContact(api.RecordContactRequest(
            request_id=str(uuid.uuid4()), customer_ref=customer, case_id=case_id, channel=channel), timeout=15)


def breached(stack: Stack, handoff_ids: set[str]) -> None:
    found = read_events(stack.bootstrap, SLA_EVENTS,
                        lambda e: e.handoff_id in handoff_ids and e.WhichOneof("change") == "breached",
                        until=lambda events: {e.handoff_id for e in events} == handoff_ids, timeout=60)
    assert {e.handoff_id for e in found} == handoff_ids


def past_grace(contact: api.Contact) -> None:
    due = contact.contacted_at.ToDatetime(tzinfo=timezone.utc) + timedelta(seconds=2.5)
    time.sleep(max((due - datetime.now(timezone.utc)).total_seconds(), 0))


@pytest.fixture(scope="module")
def scenario(stack: Stack, prometheus: str) -> str:
    # one billing leg breaches and its customer calls, then chats twice: two avoidable repeats
    customer = pseudonym()
    first = create_leg(stack, customer)
    contact = record_contact(stack, customer, first.case_id, types_pb2.CONTACT_CHANNEL_CALL)
    breached(stack, {first.handoff_id})
    for _ in range(2):
        past_grace(contact)
        contact = record_contact(stack, customer, first.case_id, types_pb2.CONTACT_CHANNEL_CHAT)
    # Prometheus sees the breach counter at 1 before three more billing legs breach
    assert wait_for(lambda: values(prometheus, 'sum(handoff_sla_breaches_total{department="billing"})') != {}, 30)
    time.sleep(3)
    breached(stack, {create_leg(stack, pseudonym()).handoff_id for _ in range(3)})
    # and a billing leg acknowledged in time (its ack clock is met)
    on_time = create_leg(stack, pseudonym())
    with handoffs(stack) as channel:
        api_grpc.HandoffServiceStub(channel).AcknowledgeHandoff(
            api.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=on_time.handoff_id), timeout=15)
    # and a record nobody can read goes to a dead-letter topic (notify reads sla.events.v1)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap)
    producer.send(SLA_EVENTS.name, key=b"cust-unreadable", value=b"\x00not an sla event")
    producer.flush()
    producer.close()
    return prometheus


def test_recording_rules_give_the_scenarios_breaches_and_avoidable_repeats(scenario):
    assert wait_for(lambda: values(scenario, 'sum(handoff_sla_breaches_total{department="billing"})')
                    == {"{}": 4.0}, timeout=60)
    assert wait_for(lambda: values(scenario, 'sum(handoff_repeat_contacts_total{department="billing",cause="sla_breached"})')
                    == {"{}": 2.0}, timeout=60)
    assert wait_for(lambda: values(scenario, 'sum(handoff_failure_demand_cost_total{department="billing"})')
                    == {"{}": 5.0}, timeout=60)  # two chats at EUR 2.50
    billing = json.dumps({"department": "billing"})
    assert wait_for(lambda: values(scenario, "department:handoff_sla_breaches:increase1h").get(billing, 0) >= 3, 60)
    assert wait_for(lambda: values(scenario, "department:handoff_avoidable_repeats:increase1h").get(billing, 0) > 0, 60)
    assert wait_for(lambda: values(scenario, "department_currency:handoff_failure_demand_cost:rate1h") != {}, 60)


def test_breaches_rising_fires_for_billing(scenario):
    firing = 'ALERTS{alertname="HandoffBreachesRising",alertstate="firing"}'
    assert wait_for(lambda: [item["metric"]["department"] for item in query(scenario, firing)] == ["billing"], 60)


def test_dead_letters_fire_their_alert(scenario):
    firing = 'ALERTS{alertname="HandoffDeadLetters",alertstate="firing"}'
    assert wait_for(lambda: [item["metric"]["topic"] for item in query(scenario, firing)] == [SLA_EVENTS.name], 60)


@pytest.mark.parametrize("dashboard", sorted(dashboards.DASHBOARDS))
def test_every_dashboard_panel_returns_data(scenario, dashboard):
    exprs = dashboards.expressions(dashboards.DASHBOARDS[dashboard]())
    deadline = time.monotonic() + 60
    empty = exprs
    while empty and time.monotonic() < deadline:
        empty = [expr for expr in empty if not query(scenario, expr)]
        if empty:
            time.sleep(2)
    assert empty == []
