"""monitoring/: the Grafana dashboard and the Prometheus alert rules load, and query only what the code exports.

No PromQL parser is at hand (promtool is a Go binary), so expressions are checked minimally: after removing
strings, label matchers, range selectors and grouping clauses, every remaining identifier that is not a
function call, keyword or number must be a series the API or the operator exports. Syntax is not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tams_operator.metrics
import yaml
from prometheus_client.metrics import MetricWrapperBase

import tams_api.metrics
from tams_api.metrics import StoreCollector
from tams_api.stores.sqlite import SqliteMetadataStore

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "monitoring" / "grafana" / "tams.json"
ALERTS = ROOT / "monitoring" / "prometheus" / "alerts.yaml"

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def families_of(module: ModuleType) -> Iterable[Any]:
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            yield from value.describe()


def exported_series() -> set[str]:
    """Every series name the API and the operator export, suffixes included (the parser's family names of
    counters lack `_total`)."""
    families = [
        *families_of(tams_api.metrics),
        *families_of(tams_operator.metrics),
        *StoreCollector(SqliteMetadataStore(":memory:")).describe(),
    ]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def metric_names(expression: str) -> set[str]:
    """The series an expression selects, by the minimal reading described above."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):  # not within a number or duration
        name, following = match.group(), text[match.end() :].lstrip()[:1]
        if following != "(" and name not in KEYWORDS:
            names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def test_the_reader_finds_metric_names_and_only_them() -> None:
    expression = (
        'sum by (route, le) (rate(tams_api_requests_total{status=~"5..", route!="x"}[5m])) / '
        "ignoring(status) max(tams_api_outbox_depth offset 1h) > 0.05 unless on (kind) up"
    )
    assert metric_names(expression) == {"tams_api_requests_total", "tams_api_outbox_depth", "up"}


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids are unique"
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(target["expr"] and target["refId"] for target in panel["targets"]), panel["title"]
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables


def test_the_alert_rules_have_what_alertmanager_needs() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_only_exported_metrics(source: str) -> None:
    expressions = dashboard_expressions() if source == "dashboard" else [rule["expr"] for rule in alert_rules()]
    exported = exported_series()
    for expression in expressions:
        names = metric_names(expression)
        assert names, f"no metric in {expression!r}"
        assert names <= exported, f"{sorted(names - exported)} in {expression!r} are not exported"


def test_the_dashboard_shows_every_series_the_issue_lists() -> None:
    used = set().union(*map(metric_names, dashboard_expressions()))
    listed = {
        "tams_api_requests_total",
        "tams_api_request_duration_seconds_bucket",
        "tams_api_segments_registered_total",
        "tams_api_media_bytes_written_total",
        "tams_api_webhook_deliveries_total",
        "tams_api_webhook_errors_total",
        "tams_api_outbox_depth",
        "tams_operator_reconciles_total",
        "tams_operator_time_to_ready_seconds_bucket",
    }
    assert listed <= used
