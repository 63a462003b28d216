"""How much the measuring client decides the throughput ratios of `make bench`: the window GET on one and on two API
processes and the bare Starlette list, measured again with wrk (C, from Debian) instead of the benchmark's Python
client, in one run.

    python -m bench.client_cost [--segments 50000] [--seconds 8]

On two cores the client takes a share of the cores from the servers: a cheaper client leaves more to the second
API process, so the two-process speed-up tells the server and the client apart only when measured with both. A
ratio whose two servers are each bound by their own CPU (the window GET against the bare list) should not move.
bench/README.md has the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from bench.harness import Server, progress, running_server, wait_until_listening
from bench.loading import load_flow
from bench.segments import window_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# The tests' Debian installer, shared rather than copied.
from debian import install_debian_packages, run

CONNECTIONS = 8  # as bench.segments


def wrk(server: Server, path: str, seconds: int) -> float:
    """Requests per second of one wrk thread keeping CONNECTIONS keep-alive connections busy."""
    said = run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", f"{server.base_url}{path}"])
    if "Non-2xx" in said or "Socket errors" in said:
        raise RuntimeError(f"wrk saw failures on {path}:\n{said}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", said)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_cost", description=__doc__)
    parser.add_argument("--segments", type=int, default=50_000, help="segments of the flow (default 50000)")
    parser.add_argument("--seconds", type=int, default=8, help="seconds of each wrk run (default 8)")
    args = parser.parse_args(argv)
    install_debian_packages(["wrk"])
    flow_id, started_load = str(uuid.uuid4()), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tams-bench-") as scratch:
        data = Path(scratch)
        with running_server(False, data_dir=data / "tams") as one:
            with httpx.Client(base_url=one.base_url, timeout=300) as client:
                load_flow(client, one, flow_id, args.segments, 1_000)
            path = window_path(flow_id, args.segments)
            single = wrk(one, path, args.seconds)
        with running_server(False, data_dir=data / "tams", extra_env={"TAMS_WORKERS": "2"}) as two:
            wait_until_listening(two.port, 2)
            double = wrk(two, path, args.seconds)
        with running_server(False, data_dir=data / "bare", module="bench.bare_asgi") as bare:
            floor = wrk(bare, "/", args.seconds)
    progress("done")
    print(f"wrk, 1 thread, {CONNECTIONS} connections, {args.seconds} s each, flow of {args.segments:,} segments:")
    print(f"  bare Starlette list            {floor:9,.0f} req/s")
    print(f"  window GET, 1 process          {single:9,.0f} req/s   {single / floor:.2f} x the bare list")
    print(f"  window GET, TAMS_WORKERS=2     {double:9,.0f} req/s   {double / single:.2f} x one process")
    print(f"  1-min load average at start / end  {started_load:.2f} / {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
