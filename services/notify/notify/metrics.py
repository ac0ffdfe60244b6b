"""The notify service's metrics (listed with every service's in the README). Labels are
bounded: channel is a channel kind (subscription, webhook, email, log), never a target or an id.

DLQ records are counted by common.metrics.DLQ_RECORDS (handoff_dlq_records_total{topic}).
"""

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "handoff_notifications_total",
    "Notifications by channel kind and outcome (requested, delivered, failed, suppressed, duplicate).",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "handoff_notification_delivery_seconds",
    "Time from the event a notification is about to its delivery, by channel kind.",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ESCALATIONS = Counter(
    "handoff_escalations_total", "Escalation steps taken, by level (0: a reminder to the first receiver).", ["level"],
)
SUPPRESSED = Counter(
    "handoff_notifications_suppressed_total", "Notifications held back, by reason (silence, inhibition, history).", ["reason"],
)
RETRIES = Counter(
    "handoff_delivery_retries_total", "Delivery attempts that failed and will be tried again, by channel kind.",
    ["channel"],
)
SUBSCRIBERS = Gauge("handoff_subscribers", "Subscribe streams connected to this replica.")
ACKNOWLEDGEMENTS = Counter(
    "handoff_notification_acknowledgements_total", "Notifications acknowledged, by source (api, leg).", ["source"],
)
EVENT_TIME_LAG = Gauge(
    "handoff_notify_event_time_lag_seconds",
    "Wall time minus stage 2's clock (0 on wall time; the replay's distance on event time).",
)


# The children of the per-notification metrics, looked up once per label set (the label
# sets are bounded; prometheus_client's `labels` costs several microseconds a call).
@cache
def notifications(channel: str, outcome: str):
    """handoff_notifications_total{channel, outcome}."""
    return NOTIFICATIONS.labels(channel, outcome)


@cache
def delivery_latency(channel: str):
    """handoff_notification_delivery_seconds{channel}."""
    return DELIVERY_LATENCY.labels(channel)
