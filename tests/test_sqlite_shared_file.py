"""Two API processes on one data directory, as the old and the new pod of an embedded store are while a rollout
surges (the operator keeps them on one node, where they share the ReadWriteOnce volumes): writes through both at
once all land, and each serves what the other wrote."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from background import api_process
from helpers import new_id, video_flow

SEGMENTS_EACH = 25


def register_segments(base_url: str, flow_id: str) -> list[int]:
    """A flow and its segments, one request each; the status codes."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        statuses = [client.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id())).status_code]
        for second in range(SEGMENTS_EACH):
            object_id = client.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"][0]
            segment = {"object_id": object_id["object_id"], "timerange": f"[{second}:0_{second + 1}:0)"}
            statuses.append(client.post(f"/flows/{flow_id}/segments", json=segment).status_code)
        return statuses


def test_an_old_and_a_new_process_share_the_sqlite_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with api_process(data) as old, api_process(data) as new:
        flows = {old: new_id(), new: new_id()}
        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(register_segments, flows, flows.values()))
        assert statuses == [[201] + [201] * SEGMENTS_EACH] * 2, "no write refused while the other process writes"

        for reader, writer in ((old, new), (new, old)):
            segments = httpx.get(f"{reader}/flows/{flows[writer]}/segments", params={"limit": 100}).json()
            assert [segment["timerange"] for segment in segments] == [
                f"[{second}:0_{second + 1}:0)" for second in range(SEGMENTS_EACH)
            ]
