"""Metric labels stay bounded: handoff takes only the departments of its departments file,
and every service's /metrics is clean for Prometheus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from devstack.stack import Stack
from tests.support import admin_channel, rpc_error, running_stack, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("bounded-labels")) as stack:
        yield stack


@pytest.fixture(scope="module")
def handoffs(stack: Stack) -> Iterator[api_grpc.HandoffServiceStub]:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        yield api_grpc.HandoffServiceStub(channel)


def create_request(department: str) -> api.CreateHandoffRequest:
    return api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                    customer_ref=unique("cust"), department=department, summary="refund")


def test_create_for_an_unknown_department_is_invalid_and_names_the_known_ones(handoffs):
    error = rpc_error(lambda: handoffs.CreateHandoff(create_request("collections"), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("department: 'collections' is not a known department; known: billing, ")
    assert "claims" in error.details()


def test_transfer_to_an_unknown_department_is_invalid_and_the_leg_stays(handoffs):
    leg = handoffs.CreateHandoff(create_request("billing"), timeout=10)
    error = rpc_error(lambda: handoffs.TransferHandoff(api.TransferHandoffRequest(
        request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id, to_department="collections", reason="wrong queue"),
        timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "to_department: 'collections' is not a known department" in error.details()
    assert handoffs.GetHandoff(api.GetHandoffRequest(handoff_id=leg.handoff_id), timeout=10).department == "billing"


def test_create_and_transfer_between_known_departments_work(handoffs):
    leg = handoffs.CreateHandoff(create_request("billing"), timeout=10)
    moved = handoffs.TransferHandoff(api.TransferHandoffRequest(
        request_id=str(uuid.uuid4()), handoff_id=leg.handoff_id, to_department="claims", reason="a claim"), timeout=10)
    assert moved.opened.department == "claims"
