"""Backup and restore benchmark: `tams-api backup` and `tams-api restore` of an embedded store against the plain
cost of moving the same bytes to and from S3.

Run with `make bench-backup` (or `python -m bench.backup --help`). A store (SQLite + filesystem media) is loaded
through the HTTP API with one flow of N one-second segments (default 100,000), each with its own object, whose
bytes (default 1 KiB each) are written into the store's media folder. A real S3 server (SeaweedFS, as in the tests)
holds the backups. Timed in the same run, on the same SeaweedFS and with the same parallelism:
- backup: `back_up` (SQLite online backup, upload, every object copied with its checksum, manifest);
- its baseline: the database file and every object's bytes put by a plain boto3 loop (no checksums, no manifest);
- restore: `restore` into a new, empty store (media with checksums checked, database last);
- its baseline: the same objects got into files by a plain boto3 loop.
The ratios (backup / baseline, restore / baseline) say what the backup's own work costs over moving the bytes.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.harness import machine_info, progress, running_server, save_results
from bench.loading import allocate_object_ids, create_flow, post_segments, segments_body
from tams_api.app import open_media
from tams_api.backup import back_up, restore
from tams_api.config import BackupSettings, Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server, seaweedfs

BATCH = 1000


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=100_000, help="segments (each with its own object)")
    parser.add_argument("--object-bytes", type=int, default=1024, help="bytes of each media object")
    parser.add_argument("--parallelism", type=int, default=8, help="objects moved at once (both sides)")
    return parser.parse_args(argv)


def load(server_url: str, settings: Settings, segments: int, object_bytes: int) -> None:
    """One flow of `segments` segments registered through the API; each object's bytes written to the media store."""
    media = open_media(settings).default
    flow_id = "5fbec3b1-1b0f-417d-9059-8b94a47197ed"
    with httpx.Client(base_url=server_url, timeout=120) as client:
        create_flow(client, flow_id)
        for first in range(0, segments, BATCH):
            object_ids = allocate_object_ids(client, flow_id, min(BATCH, segments - first))
            for object_id in object_ids:
                media.write(object_id, "video/mp2t", io.BytesIO(os.urandom(object_bytes)))
            post_segments(client, flow_id, segments_body(first, object_ids))
            if first % 20_000 == 0:
                progress(f"loaded {first + len(object_ids):,} segments")


def timed(what: str, work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    progress(f"{what}: {seconds:.1f} s")
    return seconds


def in_parallel(work: Callable[[Any], Any], items: Iterable[Any], workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(work, items):
            pass


def run(options: argparse.Namespace, work_dir: Path, s3: S3Server) -> dict[str, Any]:
    bucket = s3.new_bucket()
    client = s3.client()
    location = {"s3_bucket": bucket, "s3_endpoint_url": s3.endpoint_url, "s3_access_key_id": ACCESS_KEY,
                "s3_secret_access_key": SECRET_KEY, "parallelism": options.parallelism}  # fmt: skip
    original = work_dir / "original"
    with running_server(keep_data=True, data_dir=original) as server:
        settings = Settings(data_dir=original)
        load(server.base_url, settings, options.segments, options.object_bytes)
        # The objects' bytes (beside each, a .type file holds its content type).
        media_files = [path for path in (original / "media").rglob("*") if path.is_file() and not path.suffix]
        database = original / "tams.sqlite"
        backup_s = timed("backup", lambda: back_up(settings, BackupSettings(**location, s3_path="backup")))

        def upload(path: Path) -> None:
            kind = path.with_suffix(".type")
            content_type = kind.read_text() if kind.exists() else "application/octet-stream"
            key = f"baseline/{path.relative_to(original)}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)

        files = [database, *media_files]
        upload_s = timed("baseline upload", lambda: in_parallel(upload, files, options.parallelism))

    # The restored store has the original's storage backend id (a filesystem backend's comes from its folder).
    storage_id = open_media(settings).default.backend.id
    restored = Settings(data_dir=work_dir / "restored", storage_id=storage_id)
    restore_s = timed("restore", lambda: restore(restored, BackupSettings(**location, s3_path="backup")))
    downloads = work_dir / "downloads"

    def download(path: Path) -> None:
        target = downloads / path.relative_to(original)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            client.get_object(Bucket=bucket, Key=f"baseline/{path.relative_to(original)}")["Body"].read()
        )

    download_s = timed("baseline download", lambda: in_parallel(download, files, options.parallelism))
    total_bytes = sum(path.stat().st_size for path in files)
    return {
        "segments": options.segments,
        "media_objects": len(media_files),
        "object_bytes": options.object_bytes,
        "database_mb": round(database.stat().st_size / 1e6, 1),
        "total_mb": round(total_bytes / 1e6, 1),
        "parallelism": options.parallelism,
        "backup_s": round(backup_s, 2),
        "baseline_upload_s": round(upload_s, 2),
        "backup_ratio": round(backup_s / upload_s, 2),
        "backup_objects_per_s": round(len(media_files) / backup_s),
        "restore_s": round(restore_s, 2),
        "baseline_download_s": round(download_s, 2),
        "restore_ratio": round(restore_s / download_s, 2),
        "restore_objects_per_s": round(len(media_files) / restore_s),
    }


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="tams-bench-backup-"))
    try:
        with seaweedfs(work_dir / "seaweedfs") as s3:
            figures = run(options, work_dir, s3)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    document = {"machine": machine_info(), "load_average": os.getloadavg(), "figures": figures}
    path = save_results(document, prefix="backup-")
    for name, value in figures.items():
        print(f"{name:24} {value}")
    print(f"load average {os.getloadavg()}; saved to {path}")


if __name__ == "__main__":
    main()
