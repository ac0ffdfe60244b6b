"""gRPC limits: read from GRPC_* settings, and the token bucket behind the per-token rate."""

from __future__ import annotations

import pytest

from common.limits import GrpcLimits, TokenBucket
from common.settings import SettingsError, grpc_limits


def test_limits_default_to_safe_values_without_settings() -> None:
    assert grpc_limits({}) == GrpcLimits(max_message_bytes=4 * 1024 * 1024, max_concurrent_streams=100,
                                         max_streams_per_principal=10, calls_per_second=100.0, burst=200,
                                         max_call_s=30.0, max_stream_s=3600.0)


def test_every_limit_is_read_from_its_variable() -> None:
    env = {"GRPC_MAX_MESSAGE_BYTES": "1024", "GRPC_MAX_CONCURRENT_STREAMS": "8", "GRPC_MAX_STREAMS_PER_PRINCIPAL": "2",
           "GRPC_CALLS_PER_SECOND": "2.5", "GRPC_BURST": "5", "GRPC_MAX_CALL_S": "1.5", "GRPC_MAX_STREAM_S": "60"}

    limits = grpc_limits(env)

    assert limits == GrpcLimits(1024, 8, 2, 2.5, 5, 1.5, 60.0)
    assert limits.server_options() == [("grpc.max_receive_message_length", 1024),
                                       ("grpc.max_send_message_length", 1024), ("grpc.max_concurrent_streams", 8)]


@pytest.mark.parametrize("variable", ["GRPC_MAX_MESSAGE_BYTES", "GRPC_MAX_STREAMS_PER_PRINCIPAL", "GRPC_CALLS_PER_SECOND",
                                      "GRPC_MAX_CALL_S"])
@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_limit_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}="):
        grpc_limits({variable: value})


def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)

    allowed = [bucket.take(100.0) for _ in range(3)]
    refused = bucket.take(100.0)
    after_half_a_second = bucket.take(100.5)
    at_once_again = bucket.take(100.5)

    assert allowed == [0.0, 0.0, 0.0]
    assert refused == pytest.approx(0.5)
    assert after_half_a_second == 0.0
    assert at_once_again == pytest.approx(0.5)
