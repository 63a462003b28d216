"""What a hostile or merely busy client costs the server in memory, against one real server process.

Run with `make bench-memory` (or `python -m bench.memory --help`). One `tams-api serve` on the embedded stores,
basic authentication on. Each phase resets the server's peak resident set (`/proc/PID/clear_refs`) and reports
it (`VmHWM`) against the idle server's resident set measured in the same run:
1. an unauthenticated 51 MB JSON body (refused, 401, before it is read);
2. an authenticated body one byte over TAMS_MAX_BODY_BYTES (413);
3. a maximal legal bulk whose segments all fail: TAMS_MAX_BULK_SEGMENTS segments of unknown objects, padded
   with an extra field to just under TAMS_MAX_BODY_BYTES (200 and every segment in `failed_segments`);
4. busy/idle cycles: bursts of concurrent reads and writes from more threads than the server keeps, each
   followed by an idle spell longer than the 10 s after which AnyIO retires idle worker threads; the resident
   set after each cycle, and the last against the first.
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from bench.harness import progress, read_status_kb, running_server
from bench.loading import create_flow
from tams_api.config import Settings

USERS = "bench benchpw"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"bench:benchpw").decode()}
SETTINGS = Settings()  # the limits a server runs with by default
TARGET_PEAK_MB = 300.0
TARGET_CYCLE_GROWTH = 1.10


def mb(kb: int) -> float:
    return kb / 1024


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def peak_during(pid: int, phase: str, send: httpx.Response | None, idle_kb: int) -> float:
    peak = mb(read_status_kb(pid, "VmHWM"))
    status = "" if send is None else f"answer {send.status_code}, "
    print(f"{phase}: {status}peak resident {peak:.0f} MB ({peak - mb(idle_kb):+.0f} MB over idle)")
    return peak


def json_list_of_bytes(size: int) -> bytes:
    """A JSON document of about `size` bytes that a server decoding it would turn into millions of objects."""
    return b"[" + b"1," * (size // 2 - 1) + b"1]"


def failing_bulk(count: int, size: int) -> bytes:
    """`count` segments of objects nobody allocated, padded to about `size` bytes of JSON."""
    segments = [{"object_id": str(uuid.uuid4()), "timerange": f"[{n}:0_{n + 1}:0)"} for n in range(count)]
    bare = len(orjson.dumps(segments))
    pad = max(0, (size - bare) // count - len(',"padding":""'))
    for segment in segments:
        segment["padding"] = "p" * pad
    return orjson.dumps(segments)


def busy(base_url: str, flow_id: str, threads: int, requests_each: int) -> None:
    def client_work(worker: int) -> None:
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=60) as client:
            for n in range(requests_each):
                if n % 10 == 0:
                    client.put(f"/flows/{flow_id}/tags/t{worker}", json=str(n)).raise_for_status()
                else:
                    client.get(f"/flows/{flow_id}/segments", params={"limit": 10}).raise_for_status()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(client_work, range(threads)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10, help="busy/idle cycles (default 10)")
    parser.add_argument("--idle", type=float, default=12.0, help="seconds of each idle spell (default 12)")
    parser.add_argument("--threads", type=int, default=48, help="client threads of a burst (default 48)")
    parser.add_argument("--requests", type=int, default=40, help="requests per thread per burst (default 40)")
    options = parser.parse_args(argv)
    env = {"TAMS_AUTH_MODES": "basic", "TAMS_AUTH_USERS": USERS}
    with (
        running_server(keep_data=False, extra_env=env) as server,
        httpx.Client(base_url=server.base_url, headers=AUTH, timeout=120) as client,
    ):
        flow_id = str(uuid.uuid4())
        create_flow(client, flow_id)
        idle_kb = read_status_kb(server.pid, "VmRSS")
        print(f"idle server: resident {mb(idle_kb):.0f} MB")
        peaks = {}

        reset_peak(server.pid)
        body = json_list_of_bytes(51_000_000)
        answer = httpx.put(f"{server.base_url}/flows/{flow_id}", content=body, timeout=120)
        peaks["unauthenticated 51 MB body"] = peak_during(server.pid, "unauthenticated 51 MB body", answer, idle_kb)

        reset_peak(server.pid)
        body = json_list_of_bytes(SETTINGS.max_body_bytes + 1)
        answer = client.put(f"/flows/{flow_id}", content=body)
        peaks["body over the limit"] = peak_during(server.pid, "authenticated body over the limit", answer, idle_kb)

        reset_peak(server.pid)
        body = failing_bulk(SETTINGS.max_bulk_segments, SETTINGS.max_body_bytes - 1024)
        answer = client.post(f"/flows/{flow_id}/segments", content=body, headers={"Content-Type": "application/json"})
        failed = len(answer.json()["failed_segments"]) if answer.status_code == 200 else 0
        phase = (
            f"maximal failing bulk ({SETTINGS.max_bulk_segments} segments, {len(body) / 1e6:.1f} MB, {failed} failed)"
        )
        peaks["maximal failing bulk"] = peak_during(server.pid, phase, answer, idle_kb)

        resident = []
        for cycle in range(1, options.cycles + 1):
            busy(server.base_url, flow_id, options.threads, options.requests)
            progress(f"cycle {cycle}: burst done, idle {options.idle:g} s")
            time.sleep(options.idle)
            resident.append(mb(read_status_kb(server.pid, "VmRSS")))
            print(f"after busy/idle cycle {cycle}: resident {resident[-1]:.0f} MB")

    worst = max(peaks.values())
    growth = resident[-1] / resident[0]
    print(
        f"\nworst peak {worst:.0f} MB (goal < {TARGET_PEAK_MB:.0f} MB): {'met' if worst < TARGET_PEAK_MB else 'MISSED'}"
    )
    print(
        f"resident after cycle {options.cycles} / after cycle 1: {growth:.3f} "
        f"(goal <= {TARGET_CYCLE_GROWTH:.2f}): {'met' if growth <= TARGET_CYCLE_GROWTH else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
