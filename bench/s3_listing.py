"""S3 listing benchmark: what presigning `get_urls` costs a 300-segment page of `GET /flows/{id}/segments`.

Run with `make bench-s3` (or `python -m bench.s3_listing --help`). A real S3 server (SeaweedFS, as in the
tests) holds the media; one flow of 30,000 segments is registered through the API; then pages of 300
segments are timed without URLs (`accept_get_urls=`, the unsigned baseline) and with `presigned=true`,
alternating in rounds, on a server that reuses signed URLs (the default) and on one that signs every URL
anew (`TAMS_URL_CACHE_SIZE=0`). The signer itself is also timed in-process against botocore's.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import orjson
from botocore.config import Config

from bench.harness import (
    Latency,
    RawConnection,
    Server,
    checked_exchange,
    get_request,
    machine_info,
    progress,
    running_server,
    save_results,
    summarise_latency,
)
from bench.loading import allocate_object_ids, create_flow, post_segments, segments_body
from tams_api.stores.sigv4 import Credentials, Presigner

# The tests' SeaweedFS launcher, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, seaweedfs

PAGE = 300
TARGET_RATIO = 2.0  # the issue: a presigned page's p50 within 2x the unsigned page's


@dataclass(slots=True)
class Comparison:
    unsigned: Latency
    presigned: Latency

    @property
    def ratio_p50(self) -> float:
        return self.presigned.p50_ms / self.unsigned.p50_ms

    @property
    def signing_us_per_segment(self) -> float:
        return (self.presigned.p50_ms - self.unsigned.p50_ms) * 1000 / PAGE


def page_path(flow_id: str, start: int, url_query: str) -> str:
    timerange = quote(f"[{start}:0_{start + PAGE}:0)", safe="")
    return f"/flows/{flow_id}/segments?timerange={timerange}&limit={PAGE}&{url_query}"


async def compare(server: Server, flow_id: str, starts: list[int], rounds: int, per_round: int) -> Comparison:
    """Unsigned and presigned pages alternating in rounds on one keep-alive connection, windows from `starts`."""
    variants = {"unsigned": "accept_get_urls=", "presigned": "presigned=true"}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    connection = await RawConnection.open(server.port)
    try:
        first = orjson.loads(await checked_exchange(connection, get_request(server.port, page_path(flow_id, 0, ""))))
        if len(first) != PAGE or not first[0]["get_urls"]:
            raise RuntimeError(f"a page holds {len(first)} segments, expected {PAGE} with get_urls")
        chooser = random.Random(7)
        for _ in range(rounds):
            for name, query in variants.items():
                for _ in range(per_round):
                    request = get_request(server.port, page_path(flow_id, chooser.choice(starts), query))
                    started = time.perf_counter()
                    await checked_exchange(connection, request)
                    samples[name].append(time.perf_counter() - started)
    finally:
        await connection.close()
    return Comparison(summarise_latency(samples["unsigned"]), summarise_latency(samples["presigned"]))


def signer_microseconds(count: int = 5000) -> dict[str, float]:
    """In-process cost of one presigned GET URL: botocore's and ours."""
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9000",
        region_name=REGION,
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    started = time.perf_counter()
    for n in range(count // 10):
        client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": f"k{n}"}, ExpiresIn=3600)
    botocore_us = (time.perf_counter() - started) / (count // 10) * 1e6
    presigner = Presigner("http://127.0.0.1:9000", REGION, "b", virtual_hosted=False)
    credentials = Credentials("AK", "SK")
    started = time.perf_counter()
    for n in range(count):
        presigner.url("GET", f"k{n}", credentials, 3600)
    ours_us = (time.perf_counter() - started) / count * 1e6
    return {"botocore_us": botocore_us, "ours_us": ours_us}


@dataclass(slots=True)
class Results:
    options: dict[str, Any]
    machine: dict[str, Any]
    signer: dict[str, float]
    reused_urls: Comparison  # the default: signed URLs reused while fresh; a few hot windows
    fresh_urls: Comparison  # TAMS_URL_CACHE_SIZE=0: every URL signed for its request; windows all over

    def report(self) -> list[str]:
        lines = [
            f"signer, one GET URL in-process: botocore {self.signer['botocore_us']:.0f} µs, "
            f"ours {self.signer['ours_us']:.1f} µs",
            f"{'300-segment page':<42} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}",
        ]
        for title, comparison in (
            ("URLs reused (default), 20 hot windows", self.reused_urls),
            ("every URL signed (cache 0), any window", self.fresh_urls),
        ):
            for name in ("unsigned", "presigned"):
                latency = getattr(comparison, name)
                lines.append(
                    f"  {title + ': ' + name:<40} {latency.p50_ms:8.2f} {latency.p90_ms:8.2f} {latency.p99_ms:8.2f}"
                )
            verdict = "PASS" if comparison.ratio_p50 <= TARGET_RATIO else "MISS"
            lines.append(
                f"    presigned / unsigned p50 {comparison.ratio_p50:.2f}x (target <= {TARGET_RATIO:.1f}x {verdict}); "
                f"signing {comparison.signing_us_per_segment:.1f} µs per segment"
            )
        return lines


def load(server: Server, segments: int) -> str:
    flow_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        create_flow(client, flow_id)
        for first in range(0, segments, 1000):
            object_ids = allocate_object_ids(client, flow_id, min(1000, segments - first))
            post_segments(client, flow_id, segments_body(first, object_ids))
    return flow_id


def s3_environment(s3: S3Server, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "TAMS_MEDIA_BACKEND": "s3",
        "TAMS_S3_ENDPOINT_URL": s3.endpoint_url,
        "TAMS_S3_BUCKET": bucket,
        "TAMS_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "TAMS_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        **extra,
    }


def run(segments: int, rounds: int, per_round: int) -> Results:
    signer = signer_microseconds()
    with tempfile.TemporaryDirectory(prefix="tams-bench-s3-") as scratch, seaweedfs(Path(scratch) / "s3") as s3:
        bucket = s3.new_bucket()
        data_dir = Path(scratch) / "tams"
        with running_server(keep_data=True, extra_env=s3_environment(s3, bucket), data_dir=data_dir) as server:
            progress(f"registering {segments} segments ...")
            flow_id = load(server, segments)
            hot = [n * PAGE for n in range(20)]
            reused = asyncio.run(compare(server, flow_id, hot, rounds, per_round))
        no_cache = s3_environment(s3, bucket, TAMS_URL_CACHE_SIZE="0")
        with running_server(keep_data=True, extra_env=no_cache, data_dir=data_dir) as server:
            anywhere = list(range(0, segments - PAGE, 7))
            fresh = asyncio.run(compare(server, flow_id, anywhere, rounds, per_round))
    return Results(
        options={"segments": segments, "rounds": rounds, "per_round": per_round, "page": PAGE},
        machine=machine_info(),
        signer=signer,
        reused_urls=reused,
        fresh_urls=fresh,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_listing", description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=30_000, help="segments of the flow (default 30000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the variants (default 5)")
    parser.add_argument("--per-round", type=int, default=60, help="timed pages per variant per round (default 60)")
    options = parser.parse_args(argv)
    results = run(options.segments, options.rounds, options.per_round)
    print("\n".join(results.report()))
    print(f"results: {save_results(asdict(results), prefix='s3-listing-')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
