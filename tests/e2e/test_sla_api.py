"""SlaService end to end: legs created through HandoffService on the real broker, clocks
run by the sla worker under fast ack targets (3 s, 2 s urgent), read back through
GetHandoffSla, ListBreaches and GetScorecard, by the right callers only, and through
`handoffctl sla / scorecard / breaches` run as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import cache

import grpc
import pytest
from google.protobuf import timestamp_pb2
from handoff.v1 import contacts_pb2, types_pb2
from handoff.v1 import handoff_service_pb2 as handoff_api
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import sla_service_pb2 as sla_api
from handoff.v1 import sla_service_pb2_grpc as sla_grpc
from confluent_kafka import Producer
from kafka import KafkaProducer

from common.codec import new_envelope, to_timestamp
from common.grpcclient import channel
from common.topics import HANDOFF_EVENTS, REPEAT_CONTACTS
from handoff_svc.adapters.codec import encode_event
from handoff_svc.domain import legs
from devstack.stack import ADMIN_TOKEN, AGENT_TOKEN, Stack
from tests.support import around_the_clock, pseudonym, rpc_error, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e

BILLING_TOKEN = "dev-token-billing"
TIMEOUT = 15
ACK, RESOLVE = types_pb2.CLOCK_KIND_ACK, types_pb2.CLOCK_KIND_RESOLVE
# Acks breach within seconds; resolve targets outlast the module, so resolve clocks only
# stop when a leg is resolved and the breach counts stay put.
POLICIES = around_the_clock("3s", "1h") + """  - {department: "*", priority: URGENT, ack: 2s, resolve: 1h}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("sla-api"), POLICIES) as stack:
        yield stack


@cache
def _channel(address: str, token: str) -> grpc.Channel:
    return channel(address, token)


def sla_stub(stack: Stack, token: str | None = ADMIN_TOKEN) -> sla_grpc.SlaServiceStub:
    return sla_grpc.SlaServiceStub(_channel(stack.services["sla"].grpc, token or ""))


def handoffs(stack: Stack) -> handoff_grpc.HandoffServiceStub:
    return handoff_grpc.HandoffServiceStub(_channel(stack.services["handoff"].grpc, ADMIN_TOKEN))


def create(stack: Stack, department: str, priority: int = types_pb2.PRIORITY_NORMAL) -> handoff_api.Handoff:
    return handoffs(stack).CreateHandoff(handoff_api.CreateHandoffRequest(
        request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(), department=department,
        priority=priority), timeout=TIMEOUT)


def acknowledge_and_resolve(stack: Stack, handoff_id: str) -> None:
    stub = handoffs(stack)
    stub.AcknowledgeHandoff(handoff_api.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=handoff_id),
                            timeout=TIMEOUT)
    stub.ResolveHandoff(handoff_api.ResolveHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=handoff_id),
                        timeout=TIMEOUT)


def clocks(stack: Stack, handoff_id: str) -> dict[int, sla_api.ClockState]:
    answer = sla_stub(stack).GetHandoffSla(sla_api.GetHandoffSlaRequest(handoff_id=handoff_id), timeout=TIMEOUT)
    return {clock.clock: clock for clock in answer.clocks}


def breaches(stack: Stack, department: str, **fields) -> sla_api.ListBreachesResponse:
    request = sla_api.ListBreachesRequest(department=department, **fields)
    return sla_stub(stack).ListBreaches(request, timeout=TIMEOUT)


def scorecard(stack: Stack, department: str, token: str = ADMIN_TOKEN) -> sla_api.Scorecard:
    return sla_stub(stack, token).GetScorecard(sla_api.GetScorecardRequest(department=department), timeout=TIMEOUT)


def breached_ids(stack: Stack, department: str) -> list[str]:
    return [b.handoff_id for b in breaches(stack, department).breaches]


@pytest.fixture(scope="module")
def one_breached_one_met(stack: Stack) -> tuple[str, handoff_api.Handoff, handoff_api.Handoff]:
    """A department with a leg left to breach its 3 s ack target and a leg acknowledged and resolved at once."""
    department = unique("claims")
    late, prompt = create(stack, department), create(stack, department)
    acknowledge_and_resolve(stack, prompt.handoff_id)
    assert wait_for(lambda: breached_ids(stack, department) == [late.handoff_id], timeout=30)
    assert wait_for(lambda: clocks(stack, prompt.handoff_id)[RESOLVE].met, timeout=15)
    return department, late, prompt


def test_get_handoff_sla_shows_each_clock_its_state_and_business_time_left(stack, one_breached_one_met) -> None:
    department, late, prompt = one_breached_one_met
    # the late leg: ack breached and still running with no time left; resolve running towards 1 h
    answer = sla_stub(stack).GetHandoffSla(sla_api.GetHandoffSlaRequest(handoff_id=late.handoff_id), timeout=TIMEOUT)
    assert (answer.handoff_id, answer.department, answer.priority) == (
        late.handoff_id, department, types_pb2.PRIORITY_NORMAL)
    ack, resolve = answer.clocks
    assert (ack.clock, ack.sequence, ack.running, ack.breached, ack.met) == (ACK, 1, True, True, False)
    assert ack.business_time_left.ToTimedelta() == timedelta(0)
    assert ack.target.ToTimedelta() == timedelta(seconds=3)
    assert ack.deadline.ToDatetime() - ack.started_at.ToDatetime() == timedelta(seconds=3)
    assert ack.policy_version and (ack.policy_name, resolve.policy_name) == ("*/*", "*/*")  # by what it matches
    assert (resolve.clock, resolve.running, resolve.breached) == (RESOLVE, True, False)
    assert timedelta(minutes=59) < resolve.business_time_left.ToTimedelta() < timedelta(hours=1)
    # the prompt leg: both clocks met in time, nothing left to run
    met = clocks(stack, prompt.handoff_id)
    assert [(c.met, c.late, c.running, c.breached) for c in met.values()] == [(True, False, False, False)] * 2
    assert all(c.business_time_left.ToTimedelta() == timedelta(0) for c in met.values())


def test_list_breaches_lists_the_breach_and_not_the_met_leg(stack, one_breached_one_met) -> None:
    department, late, _ = one_breached_one_met
    (breach,) = breaches(stack, department).breaches
    assert (breach.handoff_id, breach.department, breach.case_id, breach.clock, breach.priority) == (
        late.handoff_id, department, late.case_id, ACK, types_pb2.PRIORITY_NORMAL)
    assert breach.breached_at.ToDatetime() >= breach.deadline.ToDatetime()
    # nothing breached since now
    since = to_timestamp(datetime.now(timezone.utc))
    assert breaches(stack, department, since=since).breaches == []


def test_get_scorecard_counts_legs_breaches_and_compliance(stack, one_breached_one_met) -> None:
    department, _, _ = one_breached_one_met
    card = scorecard(stack, department)
    assert (card.department, card.legs, card.breaches) == (department, 2, 1)
    # one ack clock breached, one met; the one resolve clock decided was met
    assert (card.ack_compliance, card.resolve_compliance) == (0.5, 1.0)
    assert timedelta(0) < card.tta_p50.ToTimedelta() <= card.tta_p90.ToTimedelta() < timedelta(seconds=3)
    assert card.first_contact_resolution == 1.0 and card.reopens == 0
    # each figure says what it rests on: the late leg is open, so FCR rests on the prompt leg alone
    assert (card.ack_outcomes, card.resolve_outcomes, card.resolve_running, card.tta_n) == (2, 1, 1, 1)
    assert (card.fcr_n, card.open_legs) == (1, 1)
    period = card.period_end.ToDatetime() - card.period_start.ToDatetime()
    assert period == timedelta(days=30)
    # the whole centre holds at least these legs
    assert scorecard(stack, "").legs >= 2


def test_breaches_page_newest_first_with_an_opaque_token(stack) -> None:
    department = unique("accounts")
    legs = [create(stack, department, types_pb2.PRIORITY_URGENT).handoff_id for _ in range(3)]
    assert wait_for(lambda: sorted(breached_ids(stack, department)) == sorted(legs), timeout=30)
    first = breaches(stack, department, page_size=2)
    second = breaches(stack, department, page_size=2, page_token=first.next_page_token)
    listed = [*first.breaches, *second.breaches]
    assert len(first.breaches) == 2 and first.next_page_token and not second.next_page_token
    assert sorted(b.handoff_id for b in listed) == sorted(legs)
    times = [b.breached_at.ToDatetime() for b in listed]
    assert times == sorted(times, reverse=True)


def test_a_repeat_contact_counts_as_failure_demand_in_the_scorecard(stack) -> None:
    # given a leg that breached, and a repeat contact blamed on it (written as the sla worker would)
    department = unique("billing")
    leg = create(stack, department)
    assert wait_for(lambda: breached_ids(stack, department) == [leg.handoff_id], timeout=30)
    now = datetime.now(timezone.utc)
    repeat = contacts_pb2.RepeatContactDetected(
        envelope=new_envelope("sla", now, now), contact_id=str(uuid.uuid4()), customer_ref=leg.customer_ref,
        cause=types_pb2.REPEAT_CAUSE_SLA_BREACHED, handoff_id=leg.handoff_id, case_id=leg.case_id,
        department=department, channel=types_pb2.CONTACT_CHANNEL_CALL, cost_minor=450, currency="EUR",
        contacted_at=to_timestamp(now),
    )
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    try:
        producer.send(REPEAT_CONTACTS.name, key=leg.customer_ref.encode(), value=repeat.SerializeToString()).get(15)
    finally:
        producer.close()
    # when the scorecard is read, then the repeat is failure demand and the leg not resolved first time
    card = scorecard(stack, department)
    counts = {r.cause: r.count for r in card.repeat_contacts}
    assert counts[types_pb2.REPEAT_CAUSE_SLA_BREACHED] == 1 and counts[types_pb2.REPEAT_CAUSE_WITHIN_SLA] == 0
    assert (card.avoidable_repeats, card.failure_demand_cost_minor, card.currency) == (1, 450, "EUR")
    assert (card.legs, card.first_contact_resolution) == (1, 0.0)


# Who may read what ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing_and_claims(stack: Stack) -> tuple[str, str]:
    return create(stack, "billing").handoff_id, create(stack, "claims").handoff_id


def code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    "token, rpc, department_or_leg, expected",
    [
        (BILLING_TOKEN, "sla", "billing", grpc.StatusCode.OK),
        (BILLING_TOKEN, "sla", "claims", grpc.StatusCode.PERMISSION_DENIED),
        (BILLING_TOKEN, "scorecard", "billing", grpc.StatusCode.OK),
        (BILLING_TOKEN, "scorecard", "claims", grpc.StatusCode.PERMISSION_DENIED),
        (BILLING_TOKEN, "scorecard", "", grpc.StatusCode.OK),  # its own department's
        (BILLING_TOKEN, "breaches", "billing", grpc.StatusCode.OK),
        (BILLING_TOKEN, "breaches", "claims", grpc.StatusCode.PERMISSION_DENIED),
        (BILLING_TOKEN, "breaches", "", grpc.StatusCode.OK),
        (AGENT_TOKEN, "sla", "claims", grpc.StatusCode.OK),
        (AGENT_TOKEN, "scorecard", "claims", grpc.StatusCode.PERMISSION_DENIED),
        (AGENT_TOKEN, "breaches", "claims", grpc.StatusCode.PERMISSION_DENIED),
        (ADMIN_TOKEN, "scorecard", "", grpc.StatusCode.OK),
        (ADMIN_TOKEN, "breaches", "", grpc.StatusCode.OK),
        ("dev-token-crm", "sla", "billing", grpc.StatusCode.OK),
        ("dev-token-crm", "scorecard", "", grpc.StatusCode.OK),
        (None, "sla", "billing", grpc.StatusCode.UNAUTHENTICATED),
        (None, "scorecard", "billing", grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_each_caller_reads_only_what_its_role_and_department_allow(
    stack, billing_and_claims, token, rpc, department_or_leg, expected
) -> None:
    stub = sla_stub(stack, token)
    legs = dict(zip(("billing", "claims"), billing_and_claims))
    calls = {
        "sla": lambda: stub.GetHandoffSla(sla_api.GetHandoffSlaRequest(handoff_id=legs[department_or_leg]),
                                          timeout=TIMEOUT),
        "scorecard": lambda: stub.GetScorecard(sla_api.GetScorecardRequest(department=department_or_leg),
                                               timeout=TIMEOUT),
        "breaches": lambda: stub.ListBreaches(sla_api.ListBreachesRequest(department=department_or_leg),
                                              timeout=TIMEOUT),
    }
    assert code(calls[rpc]) == expected


def test_a_department_token_that_names_no_department_reads_its_own(stack, billing_and_claims) -> None:
    card = sla_stub(stack, BILLING_TOKEN).GetScorecard(sla_api.GetScorecardRequest(), timeout=TIMEOUT)
    assert card.department == "billing" and card.legs >= 1
    page = sla_stub(stack, BILLING_TOKEN).ListBreaches(sla_api.ListBreachesRequest(), timeout=TIMEOUT)
    assert {breach.department for breach in page.breaches} <= {"billing"}
    shown = handoffctl(stack, "scorecard", token=BILLING_TOKEN)
    assert shown.returncode == 0 and shown.stdout.split("\n")[1].split() == ["department", "billing"], shown.stdout


def stamp(at: datetime) -> timestamp_pb2.Timestamp:
    return to_timestamp(at)


NOW = datetime.now(timezone.utc)


@pytest.mark.parametrize(
    "rpc, request_, field",
    [
        ("GetHandoffSla", sla_api.GetHandoffSlaRequest(handoff_id=""), "handoff_id"),
        ("GetHandoffSla", sla_api.GetHandoffSlaRequest(handoff_id="no such leg!"), "handoff_id"),
        ("GetScorecard", sla_api.GetScorecardRequest(department="Bad Dept"), "department"),
        ("GetScorecard", sla_api.GetScorecardRequest(period_start=stamp(NOW), period_end=stamp(NOW)), "period_end"),
        ("GetScorecard", sla_api.GetScorecardRequest(period_start=stamp(NOW + timedelta(days=1))), "period_end"),
        ("ListBreaches", sla_api.ListBreachesRequest(page_size=501), "page_size"),
        ("ListBreaches", sla_api.ListBreachesRequest(page_size=-1), "page_size"),
        ("ListBreaches", sla_api.ListBreachesRequest(page_token="not-a-token"), "page_token"),
        ("ListBreaches", sla_api.ListBreachesRequest(department="Bad Dept"), "department"),
    ],
)
def test_bad_arguments_are_invalid_argument_naming_the_field(stack, rpc, request_, field) -> None:
    error = rpc_error(lambda: getattr(sla_stub(stack), rpc)(request_, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_an_unknown_leg_is_not_found(stack) -> None:
    error = rpc_error(lambda: sla_stub(stack).GetHandoffSla(
        sla_api.GetHandoffSlaRequest(handoff_id="no-such-leg"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "no-such-leg" in error.details()


# handoffctl ----------------------------------------------------------------------------------


def handoffctl(stack: Stack, *args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLA_GRPC": stack.services["sla"].grpc, "HANDOFF_TOKEN": token, "COLUMNS": "200"}
    env.pop("HANDOFF_CA", None)
    return subprocess.run([sys.executable, "-m", "handoffctl.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_handoffctl_prints_clocks_scorecard_and_breaches(stack, one_breached_one_met) -> None:
    department, late, _ = one_breached_one_met
    shown = handoffctl(stack, "sla", late.handoff_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [c["clock"] for c in json.loads(shown.stdout)["clocks"]] == ["ack", "resolve"]
    table = handoffctl(stack, "sla", late.handoff_id)
    assert table.returncode == 0 and "breached" in table.stdout and "running" in table.stdout
    card = handoffctl(stack, "scorecard", "--department", department, "--json")
    assert card.returncode == 0, card.stderr
    figures = json.loads(card.stdout)
    assert (figures["legs"], figures["breaches"], figures["ack_compliance"], figures["ack_outcomes"]) == (2, 1, 0.5, 2)
    assert figures["repeat_contacts"] == [{"cause": c, "count": 0} for c in
                                          ("sla_breached", "within_sla", "after_resolution", "unattributed")]
    card_table = handoffctl(stack, "scorecard", "--department", department)
    assert "50.0 %" in card_table.stdout and "ack compliance" in card_table.stdout
    listed = handoffctl(stack, "breaches", "--department", department, "--page-size", "1")
    assert listed.returncode == 0 and late.handoff_id in listed.stdout and "ack" in listed.stdout


def test_handoffctl_reports_a_refusal_on_stderr_and_exits_1(stack) -> None:
    refused = handoffctl(stack, "scorecard", "--department", "claims", token=BILLING_TOKEN)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error PERMISSION_DENIED:")
    invalid = handoffctl(stack, "scorecard", "--department", "claims", "--from", "2025-03-02", "--to", "2025-03-01")
    assert invalid.returncode == 1 and invalid.stderr.startswith("error INVALID_ARGUMENT: period_end:")


def test_the_report_shows_every_scorecard_figure_and_renders_in_chromium(stack, one_breached_one_met,
                                                                         tmp_path) -> None:
    import html as html_text
    import re
    import shutil

    from PIL import Image
    from pypdf import PdfReader

    from handoffctl.report import figures_of
    from handoffctl.sla import money_text

    department, _, _ = one_breached_one_met
    start, end = datetime.now(timezone.utc) - timedelta(days=1), datetime.now(timezone.utc) + timedelta(minutes=5)
    page, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    for args in (["--out", str(page)], ["--out", str(pdf), "--pdf"]):
        written = handoffctl(stack, "report", "--from", start.isoformat(), "--to", end.isoformat(),
                             "--department", department, *args)
        assert written.returncode == 0, written.stderr
    text = page.read_text()
    figures = json.loads(html_text.unescape(re.search(r'<script type="application/json" id="figures">(.*?)</script>',
                                                      text, re.S).group(1)))
    card = sla_stub(stack).GetScorecard(sla_api.GetScorecardRequest(
        department=department, period_start=to_timestamp(start), period_end=to_timestamp(end)), timeout=TIMEOUT)
    # every figure of the report is the scorecard's, and the table says what the shares rest on
    assert figures["departments"][department] == figures_of(card)
    assert (card.legs, card.breaches, card.ack_outcomes) == (2, 1, 2)
    assert "50.0 % (n=2)" in text and text.count("data:image/png;base64,") == 3
    # the PDF carries the same figures: the cover table's row and the plots' titles, as text
    assert pdf.read_bytes().startswith(b"%PDF")
    pdf_text = "\n".join(sheet.extract_text() for sheet in PdfReader(pdf).pages)
    fcr = f"{card.first_contact_resolution * 100:.1f} % (n={card.fcr_n})" if card.fcr_n else "unknown (n=0)"
    row = (f"{card.legs} {card.breaches} {card.avoidable_repeats} "
           f"{money_text(card.failure_demand_cost_minor, card.currency)} {fcr}")
    assert any(line.startswith(department) and line.endswith(row) for line in pdf_text.splitlines()), pdf_text
    assert f"Charge-back report {start.date()}" in pdf_text and "Breaches per day" in pdf_text, pdf_text
    assert "Failure-demand cost by department" in pdf_text, pdf_text
    # and headless Chromium renders the page
    browser = shutil.which("chromium")
    assert browser, "chromium is needed to check the report (make chromium)"
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        low, high = image.convert("L").getextrema()
    assert image.size == (1200, 1600) and high - low > 100  # not a blank page


def test_get_handoff_sla_waits_for_the_transaction_that_writes_the_leg(stack) -> None:
    # given a leg's creation written in a transaction not yet committed, as when the
    # CreateHandoff reply committed with it is readable first (markers are written partition
    # by partition)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = legs.create(legs.CreateHandoff(str(uuid.uuid4()), unique("case"), pseudonym(), unique("claims"),
                                           legs.Priority.NORMAL, "", "", "agent-1"), now)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "transactional.id": f"sla-api-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(HANDOFF_EVENTS.name, encode_event(event, str(uuid.uuid4()), now), event.leg.customer_ref)
    producer.flush(30)
    # when a caller asks for the leg's SLA meanwhile
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(sla_stub(stack).GetHandoffSla,
                             sla_api.GetHandoffSlaRequest(handoff_id=event.leg.handoff_id), timeout=TIMEOUT)
        time.sleep(1.0)
        # then the answer waits for the transaction, and has the leg once it has committed
        assert not asking.done()
        producer.commit_transaction(30)
        answer = asking.result(TIMEOUT)
    assert (answer.handoff_id, answer.department) == (event.leg.handoff_id, event.leg.department)
