"""Two API processes on one SQLite file: one sends maximal bulks, the other small writes. How long does the small
writer wait, and is any request answered 500?

Run with `make bench-contention` (or `python -m bench.sqlite_contention --help`). Two `tams-api serve` processes
share one data directory, as the old and the new pod of an embedded store do during a rollout. The bulk writer
registers TAMS_MAX_BULK_SEGMENTS segments per POST (objects held elsewhere, given by `get_urls`, so no storage
is allocated) on its own flow, back to back. The small writer, on the other process, registers one segment per
POST on another flow. Baseline in the same run: the small writer alone, before the bulks start. Reported: the
small writer's latencies (p50, p99, max) alone and under the bulks, every status code seen, bulk throughput.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import orjson

from bench.harness import percentile, progress, running_server
from bench.loading import create_flow
from tams_api.config import Settings

BULK = Settings().max_bulk_segments


def segment(second: int) -> dict[str, object]:
    return {
        "object_id": str(uuid.uuid4()),
        "timerange": f"[{second}:0_{second + 1}:0)",
        "get_urls": [{"url": f"https://archive.example/{second}.ts", "label": "archive"}],
    }


class SmallWriter:
    """One-segment POSTs in a loop until stopped; each request's latency and status."""

    def __init__(self, base_url: str, first_second: int) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.flow_id = str(uuid.uuid4())
        create_flow(self.client, self.flow_id)
        self.second = first_second
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()

    def write(self, count: int | None, stop: threading.Event) -> None:
        while (count is None or count > 0) and not stop.is_set():
            body = orjson.dumps(segment(self.second))
            start = time.perf_counter()
            answer = self.client.post(
                f"/flows/{self.flow_id}/segments", content=body, headers={"Content-Type": "application/json"}
            )
            self.latencies.append(time.perf_counter() - start)
            self.statuses[answer.status_code] += 1
            self.second += 1
            count = None if count is None else count - 1

    def summary(self, since: int) -> str:
        ordered = sorted(self.latencies[since:])
        return (
            f"{len(ordered)} writes, p50 {percentile(ordered, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(ordered, 0.99) * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulks", type=int, default=20, help=f"bulks of {BULK} segments to send (default 20)")
    parser.add_argument("--alone", type=int, default=300, help="small writes alone, the baseline (default 300)")
    options = parser.parse_args(argv)
    with TemporaryDirectory(prefix="tams-contention-") as shared:
        data = Path(shared)
        with running_server(False, data_dir=data) as bulk_server, running_server(False, data_dir=data) as other:
            small = SmallWriter(other.base_url, 0)
            small.write(options.alone, threading.Event())
            print(f"small writer alone: {small.summary(0)}")

            stop = threading.Event()
            under_load = len(small.latencies)
            writer = threading.Thread(target=small.write, args=(None, stop))
            bulk_statuses: Counter[int] = Counter()
            with httpx.Client(base_url=bulk_server.base_url, timeout=120) as client:
                flow_id = str(uuid.uuid4())
                create_flow(client, flow_id)
                bodies = [orjson.dumps([segment(n * BULK + i) for i in range(BULK)]) for n in range(options.bulks)]
                writer.start()
                start = time.perf_counter()
                for n, body in enumerate(bodies, 1):
                    answer = client.post(
                        f"/flows/{flow_id}/segments", content=body, headers={"Content-Type": "application/json"}
                    )
                    bulk_statuses[answer.status_code] += 1
                    progress(f"bulk {n}/{options.bulks}: {answer.status_code}")
                elapsed = time.perf_counter() - start
            stop.set()
            writer.join()
    print(f"small writer under bulks: {small.summary(under_load)}")
    print(f"bulks: {dict(bulk_statuses)}, {options.bulks * BULK / elapsed:,.0f} segments/s")
    print(f"small writer statuses: {dict(small.statuses)}")
    errors = sum(count for status, count in (bulk_statuses + small.statuses).items() if status >= 500)
    print(f"answers of 500 or more: {errors}")


if __name__ == "__main__":
    main()
