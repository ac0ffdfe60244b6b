"""Customer identifiers at the handoff service's edge: a customer_ref passed in must be shaped
as our pseudonyms, and the pseudonymisation key can be rotated, the old key still finding a
customer's history by raw id until its window ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2

from common.auth import customer_ref_for
from common.localkafka import LocalKafka, create_topics
from devstack.stack import Stack
from tests.support import admin_channel, pseudonym, rpc_error, unique, write_policies

pytestmark = pytest.mark.e2e

OLD_KEY, NEW_KEY = "old-customer-ref-key-0001", "new-customer-ref-key-0002"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kafka and the handoff service alone: the edge is all these tests need."""
    workdir: Path = tmp_path_factory.mktemp("customer-refs")
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(workdir, write_policies(workdir), bootstrap=kafka.bootstrap)
        try:
            stack.start_service("handoff", env={"CUSTOMER_REF_KEY": OLD_KEY})
            yield stack
        finally:
            stack.stop()


def restart_handoff(stack: Stack, **env: str) -> api_grpc.HandoffServiceStub:
    assert stack.services["handoff"].stop(timeout=20) == 0
    return stack.start_service("handoff", env=env)


def call(stack: Stack, method: str, request):
    with admin_channel(stack.services["handoff"].grpc) as channel:
        return getattr(api_grpc.HandoffServiceStub(channel), method)(request, timeout=15)


def create(customer: dict) -> api.CreateHandoffRequest:
    return api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"), department="billing",
                                    **customer)


def contact(customer: dict) -> api.RecordContactRequest:
    return api.RecordContactRequest(request_id=str(uuid.uuid4()), channel=types_pb2.CONTACT_CHANNEL_CALL, **customer)


@pytest.mark.parametrize("ref", ["cust-042", "447700900123", "C-" + "0" * 32, "c-" + "0" * 31])
@pytest.mark.parametrize("method, build", [
    ("CreateHandoff", create), ("RecordContact", contact),
    ("GetCustomerTimeline", lambda customer: api.GetCustomerTimelineRequest(**customer)),
], ids=["create", "contact", "timeline"])
def test_a_customer_ref_not_shaped_as_a_pseudonym_is_refused_naming_the_field(stack: Stack, ref, method, build) -> None:
    error = rpc_error(lambda: call(stack, method, build({"customer_ref": ref})))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("customer_ref: must be a pseudonym, c- and 32 lower-case hex digits")


def test_a_pseudonym_passed_in_is_taken_as_it_is(stack: Stack) -> None:
    ref = pseudonym()

    leg = call(stack, "CreateHandoff", create({"customer_ref": ref}))
    timeline = call(stack, "GetCustomerTimeline", api.GetCustomerTimelineRequest(customer_ref=ref))

    assert leg.customer_ref == timeline.customer_ref == ref
    assert [entry.handoff.handoff_id for entry in timeline.entries] == [leg.handoff_id]


def test_a_rotated_key_finds_the_old_history_by_raw_id_until_its_window_ends(stack: Stack) -> None:
    raw = f"CUST-{uuid.uuid4().hex[:10]}"
    old_ref, new_ref = customer_ref_for(raw, OLD_KEY.encode()), customer_ref_for(raw, NEW_KEY.encode())
    # given a contact written under the old key
    before = call(stack, "RecordContact", contact({"customer_id": raw}))
    # when the key is rotated, the old one kept for lookups for an hour
    window = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    restart_handoff(stack, CUSTOMER_REF_KEY=NEW_KEY, CUSTOMER_REF_PREVIOUS_KEY=OLD_KEY,
                    CUSTOMER_REF_PREVIOUS_UNTIL=window)
    leg = call(stack, "CreateHandoff", create({"customer_id": raw}))
    during = call(stack, "GetCustomerTimeline", api.GetCustomerTimelineRequest(customer_id=raw))
    # and once the window is over
    restart_handoff(stack, CUSTOMER_REF_KEY=NEW_KEY, CUSTOMER_REF_PREVIOUS_KEY=OLD_KEY,
                    CUSTOMER_REF_PREVIOUS_UNTIL=(datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat())
    after = call(stack, "GetCustomerTimeline", api.GetCustomerTimelineRequest(customer_id=raw))

    # then new writes use the new key; the timeline found both until the window ended
    assert (before.customer_ref, leg.customer_ref) == (old_ref, new_ref)
    assert during.customer_ref == after.customer_ref == new_ref
    assert [entry.WhichOneof("entry") for entry in during.entries] == ["contact", "handoff"]
    assert (during.entries[0].contact.contact_id, during.entries[1].handoff.handoff_id) == (
        before.contact_id, leg.handoff_id)
    assert [entry.handoff.handoff_id for entry in after.entries] == [leg.handoff_id]
