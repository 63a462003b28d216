"""What the request metrics middleware costs each request, measured in-process.

Run with `make bench-metrics` (or `python -m bench.metrics_middleware --help`). Two apps from `create_app`
on equal data, one with `RequestMetrics` and one built without it, are called directly as ASGI apps (no
sockets, no HTTP client: their costs would swamp a few µs). The same requests go to both, interleaved in
rounds so that drift affects both alike: `GET /` (the trivial endpoint) and `GET /flows/{id}` (a store read).
First, the middleware alone around an ASGI app that only answers: its own cost, which the apps' run-to-run
noise hides. The figures are the median CPU time per request of each, the difference, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.loading import VIDEO_FLOW
from tams_api.app import create_app
from tams_api.config import Settings
from tams_api.metrics import RequestMetrics


def build_app(data_dir: Path, with_metrics: bool) -> FastAPI:
    app = create_app(Settings(data_dir=data_dir, run_worker=False))
    if not with_metrics:
        # The middleware stack is built on the first request: without this entry the app is exactly what it
        # would be had create_app never added the middleware.
        app.user_middleware = [entry for entry in app.user_middleware if entry.cls is not RequestMetrics]
    return app


async def call(app: ASGIApp, method: str, path: str, body: bytes = b"") -> int:
    """One request through the ASGI interface (the app's lifespan is not run: no worker); the response status."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def round_cpu_us(app: ASGIApp, path: str, requests: int) -> float:
    """CPU µs per request over one round (process CPU: the requests run on this thread, sync endpoints in the
    thread pool, all in this process)."""
    started = time.process_time()
    for _ in range(requests):
        await call(app, "GET", path)
    return (time.process_time() - started) / requests * 1e6


async def middleware_alone(rounds: int, requests: int) -> dict[str, float]:
    """The middleware around an app that does nothing but answer as a matched route would: its own cost."""
    route = SimpleNamespace(path="/flows/{flow_id}/segments")

    async def matched(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    apps: dict[str, Any] = {"with": RequestMetrics(matched), "without": matched}
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            samples[name].append(await round_cpu_us(app, "/flows/x/segments", requests))
    with_us, without_us = statistics.median(samples["with"]), statistics.median(samples["without"])
    return {"with_us": with_us, "without_us": without_us, "ratio": with_us / without_us}


async def measure(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    flow_id = str(uuid.uuid4())
    flow = orjson.dumps({**VIDEO_FLOW, "id": flow_id, "source_id": str(uuid.uuid4())})
    with tempfile.TemporaryDirectory() as with_dir, tempfile.TemporaryDirectory() as without_dir:
        apps = {"with": build_app(Path(with_dir), True), "without": build_app(Path(without_dir), False)}
        for app in apps.values():
            assert await call(app, "PUT", f"/flows/{flow_id}", flow) == 201
        figures = {"middleware alone": await middleware_alone(rounds, requests * 10)}
        for label, path in (("GET / (trivial)", "/"), ("GET /flows/{id}", f"/flows/{flow_id}")):
            for app in apps.values():
                assert await call(app, "GET", path) == 200
                await round_cpu_us(app, path, requests // 5)  # warm-up
            samples: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(rounds):
                for name, app in apps.items():
                    samples[name].append(await round_cpu_us(app, path, requests))
            with_us, without_us = statistics.median(samples["with"]), statistics.median(samples["without"])
            figures[label] = {"with_us": with_us, "without_us": without_us, "ratio": with_us / without_us}
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per endpoint, alternating the apps")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.rounds, args.requests))
    print(f"Request metrics middleware, median CPU per request over {args.rounds} rounds of {args.requests}:")
    for label, figure in figures.items():
        overhead = figure["with_us"] - figure["without_us"]
        print(
            f"  {label:<18} with {figure['with_us']:7.1f} µs   without {figure['without_us']:7.1f} µs   "
            f"overhead {overhead:5.1f} µs   ratio {figure['ratio']:.3f} x"
        )


if __name__ == "__main__":
    main()
