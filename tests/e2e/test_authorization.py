"""Who may call what, end to end: every HandoffService RPC for every kind of caller, the
Subscribe stream, token-free health checks, and raw customer ids that never reach Kafka.

The expected codes are the access rules as `handoff_svc/entrypoints/access.py` spells them
out. Every call is made against a leg in the state the RPC needs, so a refusal can only
come from the access rules, and a refused call must leave what it aimed at unchanged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import notification_service_pb2 as notify_api
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import types_pb2
from kafka import KafkaConsumer, TopicPartition

from common.auth import customer_ref_for
from common.grpcclient import channel
from common.kafkaio import partition_for
from common.topics import NOTIFICATIONS
from devstack.stack import ADMIN_TOKEN, AGENT_TOKEN, DEV_CUSTOMER_REF_KEY, Stack
from tests.support import pseudonym, read_records, running_stack, unique

pytestmark = pytest.mark.e2e

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
TIMEOUT = 15
PARTITIONS = [0, 1, 2, 3]


@dataclass(frozen=True)
class Caller:
    """Who calls (a token, or none) and the department whose leg or list the call is about."""

    token: str | None
    department: str


CALLERS = {
    "no token": Caller(None, "billing"),
    "unknown token": Caller("not-a-known-token", "billing"),
    "agent": Caller(AGENT_TOKEN, "billing"),
    "billing on billing": Caller("dev-token-billing", "billing"),
    "billing on claims": Caller("dev-token-billing", "claims"),
    "admin": Caller(ADMIN_TOKEN, "claims"),
    "service": Caller("dev-token-crm", "claims"),
}

# One row per RPC (access.py's RULES), one column per caller in the order of CALLERS:
# no token, unknown token, agent, billing on billing, billing on claims, admin, service.
EXPECTED = {
    "CreateHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, OK, DENIED, DENIED, OK, OK),
    "AcknowledgeHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK, DENIED, OK, OK),
    "UpdateHandoffStatus": (UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK, DENIED, OK, OK),
    "ChangePriority": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "TransferHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "ResolveHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK, DENIED, OK, OK),
    "ReopenHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "CancelHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "GetHandoff": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "ListHandoffs": (UNAUTHENTICATED, UNAUTHENTICATED, OK, OK, DENIED, OK, OK),
    "RecordContact": (UNAUTHENTICATED, UNAUTHENTICATED, OK, DENIED, DENIED, OK, OK),
    "GetCustomerTimeline": (UNAUTHENTICATED, UNAUTHENTICATED, OK, DENIED, DENIED, OK, OK),
}
SUBSCRIBE_EXPECTED = (UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK, DENIED, OK, OK)
MATRIX = [(rpc, caller, code) for rpc, codes in EXPECTED.items() for caller, code in zip(CALLERS, codes)]


def request_id() -> str:
    return str(uuid.uuid4())


def caller_channel(address: str, caller: Caller) -> grpc.Channel:
    return grpc.insecure_channel(address) if caller.token is None else channel(address, caller.token)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("authorization")) as stack:
        yield stack


@pytest.fixture(scope="module")
def stubs(stack: Stack) -> Iterator[dict[str, api_grpc.HandoffServiceStub]]:
    """A HandoffService stub per caller, plus "setup" (agent) and "admin" ones for the givens."""
    address = stack.services["handoff"].grpc
    channels = {name: caller_channel(address, caller) for name, caller in CALLERS.items()}
    channels["setup"] = channel(address, AGENT_TOKEN)
    yield {name: api_grpc.HandoffServiceStub(ch) for name, ch in channels.items()}
    for ch in channels.values():
        ch.close()


class Given:
    """Legs in the state an RPC needs: created by the agent, moved on by the admin."""

    def __init__(self, stubs: dict[str, api_grpc.HandoffServiceStub]) -> None:
        self._agent = stubs["setup"]
        self._admin = stubs["admin"]

    def open_leg(self, department: str) -> api.Handoff:
        return self._agent.CreateHandoff(api.CreateHandoffRequest(
            request_id=request_id(), case_id=unique("case"), customer_ref=pseudonym(),
            department=department, summary="refund not received",
        ), timeout=TIMEOUT)

    def acknowledged_leg(self, department: str) -> api.Handoff:
        leg = self.open_leg(department)
        return self._admin.AcknowledgeHandoff(
            api.AcknowledgeHandoffRequest(request_id=request_id(), handoff_id=leg.handoff_id), timeout=TIMEOUT)

    def resolved_leg(self, department: str) -> api.Handoff:
        leg = self.open_leg(department)
        return self._admin.ResolveHandoff(
            api.ResolveHandoffRequest(request_id=request_id(), handoff_id=leg.handoff_id), timeout=TIMEOUT)

    def leg_now(self, handoff_id: str) -> api.Handoff:
        leg = self._admin.GetHandoff(api.GetHandoffRequest(handoff_id=handoff_id), timeout=TIMEOUT)
        leg.ClearField("breached")  # the 3 s ack clock breaches on its own
        return leg

    def legs_of_case(self, department: str, case_id: str) -> list[str]:
        listed = self._admin.ListHandoffs(api.ListHandoffsRequest(department=department, page_size=500),
                                          timeout=TIMEOUT)
        return [leg.handoff_id for leg in listed.handoffs if leg.case_id == case_id]

    def contacts_of(self, customer_ref: str) -> list[str]:
        timeline = self._admin.GetCustomerTimeline(api.GetCustomerTimelineRequest(customer_ref=customer_ref),
                                                   timeout=TIMEOUT)
        return [e.contact.contact_id for e in timeline.entries if e.WhichOneof("entry") == "contact"]


@dataclass
class Attempt:
    """One RPC ready to be made: `call(stub)`, a check of its answer, and a snapshot of what
    it would change (equal before and after a refused call)."""

    call: Callable[[api_grpc.HandoffServiceStub], object]
    answered: Callable[[object], bool]
    snapshot: Callable[[], object] = lambda: None


S = types_pb2
# RPC on one leg: (the state it needs, its request for a leg id, what an allowed call answers).
LEG_RPCS = {
    "AcknowledgeHandoff": ("open", lambda leg_id: api.AcknowledgeHandoffRequest(handoff_id=leg_id),
                           lambda leg, found: found.status == S.LEG_STATUS_ACKNOWLEDGED),
    "UpdateHandoffStatus": ("acknowledged", lambda leg_id: api.UpdateHandoffStatusRequest(
                                handoff_id=leg_id, status=S.LEG_STATUS_IN_PROGRESS),
                            lambda leg, found: found.status == S.LEG_STATUS_IN_PROGRESS),
    "ChangePriority": ("open", lambda leg_id: api.ChangePriorityRequest(handoff_id=leg_id, priority=S.PRIORITY_HIGH),
                       lambda leg, found: found.priority == S.PRIORITY_HIGH),
    "TransferHandoff": ("open", lambda leg_id: api.TransferHandoffRequest(handoff_id=leg_id, to_department="accounts"),
                        lambda leg, found: (found.ended.status, found.opened.department, found.opened.previous_handoff_id)
                        == (S.LEG_STATUS_TRANSFERRED, "accounts", leg.handoff_id)),
    "ResolveHandoff": ("open", lambda leg_id: api.ResolveHandoffRequest(handoff_id=leg_id),
                       lambda leg, found: found.status == S.LEG_STATUS_RESOLVED),
    "ReopenHandoff": ("resolved", lambda leg_id: api.ReopenHandoffRequest(handoff_id=leg_id),
                      lambda leg, found: (found.status, found.reopen_count) == (S.LEG_STATUS_REOPENED, 1)),
    "CancelHandoff": ("open", lambda leg_id: api.CancelHandoffRequest(handoff_id=leg_id),
                      lambda leg, found: found.status == S.LEG_STATUS_CANCELLED),
}


def leg_attempt(rpc: str, given: Given, department: str) -> Attempt:
    state, make_request, answered = LEG_RPCS[rpc]
    leg = getattr(given, f"{state}_leg")(department)
    request = make_request(leg.handoff_id)
    request.request_id = request_id()
    return Attempt(lambda stub: getattr(stub, rpc)(request, timeout=TIMEOUT), lambda found: answered(leg, found),
                   lambda: given.leg_now(leg.handoff_id))


def create_attempt(given: Given, department: str) -> Attempt:
    request = api.CreateHandoffRequest(request_id=request_id(), case_id=unique("case"),
                                       customer_ref=pseudonym(), department=department)
    return Attempt(lambda stub: stub.CreateHandoff(request, timeout=TIMEOUT),
                   lambda leg: (leg.case_id, leg.department, leg.status) == (
                       request.case_id, department, S.LEG_STATUS_OPEN),
                   lambda: given.legs_of_case(department, request.case_id))


def get_attempt(given: Given, department: str) -> Attempt:
    leg = given.open_leg(department)
    return Attempt(lambda stub: stub.GetHandoff(api.GetHandoffRequest(handoff_id=leg.handoff_id), timeout=TIMEOUT),
                   lambda found: (found.handoff_id, found.department) == (leg.handoff_id, department))


def list_attempt(given: Given, department: str) -> Attempt:
    leg = given.open_leg(department)
    request = api.ListHandoffsRequest(department=department, page_size=500)
    return Attempt(lambda stub: stub.ListHandoffs(request, timeout=TIMEOUT),
                   lambda found: leg.handoff_id in {h.handoff_id for h in found.handoffs}
                   and {h.department for h in found.handoffs} == {department})


def record_contact_attempt(given: Given, department: str) -> Attempt:
    leg = given.open_leg(department)
    request = api.RecordContactRequest(request_id=request_id(), customer_ref=leg.customer_ref, case_id=leg.case_id,
                                       channel=S.CONTACT_CHANNEL_CALL, reason="where is my refund")
    return Attempt(lambda stub: stub.RecordContact(request, timeout=TIMEOUT),
                   lambda contact: (contact.customer_ref, contact.case_id) == (leg.customer_ref, leg.case_id),
                   lambda: given.contacts_of(leg.customer_ref))


def timeline_attempt(given: Given, department: str) -> Attempt:
    leg = given.open_leg(department)
    request = api.GetCustomerTimelineRequest(customer_ref=leg.customer_ref)
    return Attempt(lambda stub: stub.GetCustomerTimeline(request, timeout=TIMEOUT),
                   lambda timeline: [e.handoff.handoff_id for e in timeline.entries] == [leg.handoff_id])


ATTEMPTS: dict[str, Callable[[Given, str], Attempt]] = {
    "CreateHandoff": create_attempt,
    **{rpc: partial(leg_attempt, rpc) for rpc in LEG_RPCS},
    "GetHandoff": get_attempt,
    "ListHandoffs": list_attempt,
    "RecordContact": record_contact_attempt,
    "GetCustomerTimeline": timeline_attempt,
}


def outcome(call: Callable[[], object]) -> tuple[grpc.StatusCode, object]:
    """The status of a call and, when OK, its answer."""
    try:
        return OK, call()
    except grpc.RpcError as error:
        return error.code(), error


def test_the_matrix_covers_every_handoff_rpc() -> None:
    methods = api.DESCRIPTOR.services_by_name["HandoffService"].methods_by_name
    assert set(EXPECTED) == set(ATTEMPTS) == set(methods)


@pytest.mark.parametrize(("rpc", "caller", "expected"), MATRIX, ids=[f"{r}-{c}" for r, c, _ in MATRIX])
def test_each_rpc_answers_each_caller_as_the_access_rules_say(stubs, rpc: str, caller: str, expected) -> None:
    # given a leg (or a request) in the state the RPC needs, of the department the caller aims at
    given = Given(stubs)
    attempt = ATTEMPTS[rpc](given, CALLERS[caller].department)
    before = attempt.snapshot()
    # when the caller makes the call
    code, answer = outcome(lambda: attempt.call(stubs[caller]))
    # then the status is the one the access rules give
    assert code == expected, f"{rpc} by {caller}: {code} {getattr(answer, 'details', lambda: '')()}"
    if code == OK:
        # and an allowed call did what it was asked
        assert attempt.answered(answer), answer
    else:
        # and a refused one changed nothing
        assert attempt.snapshot() == before


def list_all(stub: api_grpc.HandoffServiceStub, department: str = "") -> list[api.Handoff]:
    """Every leg ListHandoffs returns, page by page."""
    legs, token = [], ""
    while True:
        page = stub.ListHandoffs(api.ListHandoffsRequest(department=department, page_size=100, page_token=token),
                                 timeout=TIMEOUT)
        legs += page.handoffs
        if not (token := page.next_page_token):
            return legs


def test_a_department_lists_only_its_own_legs(stubs) -> None:
    # given legs for billing and for claims
    given = Given(stubs)
    billing, claims = given.open_leg("billing"), given.open_leg("claims")
    # when billing lists without naming a department
    listed = list_all(stubs["billing on billing"])
    # then it sees its own legs and nobody else's
    ids = {leg.handoff_id for leg in listed}
    assert billing.handoff_id in ids and claims.handoff_id not in ids
    assert {leg.department for leg in listed} == {"billing"}
    # and the admin sees both
    assert {billing.handoff_id, claims.handoff_id} <= {leg.handoff_id for leg in list_all(stubs["admin"])}


# --- NotificationService.Subscribe -------------------------------------------------------


def receiver_records(bootstrap: str, receiver: str, until: Callable[[list], bool]) -> list:
    records = read_records(bootstrap, NOTIFICATIONS.name,
                           lambda found: until([r for r in found if r.key == receiver.encode()]), timeout=45)
    return [r for r in records if r.key == receiver.encode()]


@pytest.fixture(scope="module")
def notified(stack: Stack, stubs) -> dict[str, str]:
    """A cursor per department from which at least one of its breach notifications follows."""
    given = Given(stubs)
    for department in ("billing", "claims"):
        given.open_leg(department)
        given.open_leg(department)  # two, so one lies after the cursor "partition:0"
    for department in ("billing", "claims"):
        found = receiver_records(stack.bootstrap, department, lambda records: len(records) >= 2)
        assert len(found) >= 2, f"no breach notifications for {department}"
    return {department: f"{partition_for(department, PARTITIONS)}:0" for department in ("billing", "claims")}


SUBSCRIBE_MATRIX = list(zip(CALLERS, SUBSCRIBE_EXPECTED))


@pytest.mark.parametrize(("caller", "expected"), SUBSCRIBE_MATRIX, ids=[c for c, _ in SUBSCRIBE_MATRIX])
def test_subscribe_answers_each_caller_as_the_access_rules_say(stack, notified, caller: str, expected) -> None:
    # given breach notifications for the department the caller asks about
    department = CALLERS[caller].department
    with caller_channel(stack.services["notify"].grpc, CALLERS[caller]) as ch:
        # when the caller subscribes to it from a cursor before them
        stream = notify_grpc.NotificationServiceStub(ch).Subscribe(
            notify_api.SubscribeRequest(department=department, cursor=notified[department]), timeout=TIMEOUT)
        code, first = outcome(lambda: next(stream))
        stream.cancel()
    # then the stream is refused or delivers that department's notifications, as the rules say
    assert code == expected
    if code == OK:
        assert first.notification.department == department


# --- health ---------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "name"), [
    ("handoff", ""), ("handoff", "handoff.v1.HandoffService"), ("sla", ""),
    ("notify", ""), ("notify", "handoff.v1.NotificationService"),
])
def test_health_check_needs_no_token(stack, service: str, name: str) -> None:
    with grpc.insecure_channel(stack.services[service].grpc) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- raw customer ids -----------------------------------------------------------------


def every_record(bootstrap: str, deadline_seconds: float = 30) -> dict[str, list]:
    """Every record of every topic on the broker, read up to the end offsets taken now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        topics = sorted(consumer.topics())
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: dict[str, list] = {topic: [] for topic in topics}
        deadline = time.monotonic() + deadline_seconds
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read every topic to its end in time"
            for tp, batch in consumer.poll(timeout_ms=300).items():
                found[tp.topic].extend(batch)
        return found
    finally:
        consumer.close()


def test_a_raw_customer_id_never_reaches_kafka(stack, stubs) -> None:
    # given a raw customer id, as a CRM knows it
    raw = f"CRM-{uuid.uuid4().hex}"
    pseudonym = customer_ref_for(raw, DEV_CUSTOMER_REF_KEY.encode())
    # when a leg is created, a contact recorded and the timeline read with it
    agent = stubs["agent"]
    leg = agent.CreateHandoff(api.CreateHandoffRequest(
        request_id=request_id(), case_id=unique("case"), customer_id=raw, department="billing"), timeout=TIMEOUT)
    contact = agent.RecordContact(api.RecordContactRequest(
        request_id=request_id(), customer_id=raw, channel=types_pb2.CONTACT_CHANNEL_CHAT), timeout=TIMEOUT)
    timeline = agent.GetCustomerTimeline(api.GetCustomerTimelineRequest(customer_id=raw), timeout=TIMEOUT)
    # then the service answers with the keyed pseudonym everywhere
    assert (leg.customer_ref, contact.customer_ref, timeline.customer_ref) == (pseudonym, pseudonym, pseudonym)
    assert {e.WhichOneof("entry") for e in timeline.entries} == {"handoff", "contact"}
    # and the pseudonym is what Kafka holds, the raw id in no record of any topic
    records = every_record(stack.bootstrap)
    # (one replica owns every partition: its commands go to its engine in process, not to
    # handoff.commands.v1; the answers come back on handoff.replies.v1)
    for topic in ("handoff.events.v1", "handoff.replies.v1", "contacts.v1"):
        assert any(pseudonym.encode() in (r.value or b"") for r in records[topic]), topic
    leaks = [(topic, r.partition, r.offset) for topic, batch in records.items() for r in batch
             if raw.encode() in (r.key or b"") + (r.value or b"") + b"".join(v for _, v in r.headers or ())]
    assert leaks == []


def test_a_raw_customer_id_never_reaches_the_service_logs(stack, stubs) -> None:
    # given a leg created with a raw customer id
    raw = f"CRM-{uuid.uuid4().hex}"
    stubs["agent"].CreateHandoff(api.CreateHandoffRequest(
        request_id=request_id(), case_id=unique("case"), customer_id=raw, department="claims"), timeout=TIMEOUT)
    # then no service wrote it to its log
    logs = sorted((stack.workdir / "logs").glob("*.log"))
    assert logs
    assert [path.name for path in logs if raw in path.read_text(errors="replace")] == []


BLANK_CUSTOMER_ID = {
    "CreateHandoff": lambda stub: stub.CreateHandoff(api.CreateHandoffRequest(
        request_id=request_id(), case_id=unique("case"), customer_id="   ", department="billing"), timeout=TIMEOUT),
    "RecordContact": lambda stub: stub.RecordContact(api.RecordContactRequest(
        request_id=request_id(), customer_id="   ", channel=types_pb2.CONTACT_CHANNEL_CALL), timeout=TIMEOUT),
    "GetCustomerTimeline": lambda stub: stub.GetCustomerTimeline(
        api.GetCustomerTimelineRequest(customer_id="   "), timeout=TIMEOUT),
}


@pytest.mark.parametrize("rpc", BLANK_CUSTOMER_ID)
def test_a_blank_customer_id_is_invalid_argument_naming_the_field(stubs, rpc: str) -> None:
    # when an allowed caller gives a customer id of blanks, which cannot be pseudonymised
    code, error = outcome(lambda: BLANK_CUSTOMER_ID[rpc](stubs["agent"]))
    # then it is a bad request naming the field, not an unexpected server error
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code}: {error.details()}"
    assert error.details().startswith("customer_id:")
