"""Webhook benchmark: what listening webhooks cost segment registration, with a receiver that never answers.

Run with `make bench-webhooks` (or `python -m bench.webhooks --help`). One real server process (with its
in-process worker) registers single-segment POSTs, as live ingest does, in three modes, interleaved in rounds
so that drift affects all alike:

- `baseline`: no webhook listening (both registered webhooks disabled), so no outbox rows are written;
- `hanging`: a webhook for `flows/segments_added` whose receiver accepts connections and never answers;
- `healthy`: a webhook whose receiver answers 200 at once (the run waits for its deliveries to finish
  before the next mode, so that they do not spill into it).

The figures are the POST latencies per mode and their ratio to the baseline of the same run. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson

from bench.harness import (
    HOST,
    Latency,
    Server,
    machine_info,
    progress,
    running_server,
    save_results,
    server_environment,
    stop,
    summarise_latency,
)
from bench.loading import allocate_object_ids, create_flow

MODES = ("baseline", "hanging", "healthy")
EVENTS = ["flows/segments_added"]


class HangingReceiver:
    """Accepts connections and reads requests, but never answers (until closed)."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.connections: list[socket.socket] = []
        self.url = f"http://{HOST}:{self.listener.getsockname()[1]}/events"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


class HealthyReceiver:
    def __init__(self) -> None:
        receiver = self
        self.received = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(slots=True)
class Results:
    options: dict[str, Any]
    machine: dict[str, Any]
    latency: dict[str, Latency]
    ratio_p50: dict[str, float]
    ratio_p99: dict[str, float]
    healthy_events_received: int
    outbox_rows_at_end: int

    def report(self) -> list[str]:
        lines = [f"{'mode':<10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7}"]
        for mode in MODES:
            latency = self.latency[mode]
            lines.append(
                f"{mode:<10} {latency.p50_ms:8.2f} {latency.p90_ms:8.2f} {latency.p99_ms:8.2f} "
                f"{self.ratio_p50[mode]:7.2f} {self.ratio_p99[mode]:7.2f}"
            )
        lines.append(f"events received by the healthy receiver: {self.healthy_events_received}")
        lines.append(f"outbox rows left at the end (held for the hanging receiver): {self.outbox_rows_at_end}")
        return lines


def set_status(client: httpx.Client, webhook: dict[str, Any], status: str) -> None:
    body = {"id": webhook["id"], "url": webhook["url"], "events": EVENTS, "status": status}
    response = client.put(f"/service/webhooks/{webhook['id']}", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"PUT /service/webhooks/{webhook['id']} answered {response.status_code}: {response.text}")


def register(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.post("/service/webhooks", json={"url": url, "events": EVENTS, "status": "disabled"})
    if response.status_code != 201:
        raise RuntimeError(f"POST /service/webhooks answered {response.status_code}: {response.text}")
    return response.json()


def timed_posts(client: httpx.Client, flow_id: str, first: int, object_ids: list[str]) -> list[float]:
    samples = []
    for n, object_id in enumerate(object_ids, start=first):
        body = orjson.dumps({"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"})
        started = time.perf_counter()
        response = client.post(f"/flows/{flow_id}/segments", content=body, headers={"Content-Type": "application/json"})
        samples.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise RuntimeError(f"POST segments answered {response.status_code}: {response.text[:300]}")
    return samples


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def outbox_rows(server: Server) -> int:
    database = sqlite3.connect(f"file:{server.data_dir / 'tams.sqlite'}?mode=ro", uri=True)
    try:
        return database.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        database.close()


@contextmanager
def separate_worker(server: Server, enabled: bool) -> Iterator[None]:
    """`tams-api worker` beside the server (which then runs none), or nothing."""
    if not enabled:
        yield
        return
    command = [sys.executable, "-m", "tams_api", "worker", "--log-level", "warning"]
    process = subprocess.Popen(command, env=server_environment(server.data_dir, server.port))
    try:
        yield
    finally:
        stop(process)


WORKERS = {
    "in-process": "the worker runs in the API process (the default)",
    "process": "the worker runs as `tams-api worker` beside the API",
    "none": "no worker: events are written to the outbox and never delivered (isolates the write's cost)",
}


def run(rounds: int, posts_per_round: int, warmup: int, worker: str) -> Results:
    hanging, healthy = HangingReceiver(), HealthyReceiver()
    extra_env = {} if worker == "in-process" else {"TAMS_RUN_WORKER": "false"}
    try:
        with (
            running_server(keep_data=False, extra_env=extra_env) as server,
            separate_worker(server, worker == "process"),
            httpx.Client(base_url=server.base_url, timeout=30) as client,
        ):
            flow_id = str(uuid.uuid4())
            create_flow(client, flow_id)
            total = warmup + rounds * len(MODES) * posts_per_round
            object_ids = allocate_object_ids(client, flow_id, total)
            webhooks = {"hanging": register(client, hanging.url), "healthy": register(client, healthy.url)}
            timed_posts(client, flow_id, 0, object_ids[:warmup])
            samples: dict[str, list[float]] = {mode: [] for mode in MODES}
            next_index = warmup
            for round_number in range(rounds):
                for mode in MODES:
                    for name, webhook in webhooks.items():
                        set_status(client, webhook, "created" if name == mode else "disabled")
                    batch = object_ids[next_index : next_index + posts_per_round]
                    samples[mode] += timed_posts(client, flow_id, next_index, batch)
                    next_index += posts_per_round
                    # The healthy receiver's deliveries must not spill into the next mode's timings.
                    if mode == "healthy" and worker != "none":
                        wait_until(lambda: healthy.received >= len(samples["healthy"]), "the healthy receiver")
                progress(f"round {round_number + 1}/{rounds} done")
            latency = {mode: summarise_latency(samples[mode]) for mode in MODES}
            base = latency["baseline"]
            return Results(
                options={
                    "rounds": rounds,
                    "posts_per_round": posts_per_round,
                    "warmup": warmup,
                    "worker": worker,
                },
                machine=machine_info(),
                latency=latency,
                ratio_p50={mode: latency[mode].p50_ms / base.p50_ms for mode in MODES},
                ratio_p99={mode: latency[mode].p99_ms / base.p99_ms for mode in MODES},
                healthy_events_received=healthy.received,
                outbox_rows_at_end=outbox_rows(server),
            )
    finally:
        hanging.close()
        healthy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three modes (default 5)")
    parser.add_argument("--posts", type=int, default=400, help="single-segment POSTs per mode per round (400)")
    parser.add_argument("--warmup", type=int, default=300, help="untimed POSTs first (300)")
    parser.add_argument(
        "--worker",
        choices=WORKERS,
        default="in-process",
        help="; ".join(f"{name}: {meaning}" for name, meaning in WORKERS.items()),
    )
    options = parser.parse_args(argv)
    results = run(options.rounds, options.posts, options.warmup, options.worker)
    print(f"worker: {WORKERS[options.worker]}")
    print("\n".join(results.report()))
    print(f"results: {save_results(asdict(results), prefix='webhooks-')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
