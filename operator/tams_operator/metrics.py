"""The operator's Prometheus metrics, served on TAMS_OPERATOR_METRICS_PORT (the names are what
monitoring/ queries)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "tams_operator_reconciles_total", "TamsStore reconciles, by outcome (ok, not_ready, invalid_spec)", ["outcome"]
)
RECONCILE_SECONDS = Histogram("tams_operator_reconcile_duration_seconds", "Seconds one TamsStore reconcile takes")
CONDITION_CHANGES = Counter(
    "tams_operator_condition_changes_total",
    "Condition transitions of the operator's resources",
    ["kind", "type", "status", "reason"],
)
TIME_TO_READY = Histogram(
    "tams_operator_time_to_ready_seconds",
    "Seconds a resource was not Ready before it became Ready (after its creation, a spec change or an outage)",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
STORE_READY = Gauge(
    "tams_operator_store_ready", "1 while a TamsStore's Ready condition is True, else 0", ["namespace", "name"]
)
STORE_PAUSED = Gauge(
    "tams_operator_store_paused",
    "1 while a TamsStore is paused (annotation tams-operator.io/paused), else 0",
    ["namespace", "name"],
)
