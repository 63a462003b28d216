"""Backups of an embedded store to a folder of an S3 bucket (`tams-api backup`), and a new store made from one
(`tams-api restore`).

A backup folder holds `metadata.sqlite` (SQLite's online backup of the live database: one consistent snapshot,
taken while the store keeps serving), `media/STORAGE_ID/OBJECT_ID` (the bytes of every object the snapshot holds,
from each storage backend that keeps them) and, written last, `manifest.json`: what the backup holds, with counts
and SHA-256 checksums. A folder without a manifest is no backup. Media is copied after the snapshot, so the bytes
of every segment the snapshot holds are there (clients upload an object before they register its segment).

Stores on PostgreSQL or VAST are not backed up here: their databases have their own backups (CloudNativePG's to
object storage, VAST snapshots), and their media buckets their own versioning.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .app import open_media, open_media_store
from .config import BackupSettings, Settings
from .errors import NotFound
from .stores.media import MediaStore, MediaStores, copy_media
from .stores.s3 import S3MediaStore
from .stores.sqlite import snapshot
from .stores.sqlite.schema import SCHEMA_VERSION

FORMAT = "tams-backup/1"
MANIFEST = "manifest.json"
DATABASE = "metadata.sqlite"
MEDIA = "media"
BATCH = 1000  # objects in flight at most: memory stays bounded whatever the store holds


class BackupError(Exception):
    """A backup or restore that cannot be made, in one line saying why."""


def back_up(settings: Settings, target: BackupSettings) -> dict[str, Any]:
    """Write a backup of the store to the target folder; returns its summary (the manifest without the
    per-object list)."""
    _embedded_only(settings)
    started = _now()
    files = _Folder(settings, target)
    if files.exists(MANIFEST):
        raise BackupError(f"{target.url} already holds a backup: a backup never overwrites another")
    media = open_media(settings)
    with tempfile.TemporaryDirectory(prefix="tams-backup-") as work:
        copy = Path(work) / DATABASE
        snapshot.copy_database(settings.resolved_sqlite_path, copy)
        contents = snapshot.contents(copy)
        database = {"file": DATABASE, "size": copy.stat().st_size, "sha256": _sha256(copy)}
        files.upload(copy, DATABASE)
        copied, missing, not_uploaded = _copy_out(copy, media, files.media, target)
    manifest = {
        "format": FORMAT,
        "id": str(uuid.uuid4()),
        "store": target.store,
        "started": started,
        "completed": _now(),
        "metadata": {"backend": "sqlite", **database, **asdict(contents)},
        "media": {
            "objects": len(copied),
            "bytes": sum(item["size"] for item in copied),
            # Registered objects whose bytes were gone (deleted while the backup ran, or never uploaded).
            "missing": missing,
            "not_uploaded": not_uploaded,  # allocated objects no client uploaded yet: nothing to keep
            "items": copied,
        },
    }
    files.put_json(MANIFEST, manifest)
    return summary(manifest)


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its list of objects: what a status shows."""
    media = {key: value for key, value in manifest["media"].items() if key != "items"}
    media["missing"] = len(media["missing"])
    return {**manifest, "media": media}


def restore(settings: Settings, source: BackupSettings) -> str:
    """Make the configured (new, empty) store a copy of the backup: media first, the database last, so a restore
    cut short is made again from the start. A store restored from this backup before is left as it is; a store
    holding anything else is refused."""
    _embedded_only(settings)
    files = _Folder(settings, source)
    if not files.exists(MANIFEST):
        raise BackupError(f"{source.url} holds no backup (no {MANIFEST}: none was made there, or it did not finish)")
    manifest = files.get_json(MANIFEST)
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source.url}: format {manifest.get('format')!r} is not {FORMAT!r}")
    path = settings.resolved_sqlite_path
    if path.exists():
        if snapshot.restored_from(path) == manifest["id"]:
            return f"{path} was restored from backup {manifest['id']} ({source.url}) before: nothing to do"
        contents = snapshot.contents(path)
        if not contents.empty:
            raise BackupError(
                f"the store already holds data ({contents.sources} sources, {contents.flows} flows, "
                f"{contents.segments} segments, {contents.objects} objects in {path}): a backup is restored only "
                "into a new store"
            )
    version = manifest["metadata"]["schema_version"]
    if version > SCHEMA_VERSION:
        raise BackupError(f"the backup's schema version {version} is newer than this release's ({SCHEMA_VERSION})")
    media = open_media(settings)
    _copy_in(manifest["media"]["items"], media, files, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    restoring = path.with_name(path.name + ".restoring")
    files.download(DATABASE, restoring)
    if _sha256(restoring) != manifest["metadata"]["sha256"]:
        raise BackupError(f"{source.url}/{DATABASE} does not match the manifest's checksum")
    if problem := snapshot.check_integrity(restoring):
        raise BackupError(f"{source.url}/{DATABASE} is damaged: {problem}")
    snapshot.mark_restored(restoring, manifest["id"])
    snapshot.remove_database(path)  # an empty database a start made before this restore
    os.replace(restoring, path)
    counts = manifest["metadata"]
    return (
        f"restored backup {manifest['id']} ({source.url}, of {manifest['store'] or 'a store'} at "
        f"{manifest['completed']}): {counts['flows']} flows, {counts['segments']} segments, "
        f"{manifest['media']['objects']} media objects into {path}"
    )


def _embedded_only(settings: Settings) -> None:
    if settings.metadata_backend != "sqlite":
        raise BackupError(
            f"backups cover stores on SQLite; this one is on {settings.metadata_backend}: back its database up with "
            "its own tools (PostgreSQL: e.g. CloudNativePG's backups; VAST: snapshots), and its media with the "
            "bucket's versioning"
        )


def _copy_out(
    database: Path, media: MediaStores, folder: Callable[[str], MediaStore], target: BackupSettings
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Copy the bytes of every object the snapshot holds into the backup: (copied, registered ids missing, count of
    objects never uploaded)."""
    copied: list[dict[str, Any]] = []
    missing: list[str] = []
    not_uploaded = 0

    def copy_one(job: tuple[str, str, bool]) -> dict[str, Any] | str | None:
        storage_id, object_id, registered = job
        source = media.get(storage_id)
        if source is None:  # a backend no longer configured: its bytes are out of reach
            return object_id if registered else None
        try:
            done = copy_media(source, folder(storage_id), object_id)
        except NotFound:
            return object_id if registered else None
        return {"storage_id": storage_id, "id": object_id, "size": done.size, "sha256": done.sha256}

    jobs = (
        (storage_id, item.id, item.registered)
        for item in snapshot.stored_objects(database)
        for storage_id in item.storage_ids
    )
    for result in _in_parallel(copy_one, jobs, target.parallelism):
        if isinstance(result, dict):
            copied.append(result)
        elif isinstance(result, str):
            missing.append(result)
        else:
            not_uploaded += 1
    return copied, missing, not_uploaded


def _copy_in(items: list[dict[str, Any]], media: MediaStores, files: _Folder, source: BackupSettings) -> None:
    """Copy the backup's media into the store's backends, checking every checksum."""
    absent = sorted({item["storage_id"] for item in items if media.get(item["storage_id"]) is None})
    if absent:
        raise BackupError(
            f"the backup holds media of storage backends {', '.join(absent)}, which this store does not have: "
            "restore into a store with the same media backends (ids) as the one backed up"
        )

    def copy_one(item: dict[str, Any]) -> None:
        target = media.get(item["storage_id"])
        assert target is not None  # checked above
        done = copy_media(files.media(item["storage_id"]), target, item["id"])
        if done.sha256 != item["sha256"]:
            raise BackupError(f"{source.url}: media object {item['id']} does not match the manifest's checksum")

    for _ in _in_parallel(copy_one, items, source.parallelism):
        pass


def _in_parallel(work: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> Iterator[Any]:
    """work(job) for every job on `workers` threads, BATCH jobs at a time; results in order, the first error
    raised."""
    batch: list[Any] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup") as pool:
        for job in jobs:
            batch.append(job)
            if len(batch) == BATCH:
                yield from pool.map(work, batch)
                batch = []
        yield from pool.map(work, batch)


class _Folder:
    """The backup's folder in its bucket; one that cannot be reached fails as it is opened, naming the setting to
    fix."""

    def __init__(self, settings: Settings, target: BackupSettings) -> None:
        self.settings = settings
        self.target = target
        self.store = open_media_store(target.location(MEDIA), settings)
        assert isinstance(self.store, S3MediaStore)
        self.client = self.store.client
        self._media: dict[str, MediaStore] = {}

    def media(self, storage_id: str) -> MediaStore:
        """The folder of one storage backend's objects, as a media store."""
        if storage_id not in self._media:
            self._media[storage_id] = open_media_store(self.target.location(f"{MEDIA}/{storage_id}"), self.settings)
        return self._media[storage_id]

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.target.s3_bucket, Key=self.target.key(name))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def upload(self, path: Path, name: str) -> None:
        self.client.upload_file(str(path), self.target.s3_bucket, self.target.key(name))

    def download(self, name: str, path: Path) -> None:
        self.client.download_file(self.target.s3_bucket, self.target.key(name), str(path))

    def put_json(self, name: str, document: dict[str, Any]) -> None:
        body = json.dumps(document, indent=1).encode()
        self.client.put_object(
            Bucket=self.target.s3_bucket, Key=self.target.key(name), Body=body, ContentType="application/json"
        )

    def get_json(self, name: str) -> dict[str, Any]:
        response = self.client.get_object(Bucket=self.target.s3_bucket, Key=self.target.key(name))
        return json.loads(response["Body"].read())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
