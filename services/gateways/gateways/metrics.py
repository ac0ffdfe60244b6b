"""The gateways' metrics (bounded labels, base units); `channel` is the gateway's kind, never a target."""

from prometheus_client import Counter, Histogram

# delivered, unavailable, rejected: one per downstream attempt. duplicate: answered from the
# record of earlier deliveries (or by joining one in flight). in_doubt: refused because a send
# of that id was cut off by a restart. invalid: refused before sending.
OUTCOMES = ("delivered", "duplicate", "in_doubt", "unavailable", "rejected", "invalid", "error")

DELIVERIES = Counter(
    "handoff_gateway_deliveries_total",
    "Deliveries asked for (a Deliver call, or one entry of a DeliverBatch) by channel and outcome.",
    ["channel", "outcome"],
)
DELIVERY_DURATION = Histogram(
    "handoff_gateway_delivery_duration_seconds",
    "Time a downstream delivery attempt took (HTTP POST, SMTP transaction, log write), by channel.",
    ["channel"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def expose(channel: str) -> None:
    """Create every series of `channel` at zero, so dashboards and alerts see them from the start."""
    for outcome in OUTCOMES:
        DELIVERIES.labels(channel, outcome)
    DELIVERY_DURATION.labels(channel)
