"""PostgreSQL store benchmark: the segment benchmark's registration and window GETs on PostgreSQL next to SQLite,
in one run, so that the ratios compare like with like on whatever the machine is doing.

Run with `make bench-postgres` (or `python -m bench.postgres_store --help`). A PostgreSQL server is started here
(the tests' tests/postgres_server.py: Debian's postgresql in a temporary folder, on a free local port, stopped at
the end; durable as SQLite is here: fsync on, commits not waiting for their flush). Then, for each backend, one
`tams-api serve` process (bench.segments.running_server) loads a small and a large flow through the HTTP API and
answers the 10-segment window GET near each flow's end, the two flows alternating. Figures: registration seg/s of
the large flow, p50 of the window GET on each flow, the large/small p50 ratio (the goal: flat, as on SQLite) and
the PostgreSQL/SQLite ratios. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Latency, machine_info, progress, running_server, save_results, timed_step
from bench.loading import LoadResult, load_flow
from bench.segments import Options, measure_latencies, parse_options, window_path

# The tests' PostgreSQL server, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_server import PostgresServer, postgres

BACKENDS = ("sqlite", "postgres")


@dataclass(slots=True)
class BackendFigures:
    backend: str
    registration_per_s: float  # segment POSTs of the large flow, wall clock
    registration_per_server_cpu_s: float  # the API process's CPU only: PostgreSQL's own is not in it
    small_p50_ms: float
    large_p50_ms: float
    small: Latency
    large: Latency

    @property
    def flatness(self) -> float:
        """p50 of the window on the large flow over the small one's: 1 is a cost independent of the flow's size."""
        return self.large_p50_ms / self.small_p50_ms


def parse(argv: list[str] | None) -> tuple[Options, tuple[str, ...]]:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_store", description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="segments of the small flow (default 1000)")
    parser.add_argument("--large", type=int, default=100_000, help="segments of the large flow (default 100000)")
    parser.add_argument("--latency-requests", type=int, default=1_000, help="timed GETs per flow (default 1000)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default sqlite,postgres)")
    args = parser.parse_args(argv)
    backends = tuple(name for name in args.backends.split(",") if name)
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends: some of {', '.join(BACKENDS)}")
    segment_options = ["--small", str(args.small), "--large", str(args.large)]
    return parse_options([*segment_options, "--latency-requests", str(args.latency_requests)]), backends


def backend_environment(backend: str, server: PostgresServer | None) -> dict[str, str]:
    if backend == "sqlite":
        return {}
    assert server is not None
    schema = server.new_schema()
    return {"TAMS_METADATA_BACKEND": "postgres", "TAMS_POSTGRES_URL": server.url, "TAMS_POSTGRES_SCHEMA": schema}


def measure(backend: str, options: Options, postgres_server: PostgresServer | None) -> BackendFigures:
    small_id, large_id = str(uuid.uuid4()), str(uuid.uuid4())
    environment = backend_environment(backend, postgres_server)
    with running_server(False, environment) as server, httpx.Client(base_url=server.base_url, timeout=300) as client:
        timed_step(
            f"{backend}: loading {options.small:,} segments",
            lambda: load_flow(client, server, small_id, options.small, options.batch),
        )
        large: LoadResult = timed_step(
            f"{backend}: loading {options.large:,} segments",
            lambda: load_flow(client, server, large_id, options.large, options.batch),
        )
        windows = {"small": window_path(small_id, options.small), "large": window_path(large_id, options.large)}
        latency = timed_step(
            f"{backend}: window GETs", lambda: asyncio.run(measure_latencies(server.port, windows, options))
        )
    return BackendFigures(
        backend=backend,
        registration_per_s=large.registration_per_s,
        registration_per_server_cpu_s=large.registration_per_server_cpu_s,
        small_p50_ms=latency["small"].p50_ms,
        large_p50_ms=latency["large"].p50_ms,
        small=latency["small"],
        large=latency["large"],
    )


def report(figures: list[BackendFigures], options: Options, load: dict[str, float]) -> list[str]:
    n_small, n_large = f"{options.small:,}", f"{options.large:,}"
    lines = ["", f"Figures ({os.cpu_count()} CPUs; window GET p50 sequential on one connection):"]
    lines.append(
        f"  {'backend':<9} {'registration':>14} {'per API CPU-s':>14} {'p50 ' + n_small:>12} {'p50 ' + n_large:>13}"
        f" {'large/small':>12}"
    )
    for item in figures:
        lines.append(
            f"  {item.backend:<9} {item.registration_per_s:>10,.0f} seg/s {item.registration_per_server_cpu_s:>14,.0f}"
            f" {item.small_p50_ms:>9.2f} ms {item.large_p50_ms:>10.2f} ms {item.flatness:>10.2f} x"
        )
    by_backend = {item.backend: item for item in figures}
    if set(BACKENDS) <= set(by_backend):
        sqlite, pg = by_backend["sqlite"], by_backend["postgres"]
        lines += [
            "",
            "PostgreSQL / SQLite:",
            f"  registration seg/s        {pg.registration_per_s / sqlite.registration_per_s:.2f} x",
            f"  window p50, {n_small:>9}      {pg.small_p50_ms / sqlite.small_p50_ms:.2f} x",
            f"  window p50, {n_large:>9}      {pg.large_p50_ms / sqlite.large_p50_ms:.2f} x",
        ]
    lines.append(f"\n1-min load average at start / end: {load['start']:.2f} / {load['end']:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    options, backends = parse(argv)
    load = {"start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="tams-bench-postgres-") as folder:
        if "postgres" in backends:
            with postgres(Path(folder), durable=True) as server:
                figures = [measure(backend, options, server) for backend in backends]
        else:
            figures = [measure(backend, options, None) for backend in backends]
    load["end"] = os.getloadavg()[0]
    print("\n".join(report(figures, options, load)))
    document: dict[str, Any] = {
        "machine": machine_info(),
        "options": asdict(options),
        "load_average_1min": load,
        "backends": [asdict(item) | {"large_over_small_p50": item.flatness} for item in figures],
    }
    print(f"\nResults written to {save_results(document, 'postgres-')}")
    progress("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
