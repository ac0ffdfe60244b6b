"""Request fields read alike by the servicers: instants, page sizes, page tokens."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import timestamp_pb2
from handoff.v1 import sla_service_pb2

from common import request_fields
from common.codec import to_timestamp
from common.validation import InvalidField
from sla.entrypoints import grpc_api as sla_api
from tests.unit.conftest import T0


def test_an_unset_instant_is_none_and_a_set_one_comes_back_in_utc():
    assert request_fields.instant(sla_service_pb2.ListBreachesRequest(), "since") is None
    request = sla_service_pb2.ListBreachesRequest(since=to_timestamp(T0))
    assert request_fields.instant(request, "since") == T0


def test_an_instant_out_of_range_names_its_field():
    request = sla_service_pb2.ListBreachesRequest(since=timestamp_pb2.Timestamp(seconds=10**12))
    with pytest.raises(InvalidField) as raised:
        request_fields.instant(request, "since")
    assert raised.value.field == "since"


@pytest.mark.parametrize("size, expected", [(0, request_fields.DEFAULT_PAGE), (1, 1), (500, 500)])
def test_page_size_zero_means_the_default(size, expected):
    assert request_fields.page_size(size) == expected


@pytest.mark.parametrize("size", [-1, request_fields.MAX_PAGE + 1])
def test_page_size_out_of_range_is_refused(size):
    with pytest.raises(InvalidField, match="page_size: must be 0..500"):
        request_fields.page_size(size)


def test_a_breach_page_token_names_the_breach_it_was_made_from():
    key = (T0, "h-1", "ack", 2)
    assert sla_api.decode_page_token(sla_api.encode_page_token(key)) == key
    assert sla_api.decode_page_token("") is None


@pytest.mark.parametrize("text", ["not base64 at all!", "2025-03-03T09:00:00+00:00|h-1|ack",
                                  "2025-03-03T09:00:00|h-1|ack|2", "2025-03-03T09:00:00+00:00||ack|2",
                                  "2025-03-03T09:00:00+00:00|h-1|ack|two"])
def test_a_breach_page_token_the_service_did_not_hand_out_is_refused(text):
    token = text if "!" in text else base64.urlsafe_b64encode(text.encode()).decode()
    with pytest.raises(InvalidField, match="page_token: is not a token this service handed out"):
        sla_api.decode_page_token(token)
