"""The Grafana dashboards, as code: one for SREs, one for contact-centre managers.

`python -m deploy.generate` writes them to deploy/grafana/*.json and into the production
overlay's ConfigMap. Every panel's PromQL is checked by promtool and, in the Prometheus
end-to-end test, run against a real server.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(title: str, exprs: dict[str, str], unit: str = "short", kind: str = "timeseries") -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for index, (legend, expr) in enumerate(exprs.items())],
    }


def _dashboard(uid: str, title: str, rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
    panels = []
    for y, row in enumerate(rows):
        width = 24 // len(row)
        for x, panel in enumerate(row):
            panels.append({**panel, "id": len(panels) + 1, "gridPos": {"h": 8, "w": width, "x": x * width, "y": y * 8}})
    return {
        "uid": uid,
        "title": title,
        "tags": ["handoff-tracking"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": panels,
    }


def sre() -> dict[str, Any]:
    return _dashboard("handoff-sre", "Handoff tracking: service health", [
        [_panel("gRPC requests by service and method", {
            "{{job}} {{method}}": "sum by (job, method) (rate(handoff_grpc_requests_total[5m]))"}, "reqps"),
         _panel("gRPC server errors (ratio)", {
             "{{job}} {{method}}": "job_method:handoff_grpc_server_errors:ratio5m"}, "percentunit"),
         _panel("gRPC p99 latency", {
             "{{job}} {{method}}": "job_method:handoff_grpc_request_duration_seconds:p99_5m"}, "s")],
        [_panel("Consumer lag", {"{{group}} {{topic}}": "sum by (group, topic) (handoff_consumer_lag_records)"}),
         _panel("Event-time lag", {
             "sla {{instance}}": "max by (instance) (handoff_sla_event_time_lag_seconds)",
             "notify {{instance}}": "max by (instance) (handoff_notify_event_time_lag_seconds)"}, "s"),
         _panel("Assigned partitions per worker", {
             "{{group}} {{instance}}": "sum by (group, instance) (handoff_assigned_partitions)"})],
        [_panel("Dead-letter records and read-model skips", {
            "DLQ {{job}} {{topic}}": "sum by (job, topic) (increase(handoff_dlq_records_total[10m]))",
            "skipped {{job}} {{read_model}}": "sum by (job, read_model) (increase(handoff_read_model_failures_total[10m]))"}),
         _panel("GC pauses (p99)", {
             "{{job}}": "histogram_quantile(0.99, sum by (job, le) (rate(handoff_gc_pause_seconds_bucket[5m])))"}, "s"),
         _panel("Notification delivery", {
             "success ratio": "handoff_notification_delivery:success_ratio5m",
             "{{channel}} {{outcome}}": "sum by (channel, outcome) (rate(handoff_notifications_total[5m]))"}),
         _panel("Scrape targets up", {"{{job}}": "sum by (job) (up)"})],
    ])


def manager() -> dict[str, Any]:
    return _dashboard("handoff-manager", "Handoff tracking: departments", [
        [_panel("SLA breaches per hour, by department", {
            "{{department}}": "department:handoff_sla_breaches:rate5m * 3600"}),
         _panel("SLA compliance (last hour), by department", {
             "{{department}}": "department:handoff_sla_compliance:ratio1h"}, "percentunit")],
        [_panel("Repeat contacts by cause", {
            "{{cause}}": "sum by (cause) (increase(handoff_repeat_contacts_total[1h]))"}),
         _panel("Avoidable repeat contacts (last hour), by department", {
             "{{department}}": "department:handoff_avoidable_repeats:increase1h"})],
        [_panel("Failure-demand cost per hour, by department", {
            "{{department}} {{currency}}": "department_currency:handoff_failure_demand_cost:rate1h"}),
         _panel("First-contact resolution (last 24 h)", {
             "overall": "1 - sum(increase(handoff_repeat_contacts_total[1d])) / sum(increase(handoff_sla_contacts_total[1d]))"},
             "percentunit", "stat")],
    ])


DASHBOARDS = {"sre.json": sre, "manager.json": manager}


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of `dashboard`'s panels."""
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
