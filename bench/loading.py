"""Loading flows through the API, as ingest does: a flow, then per batch `POST /flows/{id}/storage` for object ids and
one `POST /flows/{id}/segments`, each timed apart with the server's CPU time and writes; and the floor such a
registration is measured against, the same rows written with `executemany` straight into the server's database."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import Server, bytes_written, cpu_seconds, progress
from tams_api.routers.segments import new_object_id

# A video flow adapted from the spec's examples/flow-get-200-video-h264.json for PUT: server-managed
# fields (generation, created, *_updated, collected_by) dropped; "container" kept, storage needs it.
VIDEO_FLOW: dict[str, Any] = {
    "description": "Big Buck Bunny",
    "label": "bbb",
    "format": "urn:x-nmos:format:video",
    "tags": {"input_quality": "contribution"},
    "codec": "video/h264",
    "container": "video/mp2t",
    "avg_bit_rate": 2479,
    "segment_duration": {"numerator": 1},
    "essence_parameters": {
        "frame_rate": {"numerator": 24, "denominator": 1},
        "frame_width": 1280,
        "frame_height": 720,
        "bit_depth": 8,
        "interlace_mode": "progressive",
        "colorspace": "BT709",
        "transfer_characteristic": "SDR",
        "aspect_ratio": {"numerator": 16, "denominator": 9},
        "pixel_aspect_ratio": {"numerator": 1, "denominator": 1},
        "component_type": "YCbCr",
        "vert_chroma_subs": 2,
        "horiz_chroma_subs": 2,
        "avc_parameters": {"profile": 100, "level": 31, "flags": 0},
    },
}


@dataclass(slots=True)
class Spent:
    """Wall-clock time, the server's CPU time and its writes to storage, spent on one kind of request."""

    seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    server_write_bytes: int = 0


@contextmanager
def spending(spent: Spent, pid: int) -> Iterator[None]:
    cpu_before = cpu_seconds(pid)
    written_before = bytes_written(pid)
    started = time.perf_counter()
    yield
    spent.seconds += time.perf_counter() - started
    spent.server_cpu_seconds += cpu_seconds(pid) - cpu_before
    spent.server_write_bytes += bytes_written(pid) - written_before


@dataclass(slots=True)
class Stage:
    """Registration rates over one tenth of a load: shows whether they fall as the flow grows."""

    segments_done: int
    post_per_s: float
    post_per_server_cpu_s: float


@dataclass(slots=True)
class LoadResult:
    segments: int
    posts: Spent = field(default_factory=Spent)
    allocation: Spent = field(default_factory=Spent)
    wall_seconds: float = 0.0
    stages: list[Stage] = field(default_factory=list)

    @property
    def registration_per_s(self) -> float:
        return self.segments / self.posts.seconds

    @property
    def registration_per_server_cpu_s(self) -> float:
        """What one fully available core would sustain: independent of other load on the machine."""
        return self.segments / max(self.posts.server_cpu_seconds, 1e-9)  # CPU time counts in 10 ms ticks

    @property
    def overall_per_s(self) -> float:
        return self.segments / self.wall_seconds

    @property
    def kib_written_per_segment(self) -> float:
        """Storage writes (SQLite WAL and checkpoints) per segment, allocation included."""
        return (self.posts.server_write_bytes + self.allocation.server_write_bytes) / 1024 / self.segments


def create_flow(client: httpx.Client, flow_id: str) -> None:
    body = {**VIDEO_FLOW, "id": flow_id, "source_id": str(uuid.uuid4())}
    response = client.put(f"/flows/{flow_id}", json=body)
    if response.status_code not in (201, 204):
        raise RuntimeError(f"PUT /flows/{flow_id} answered {response.status_code}: {response.text}")


def allocate_object_ids(client: httpx.Client, flow_id: str, count: int) -> list[str]:
    object_ids: list[str] = []
    while len(object_ids) < count:
        response = client.post(f"/flows/{flow_id}/storage", json={"limit": count - len(object_ids)})
        if response.status_code != 201:
            raise RuntimeError(f"POST /flows/{flow_id}/storage answered {response.status_code}: {response.text}")
        object_ids += [item["object_id"] for item in response.json()["media_objects"]]
    return object_ids[:count]


def segments_body(first: int, object_ids: list[str]) -> bytes:
    """Contiguous one-second segments [n:0_n+1:0) from `first`, one allocated object each."""
    return orjson.dumps(
        [
            {"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"}
            for n, object_id in enumerate(object_ids, start=first)
        ]
    )


def post_segments(client: httpx.Client, flow_id: str, body: bytes) -> None:
    response = client.post(f"/flows/{flow_id}/segments", content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 201:
        raise RuntimeError(f"POST /flows/{flow_id}/segments answered {response.status_code}: {response.text[:500]}")


def stage_since(mark: tuple[int, Spent], done: int, posts: Spent) -> Stage:
    """Rates of the segment POSTs since `mark` (segments done then, and what the POSTs had spent then)."""
    done_before, spent_before = mark
    segments = done - done_before
    return Stage(
        segments_done=done,
        post_per_s=segments / (posts.seconds - spent_before.seconds),
        post_per_server_cpu_s=segments / max(posts.server_cpu_seconds - spent_before.server_cpu_seconds, 1e-9),
    )


def load_flow(client: httpx.Client, server: Server, flow_id: str, count: int, batch: int) -> LoadResult:
    """Create a flow and register `count` segments in bodies of `batch`; allocation and POSTs are timed apart."""
    result = LoadResult(segments=count)
    create_flow(client, flow_id)
    stage_size = max(count // 10, batch)
    mark = (0, Spent())
    started = time.perf_counter()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        with spending(result.allocation, server.pid):
            object_ids = allocate_object_ids(client, flow_id, size)
        body = segments_body(first, object_ids)
        with spending(result.posts, server.pid):
            post_segments(client, flow_id, body)
        done = first + size
        if done - mark[0] >= stage_size or done == count:
            stage = stage_since(mark, done, result.posts)
            result.stages.append(stage)
            progress(
                f"  {done:,} / {count:,} segments; the last {done - mark[0]:,} at {stage.post_per_s:,.0f} seg/s "
                f"in POSTs ({stage.post_per_server_cpu_s:,.0f} per server CPU-second)"
            )
            mark = (done, Spent(result.posts.seconds, result.posts.server_cpu_seconds))
    result.wall_seconds = time.perf_counter() - started
    return result


# -- the floor: the same rows, executemany'd ---------------------------------------------------------------------


def executemany_floor(database: Path, flow_id: str, first: int, count: int, batch: int) -> float:
    """Segments per second of registration's irreducible writes, on the server's database (the server stopped):
    per `batch`, in one transaction as the server commits it, the allocated objects marked registered and the
    segments inserted, each with one `executemany`; contiguous segments from `first` on the flow. Allocation is
    done first and not timed, as in the load. This knows the SQLite schema (tams_api/stores/sqlite/schema.py)."""
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=NORMAL")  # as the server's connections
        [flow_pk] = db.execute("SELECT pk FROM flows WHERE id = ?", (flow_id,)).fetchone()
        spent = 0.0
        for start in range(first, first + count, batch):
            ids = [new_object_id() for _ in range(batch)]
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO objects (id, storage_ids, content_type, allocated_for, allocated_ns) VALUES (?, '[]', "
                "'video/mp2t', ?, 0)",
                [(object_id, flow_id) for object_id in ids],
            )
            db.execute("COMMIT")
            segments = [
                (flow_pk, n * 10**9, (n + 1) * 10**9 - 1, f"[{n}:0_{n + 1}:0)", object_id)
                for n, object_id in enumerate(ids, start=start)
            ]
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "UPDATE objects SET registered = 1, first_flow_id = ?, timerange = ? WHERE id = ?",
                [(flow_id, timerange, object_id) for _, _, _, timerange, object_id in segments],
            )
            db.executemany(
                "INSERT INTO segments (flow_pk, start_ns, end_ns, timerange, object_id) VALUES (?, ?, ?, ?, ?)",
                segments,
            )
            db.execute("COMMIT")
            spent += time.perf_counter() - started
        return count / spent
    finally:
        db.close()
