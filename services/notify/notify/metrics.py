"""The notify service's metrics (DESIGN.md section 11)."""

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "handoff_notifications_total", "Notifications by channel and outcome (requested, delivered, duplicate).",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "handoff_notification_delivery_latency_seconds",
    "Time from the event a notification is about to its delivery, by channel.",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SUBSCRIBERS = Gauge("handoff_subscribers", "Subscribe streams connected to this replica.")
