"""Metric labels stay bounded: handoff takes only the departments of its departments file,
and every service's /metrics is clean for Prometheus."""

from __future__ import annotations

import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from deploy import tools
from devstack.stack import Stack
from tests.support import admin_channel, pseudonym, rpc_error, running_stack, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("bounded-labels"), gateways=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def handoffs(stack: Stack) -> Iterator[api_grpc.HandoffServiceStub]:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        yield api_grpc.HandoffServiceStub(channel)


def create_request(department: str) -> api.CreateHandoffRequest:
    return api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                    customer_ref=pseudonym(), department=department, summary="refund")


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


def test_every_metrics_endpoint_passes_promtool_and_has_no_created_series(stack, handoffs):
    handoffs.CreateHandoff(create_request("claims"), timeout=10)  # so labelled series exist
    scraped = {name: urllib.request.urlopen(process.endpoints["metrics"], timeout=10).read().decode()
               for name, process in stack.services.items() if "metrics" in process.endpoints}
    assert {"handoff", "sla", "notify", "gateway-webhook", "gateway-email", "gateway-log"} <= set(scraped)
    for name, text in scraped.items():
        assert "handoff_" in text, name
        assert not re.findall(r"^\w+_created[{ ]", text, re.MULTILINE), name
        checked = subprocess.run([str(tools.promtool()), "check", "metrics"], input=text,
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
            name, checked.stdout + checked.stderr)
