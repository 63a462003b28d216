"""How many API pods a TamsStore runs and how they are kept: the autoscaler of its replicas, the disruption budget
that lets evictions take one pod at a time, and the PodMonitor that has them scraped (pure builders of the spec)."""

from __future__ import annotations

from typing import Any

from .tamsstore import TAMS_STORE_API_VERSION, Store

Manifest = dict[str, Any]


def horizontal_pod_autoscaler(store: Store) -> Manifest | None:
    """Scales the TamsStore itself (its scale subresource sets spec.replicas), so that `kubectl scale`, the autoscaler
    and the operator agree on one number; it reads the CPU of the API pods (status.selector)."""
    autoscaling = store.spec.autoscaling
    if autoscaling is None:
        return None
    target = {"type": "Utilization", "averageUtilization": autoscaling.target_cpu_utilization_percentage}
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": TAMS_STORE_API_VERSION, "kind": "TamsStore", "name": store.name},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
    }
    if autoscaling.scale_down_stabilization_seconds is not None:
        window = autoscaling.scale_down_stabilization_seconds
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": window}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": store.meta(store.child_name, "api"),
        "spec": spec,
    }


def pod_disruption_budget(store: Store) -> Manifest | None:
    """By default only for stores that run more than one API pod: over a single pod a budget either protects nothing
    or blocks every node drain."""
    budget = store.spec.pod_disruption_budget
    enabled = budget.enabled if budget.enabled is not None else store.min_replicas > 1
    if not enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": store.meta(store.child_name, "api"),
        "spec": {"maxUnavailable": budget.max_unavailable, "selector": {"matchLabels": store.labels("api")}},
    }


def pod_monitor(store: Store) -> Manifest | None:
    """A Prometheus Operator PodMonitor of the API pods' /metrics (and the worker's, where it runs alone)."""
    if not store.spec.monitoring.pod_monitor:
        return None
    endpoints = [{"port": "http", "path": "/metrics"}]
    if store.shared_metadata:
        endpoints.append({"port": "metrics", "path": "/metrics"})
    selector = {key: value for key, value in store.labels("api").items() if key != "app.kubernetes.io/component"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": store.meta(store.child_name, "api"),
        "spec": {"selector": {"matchLabels": selector}, "podMetricsEndpoints": endpoints},
    }
