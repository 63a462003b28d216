"""Where a segment window GET's server time goes: py-spy samples one `tams-api serve` process (GIL holder only,
so idle waiting is not counted) while clients keep it busy with the window GET, and the samples are summed into
cost centres by the innermost frame that belongs to a known layer.

    python -m bench.profile_window [--segments 100000] [--seconds 20]

Needs py-spy (in the test extra) and permission to ptrace the server (root, or CAP_SYS_PTRACE in a container).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import httpx

from bench.harness import progress, running_server
from bench.loading import load_flow
from bench.segments import window_path
from bench.wrk import install_wrk, wrk_round

# (cost centre, what a frame's file path contains), first match from the innermost frame outwards wins.
CENTRES = (
    ("SQL (sqlite3)", "tams_api/stores/sqlite"),
    ("SQL (sqlite3)", "tams_api/stores/sql/"),
    ("media URLs (kept or signed)", "tams_api/stores/media.py"),
    ("media URLs (kept or signed)", "tams_api/stores/filesystem"),
    ("segment JSON and get_urls", "tams_api/urls.py"),
    ("JSON response, paging headers", "tams_api/http.py"),
    ("timeranges", "tams_api/timerange.py"),
    ("route: auth, query, store read", "tams_api/routers/common.py"),
    ("handler", "tams_api/routers/"),
    ("data plane dispatch", "tams_api/dataplane.py"),
    ("request metrics", "tams_api/metrics.py"),
    ("JSON encoding (orjson)", "orjson"),
    ("Starlette request/response", "starlette/"),
    ("FastAPI", "fastapi/"),
    ("uvicorn (HTTP parsing, send)", "uvicorn/"),
    ("asyncio / uvloop", "asyncio/"),
    ("asyncio / uvloop", "uvloop"),
)


def centre(stack: str) -> str:
    """The cost centre of one sampled stack (py-spy raw: frames outermost first, `;`-separated)."""
    for frame in reversed(stack.split(";")):
        for name, marker in CENTRES:
            if marker in frame:
                return name
    return "other"


def summarise(raw: Path) -> list[tuple[str, float]]:
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[centre(stack)] += int(count)
    total = sum(counts.values()) or 1
    return [(name, count / total) for name, count in counts.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_window", description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000, help="segments of the flow (default 100000)")
    parser.add_argument("--seconds", type=int, default=20, help="seconds of sampling (default 20)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive clients (default 8)")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    install_wrk()
    flow_id = str(uuid.uuid4())
    with running_server(False) as server, tempfile.TemporaryDirectory() as scratch:
        with httpx.Client(base_url=server.base_url, timeout=300) as client:
            load_flow(client, server, flow_id, args.segments, 1_000)
        path = window_path(flow_id, args.segments)
        raw = Path(scratch) / "profile.txt"
        # Clients (wrk) run until the sampling has ended.
        load = threading.Thread(target=lambda: wrk_round(server, path, args.seconds + 2, args.connections))
        load.start()
        progress(f"sampling pid {server.pid} for {args.seconds} s")
        subprocess.run(
            [
                *(spy, "record", "--pid", str(server.pid), "--duration", str(args.seconds), "--rate", "250"),
                *("--gil", "--format", "raw", "--output", str(raw)),
            ],
            check=True,
            capture_output=True,
        )
        load.join()
        print(f"\nServer time (GIL held) of the window GET on a {args.segments:,}-segment flow, by cost centre:")
        for name, share in summarise(raw):
            print(f"  {name:<32} {share:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
