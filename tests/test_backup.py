"""Backups of embedded stores to a real S3 server (SeaweedFS) and new stores restored from them (`tams-api backup`,
`tams-api restore`, tams_api/backup.py): the restored store answers the same flows, segments and media bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import reaching_media
from helpers import Tams, audio_flow, backend_settings
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tams_api.app import create_app, open_services
from tams_api.backup import MANIFEST, BackupError, back_up, restore
from tams_api.config import BackupSettings, Settings
from tams_api.stores.sqlite import snapshot

EMBEDDED = ["sqlite+filesystem", "sqlite+s3"]


@pytest.fixture(params=EMBEDDED)
def stores(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, stores: str) -> Settings:
    return backend_settings(request, tmp_path / "original", stores)


@pytest.fixture
def restored_settings(request: pytest.FixtureRequest, tmp_path: Path, stores: str) -> Settings:
    """A new store of the same kind: other files, another prefix of the bucket, the same storage backend id."""
    return backend_settings(request, tmp_path / "restored", stores, s3_prefix=f"{tmp_path.name}-restored/")


@pytest.fixture
def location(s3_server: S3Server) -> BackupSettings:
    return BackupSettings(
        s3_bucket=s3_server.new_bucket(),
        s3_path="newsroom/archive/nightly-1",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        store="newsroom/archive",
    )


@contextmanager
def serving(settings: Settings) -> Iterator[Tams]:
    with TestClient(create_app(services=open_services(settings))) as client:
        yield Tams(reaching_media(client, settings))


def fill(tams: Tams) -> None:
    """Two flows of a source with segments of distinct bytes, a tag, and an object allocated but never uploaded."""
    video = tams.put_flow()
    for second in range(5):
        tams.add_segment(video, f"[{second}:0_{second + 1}:0)", data=f"video {second}".encode() * 1000)
    audio = tams.put_flow(make=audio_flow)
    tams.add_segment(audio, "[0:0_10:0)", data=b"audio")
    assert tams.client.put(f"/flows/{audio}/tags/language", json="en").status_code == 204
    tams.allocate(video)


def everything(tams: Tams) -> dict[str, Any]:
    """What clients see of the store: sources, flows, each flow's segments (timeranges, objects) and the SHA-256 of
    every segment's bytes, fetched from its get_urls as a player would."""
    flows = tams.client.get("/flows").json()
    seen: dict[str, Any] = {"sources": tams.client.get("/sources").json(), "flows": flows, "segments": {}}
    for flow in flows:
        segments = tams.segments(flow["id"])
        seen["segments"][flow["id"]] = [
            (segment["timerange"], segment["object_id"], media_sha256(tams, segment)) for segment in segments
        ]
    return seen


def media_sha256(tams: Tams, segment: dict[str, Any]) -> str:
    response = tams.client.get(segment["get_urls"][0]["url"])
    assert response.status_code == 200, f"the bytes of object {segment['object_id']}: {response.status_code}"
    return hashlib.sha256(response.content).hexdigest()


def manifest(location: BackupSettings, s3_server: S3Server) -> dict[str, Any]:
    body = s3_server.client().get_object(Bucket=location.s3_bucket, Key=location.key(MANIFEST))["Body"]
    return json.loads(body.read())


def test_a_restored_store_answers_the_same_flows_segments_and_bytes(
    settings: Settings, restored_settings: Settings, location: BackupSettings, s3_server: S3Server
) -> None:
    with serving(settings) as tams:
        fill(tams)
        before = everything(tams)
        summary = back_up(settings, location)

    written = manifest(location, s3_server)
    media_summary = {key: value for key, value in written["media"].items() if key != "items"} | {"missing": 0}
    assert summary == {**written, "media": media_summary}
    assert written["store"] == "newsroom/archive"
    assert written["metadata"] | {"sha256": "", "size": 0} == {
        "backend": "sqlite",
        "file": "metadata.sqlite",
        "sha256": "",
        "size": 0,
        "schema_version": 3,
        "sources": 2,
        "flows": 2,
        "segments": 6,
        "objects": 7,
    }
    assert (written["media"]["objects"], written["media"]["missing"], written["media"]["not_uploaded"]) == (6, [], 1)
    assert written["media"]["bytes"] == sum(len(f"video {second}") * 1000 for second in range(5)) + len(b"audio")

    message = restore(restored_settings, location)
    assert f"restored backup {written['id']}" in message and "2 flows, 6 segments, 6 media objects" in message
    with serving(restored_settings) as tams:
        assert everything(tams) == before
    # Restoring again (a restarted pod's init container) leaves the restored store as it is.
    assert "before: nothing to do" in restore(restored_settings, location)


def test_a_restore_into_a_store_that_holds_data_is_refused_and_changes_nothing(
    settings: Settings, restored_settings: Settings, location: BackupSettings
) -> None:
    with serving(settings) as tams:
        fill(tams)
        back_up(settings, location)
    with serving(restored_settings) as tams:
        own = tams.put_flow()
        before = everything(tams)
    with pytest.raises(BackupError, match=r"already holds data \(1 sources, 1 flows, 0 segments.*only into a new"):
        restore(restored_settings, location)
    with serving(restored_settings) as tams:
        assert everything(tams) == before
        assert [flow["id"] for flow in before["flows"]] == [own]


def test_a_store_a_server_started_on_but_nothing_wrote_to_is_restored(
    settings: Settings, restored_settings: Settings, location: BackupSettings
) -> None:
    with serving(settings) as tams:
        fill(tams)
        before = everything(tams)
        back_up(settings, location)
    with serving(restored_settings):  # the migrate container of the first pod made the empty database
        pass
    restore(restored_settings, location)
    with serving(restored_settings) as tams:
        assert everything(tams) == before


def test_a_backup_taken_while_a_client_writes_restores_every_segment_with_its_bytes(
    settings: Settings, restored_settings: Settings, location: BackupSettings
) -> None:
    stop = threading.Event()
    written: list[str] = []
    with serving(settings) as tams:
        flow_id = tams.put_flow()

        def write() -> None:
            # Bounded: the backup ends well before 2,000 segments of a client in this process.
            for second in range(2_000):
                if stop.is_set():
                    return
                tams.add_segment(flow_id, f"[{second}:0_{second + 1}:0)", data=os.urandom(2048))
                written.append(str(second))

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(written) < 20 and writer.is_alive():
                stop.wait(0.01)
            summary = back_up(settings, location)
        finally:
            stop.set()
            writer.join(timeout=60)
    assert not writer.is_alive()
    restore(restored_settings, location)
    with serving(restored_settings) as tams:
        restored = everything(tams)  # fetches every restored segment's bytes: a missing object fails here
    segments = restored["segments"][flow_id]
    assert len(segments) == summary["metadata"]["segments"] >= 20
    assert len(written) >= len(segments)
    assert summary["media"]["missing"] == 0


def test_a_backup_never_overwrites_another_and_an_empty_folder_is_no_backup(
    settings: Settings, restored_settings: Settings, location: BackupSettings
) -> None:
    with serving(settings) as tams:
        fill(tams)
    with pytest.raises(BackupError, match="holds no backup"):
        restore(restored_settings, location)
    back_up(settings, location)
    with pytest.raises(BackupError, match="already holds a backup: a backup never overwrites another"):
        back_up(settings, location)


def test_a_damaged_media_object_fails_the_restore_by_its_checksum(
    settings: Settings, restored_settings: Settings, location: BackupSettings, s3_server: S3Server
) -> None:
    with serving(settings) as tams:
        fill(tams)
        back_up(settings, location)
    item = manifest(location, s3_server)["media"]["items"][0]
    key = location.key(f"media/{item['storage_id']}/{item['id']}")
    s3_server.client().put_object(Bucket=location.s3_bucket, Key=key, Body=b"not the bytes")
    with pytest.raises(BackupError, match=f"media object {item['id']} does not match the manifest's checksum"):
        restore(restored_settings, location)
    assert (
        not restored_settings.resolved_sqlite_path.exists()
        or snapshot.contents(restored_settings.resolved_sqlite_path).empty
    )


def test_shared_stores_are_refused_saying_what_backs_them_up(tmp_path: Path, location: BackupSettings) -> None:
    shared = Settings(data_dir=tmp_path, metadata_backend="postgres", postgres_url="postgresql://db/tams")
    for operation in (back_up, restore):
        with pytest.raises(
            BackupError, match=r"backups cover stores on SQLite; this one is on postgres.*CloudNativePG"
        ):
            operation(shared, location)


def run_cli(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    variables = {key: value for key, value in os.environ.items() if not key.startswith("TAMS_")}
    return subprocess.run(
        [sys.executable, "-m", "tams_api", *args],
        env={**variables, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_environment(settings: Settings, location: BackupSettings) -> dict[str, str]:
    return {
        "TAMS_DATA_DIR": str(settings.data_dir),
        "TAMS_STORAGE_ID": str(settings.storage_id),
        "TAMS_BACKUP_S3_BUCKET": location.s3_bucket,
        "TAMS_BACKUP_S3_PATH": location.s3_path,
        "TAMS_BACKUP_S3_ENDPOINT_URL": location.s3_endpoint_url or "",
        "TAMS_BACKUP_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "TAMS_BACKUP_S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }


def test_the_commands_write_a_summary_and_fail_in_one_line(
    tmp_path: Path, location: BackupSettings, request: pytest.FixtureRequest
) -> None:
    original = backend_settings(request, tmp_path / "original", "sqlite+filesystem")
    with serving(original) as tams:
        fill(tams)
    summary_file = tmp_path / "summary.json"
    done = run_cli("backup", "--summary-file", str(summary_file), environment=cli_environment(original, location))
    assert done.returncode == 0, done.stderr
    summary = json.loads(summary_file.read_text())
    assert json.loads(done.stdout) == summary and summary["metadata"]["segments"] == 6

    target = backend_settings(request, tmp_path / "restored", "sqlite+filesystem")
    done = run_cli("restore", environment=cli_environment(target, location))
    assert done.returncode == 0 and f"restored backup {summary['id']}" in done.stdout, done.stderr
    refused = run_cli("restore", environment=cli_environment(original, location))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("tams-api: the store already holds data (2 sources")

    wrong_keys = {**cli_environment(original, location), "TAMS_BACKUP_S3_SECRET_ACCESS_KEY": "wrong"}
    denied = run_cli("backup", environment=wrong_keys)
    assert denied.returncode == 1 and len(denied.stderr.strip().splitlines()) == 1, denied.stderr
    assert "TAMS_BACKUP_S3_ACCESS_KEY_ID / TAMS_BACKUP_S3_SECRET_ACCESS_KEY" in denied.stderr
    missing = run_cli("backup", environment={"TAMS_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 1 and "TAMS_BACKUP_S3_BUCKET" in missing.stderr, missing.stderr
