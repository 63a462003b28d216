"""Analytics (extension, /x-tams/analytics): figures on known content, on every metadata store."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from endpoints import Content
from helpers import STORAGE_ID, STORAGE_LABEL, Tams, audio_flow, new_id
from spec import assert_valid

ANALYTICS = "/x-tams/analytics"
SECOND = 1_000_000_000


def answer(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(f"{ANALYTICS}{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_flow_usage_ranks_flows_by_segments_and_duration(client: TestClient, content: Content) -> None:
    # The content: its main flow has two one-second segments, a doomed flow one, the member flow none.
    flows = answer(client, "/flow-usage")["flows"]
    assert [(flow["segment_count"], flow["duration_ns"]) for flow in flows] == [(2, 2 * SECOND), (1, SECOND), (0, 0)]
    assert (flows[0]["flow_id"], flows[0]["label"]) == (content.flow_id, "main")
    assert flows[2]["flow_id"] == content.member_flow_id
    assert answer(client, "/flow-usage", limit=1)["flows"] == flows[:1]


def test_format_distribution_counts_flows(tams: Tams, content: Content) -> None:
    tams.put_flow(make=audio_flow)
    figures = answer(tams.client, "/formats")
    assert figures["flow_count"] == 4
    assert figures["formats"] == [
        {"value": "urn:x-nmos:format:video", "flow_count": 3},
        {"value": "urn:x-nmos:format:audio", "flow_count": 1},
    ]
    assert figures["codecs"] == [{"value": "video/h264", "flow_count": 3}, {"value": "audio/aac", "flow_count": 1}]
    assert figures["containers"] == [{"value": "video/mp2t", "flow_count": 4}]


def test_storage_usage_counts_instances_per_backend(tams: Tams, content: Content) -> None:
    # Three registered objects (two of the main flow, one of the doomed flow), one allocated and unregistered.
    tams.register(tams.put_flow(), new_id(), "[0:0_1:0)", get_urls=[{"url": "http://elsewhere/x", "label": "x"}])
    figures = answer(tams.client, "/storage")
    assert figures["storage_backends"] == [
        {"storage_id": STORAGE_ID, "label": STORAGE_LABEL, "instances": 4, "bytes": None}
    ]
    assert (figures["media_objects"], figures["unregistered_objects"]) == (4, 1)
    assert (figures["uncontrolled_only_objects"], figures["instances_awaiting_deletion"]) == (1, 0)


def test_timerange_analysis_of_a_flow_finds_its_gaps(tams: Tams) -> None:
    flow_id = tams.put_flow()
    tams.add_segments(flow_id, "[0:0_1:0)", "[3:0_4:0)", "[5:0_7:0)")
    figures = answer(tams.client, f"/flows/{flow_id}/timerange", max_gaps=1)
    assert figures == {
        "flow_ids": [flow_id],
        "timerange": "[0:0_7:0)",
        "segment_count": 3,
        "duration_ns": 4 * SECOND,
        "min_segment_ns": SECOND,
        "max_segment_ns": 2 * SECOND,
        "mean_segment_ns": 4 * SECOND / 3,
        "gap_count": 2,
        "gap_ns": 3 * SECOND,
        "gaps": ["[1:0_3:0)"],
    }
    assert answer(tams.client, f"/flows/{flow_id}/timerange")["gaps"] == ["[1:0_3:0)", "[4:0_5:0)"]


def test_timerange_analysis_of_a_source_covers_its_flows_together(tams: Tams) -> None:
    source_id = new_id()
    first, second = tams.put_flow(source_id=source_id), tams.put_flow(source_id=source_id)
    tams.add_segments(first, "[0:0_2:0)")
    tams.add_segments(second, "[1:0_3:0)", "[5:0_6:0)")  # overlaps the first flow, then leaves a gap
    figures = answer(tams.client, f"/sources/{source_id}/timerange")
    assert sorted(figures["flow_ids"]) == sorted([first, second])
    assert (figures["timerange"], figures["segment_count"], figures["duration_ns"]) == ("[0:0_6:0)", 3, 4 * SECOND)
    assert (figures["gaps"], figures["gap_ns"]) == (["[3:0_5:0)"], 2 * SECOND)


def test_timerange_analysis_of_a_flow_without_segments(tams: Tams) -> None:
    flow_id = tams.put_flow()
    figures = answer(tams.client, f"/flows/{flow_id}/timerange")
    assert (figures["timerange"], figures["segment_count"], figures["min_segment_ns"], figures["gaps"]) == (
        "()",
        0,
        None,
        [],
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/flow-usage", {"limit": "0"}),
        ("/flow-usage", {"limit": "1001"}),
        ("/flow-usage", {"limit": "many"}),
        ("/flows/{flow}/timerange", {"max_gaps": "-1"}),
        ("/sources/{source}/timerange", {"max_gaps": "x"}),
    ],
)
def test_bad_parameters_are_400(client: TestClient, content: Content, path: str, params: dict[str, str]) -> None:
    response = client.get(ANALYTICS + path.format(flow=content.flow_id, source=content.source_id), params=params)
    assert response.status_code == 400
    assert_valid(response.json(), "error.json")


@pytest.mark.parametrize("kind", ["flows", "sources"])
def test_timerange_analysis_of_unknown_ids_is_404(client: TestClient, kind: str) -> None:
    response = client.get(f"{ANALYTICS}/{kind}/{new_id()}/timerange")
    assert response.status_code == 404
    assert_valid(response.json(), "error.json")


def test_extension_paths_are_documented_and_tagged(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    extension = {path: operations for path, operations in paths.items() if path.startswith("/x-tams/")}
    assert set(extension) >= {f"{ANALYTICS}/flow-usage", "/x-tams/deleted-flows", "/x-tams/flows/{flow_id}/restore"}
    for operations in extension.values():
        for operation in operations.values():
            assert operation["tags"][0].startswith("x-tams:"), operation
