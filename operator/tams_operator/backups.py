"""TamsBackup: one backup of a store, now: a Job runs `tams-api backup` beside the store's pods and its summary
becomes the backup's status. TamsScheduledBackup: a TamsBackup at each time of a cron schedule, the oldest completed
ones deleted past the retention. A TamsBackup with reclaimPolicy Delete takes its folder in the bucket with it.

Backups cover embedded stores (SQLite metadata): `tams-api backup` refuses the others, and its message is the failed
backup's error."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import kopf
from cronsim import CronSim, CronSimError

from tams_api.stores.s3 import delete_keys, s3_session

from .conditions import Reason, now
from .kube import KubeApi, Manifest
from .provisioning import NotReady
from .resources import BACKUP_LABEL, backup_job
from .spec import BackupDestination, TamsBackupSpec, TamsScheduledBackupSpec
from .tamsstore import GROUP, MANAGED_BY, TAMS_STORE_API_VERSION, VERSION, Store

TAMS_BACKUPS = (GROUP, VERSION, "tamsbackups")
TAMS_SCHEDULED_BACKUPS = (GROUP, VERSION, "tamsscheduledbackups")
SCHEDULE_LABEL = "tams-operator.io/scheduled-backup"
SCHEDULE_CHECK_SECONDS = 5  # how late a scheduled backup may start
AGE = re.compile(r"^(\d+)([smhdw])$")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Phase(StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


def folder(destination: BackupDestination, namespace: str, store: str, backup: str) -> str:
    """Where one TamsBackup writes: under destination.path, a folder per namespace, store and backup."""
    return "/".join(part.strip("/") for part in (destination.path or "", namespace, store, backup) if part.strip("/"))


def located(destination: BackupDestination, path: str) -> BackupDestination:
    return destination.model_copy(update={"path": path})


async def restore_location(api: KubeApi, body: Manifest, store: Store) -> BackupDestination | None:
    """The backup folder spec.bootstrap names: as resolved before (status.restoredFrom), the destination given, or
    the folder of the TamsBackup named, once it has completed."""
    if store.spec.bootstrap is None:
        return None
    if (resolved := (body.get("status") or {}).get("restoredFrom")) is not None:
        return BackupDestination.model_validate(resolved)
    source = store.spec.bootstrap.from_backup
    if source.destination is not None:
        return source.destination
    backup = await api.get(f"{GROUP}/{VERSION}", "TamsBackup", store.namespace, source.name or "")
    if backup is None:
        raise NotReady(Reason.BACKUP_NOT_READY, f"bootstrap.fromBackup: no TamsBackup {source.name} (yet)")
    status = backup.get("status") or {}
    if status.get("phase") == Phase.FAILED:
        raise NotReady(Reason.BACKUP_FAILED, f"bootstrap.fromBackup: TamsBackup {source.name} failed: "
                       f"{status.get('error', '')}; name another")  # fmt: skip
    if status.get("phase") != Phase.COMPLETED:
        raise NotReady(Reason.BACKUP_NOT_READY, f"bootstrap.fromBackup: TamsBackup {source.name} has not completed")
    return located(TamsBackupSpec.model_validate(backup["spec"]).destination, status["path"])


async def set_status(api: KubeApi, body: Manifest, **fields: Any) -> None:
    """Set these status fields; None removes one."""

    def change(_: Manifest, status: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value

    await api.update_status(body, change)


@kopf.on.create(*TAMS_BACKUPS)
async def start_backup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The Job, unless the store cannot be backed up: then the backup has failed, saying why."""
    api: KubeApi = memo["api"]
    manifest = dict(body)
    if (manifest.get("status") or {}).get("phase"):
        return  # started before the operator restarted
    spec = TamsBackupSpec.model_validate(body.get("spec") or {})
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    owner = await api.get(TAMS_STORE_API_VERSION, "TamsStore", namespace, spec.store_ref.name)
    if owner is None:
        await set_status(api, manifest, phase=Phase.FAILED, error=f"no TamsStore {spec.store_ref.name} in {namespace}")
        return
    store = Store.from_body(owner, (owner.get("status") or {}).get("image") or memo["config"].default_image)
    location = located(spec.destination, folder(spec.destination, namespace, spec.store_ref.name, name))
    job = backup_job(store, name, location)
    kopf.append_owner_reference(job, owner=manifest)
    await api.create(job)
    await set_status(
        api, manifest, phase=Phase.RUNNING, startedAt=now(), path=location.path,
        url=f"s3://{location.bucket}/{location.path}",
    )  # fmt: skip
    kopf.info(body, reason="Started", message=f"Job {job['metadata']['name']} backs up {store.label}")


@kopf.on.event("batch", "v1", "jobs", labels={BACKUP_LABEL: kopf.PRESENT})
async def backup_job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A finished Job finishes its TamsBackup, with the summary (or the error) its pod left."""
    api: KubeApi = memo["api"]
    namespace, backup = body.metadata.namespace or "", body.metadata.labels[BACKUP_LABEL]
    owner = await api.get(f"{GROUP}/{VERSION}", "TamsBackup", namespace, backup)
    if owner is None:
        return  # the Job goes with it
    finished = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    if not ({"Complete", "Failed"} & set(finished)):
        return
    if (owner.get("status") or {}).get("phase") == Phase.RUNNING:
        said = await termination_message(api, namespace, body.metadata.name or "")
        await record_outcome(api, owner, finished, said)
    # Said and recorded, the Job goes: its pod mounts the store's volumes, and even ended it would keep a deleted
    # store's volumes from going (PVC protection).
    await api.delete("batch/v1", "Job", namespace, body.metadata.name or "")


async def record_outcome(api: KubeApi, owner: Manifest, finished: dict[str, Manifest], said: str) -> None:
    """The backup Completed with its summary, or Failed with the error its pod (or else its Job) gave."""
    if "Complete" in finished:
        try:
            summary = json.loads(said)
        except ValueError:
            await set_status(api, owner, phase=Phase.FAILED, completedAt=now(), error=f"no summary: {said[-500:]}")
            return
        await set_status(api, owner, phase=Phase.COMPLETED, completedAt=now(), **summary_status(summary))
        kopf.info(owner, reason="Completed", message=f"backup {summary['id']} written")
        return
    error = said.strip().splitlines()[-1] if said.strip() else finished["Failed"].get("message", "the Job failed")
    await set_status(api, owner, phase=Phase.FAILED, completedAt=now(), error=error)
    kopf.warn(owner, reason="Failed", message=error)


def summary_status(summary: dict[str, Any]) -> dict[str, Any]:
    """The status fields of a backup's summary (tams_api/backup.py)."""
    metadata, media = summary["metadata"], summary["media"]
    return {
        "backupId": summary["id"],
        "schemaVersion": metadata["schema_version"],
        "sources": metadata["sources"],
        "flows": metadata["flows"],
        "segments": metadata["segments"],
        "objects": metadata["objects"],
        "mediaObjects": media["objects"],
        "missingMediaObjects": media["missing"],
        "size": metadata["size"] + media["bytes"],
    }


async def termination_message(api: KubeApi, namespace: str, job: str) -> str:
    """What the Job's last pod said as it ended: its summary, or the last lines of its log."""
    pods = await api.list("v1", "Pod", namespace, {"job-name": job})
    pods.sort(key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
    for pod in reversed(pods):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                return terminated["message"]
    return ""


@kopf.on.delete(*TAMS_BACKUPS)
async def delete_backup(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """reclaimPolicy Delete: the backup's folder goes with it (what a schedule's retention relies on)."""
    spec = TamsBackupSpec.model_validate(body.get("spec") or {})
    path = (body.get("status") or {}).get("path")
    if spec.reclaim_policy != "Delete" or not path:
        return
    api: KubeApi = memo["api"]
    keys: dict[str, str] = {}
    if (ref := spec.destination.credentials_secret_ref) is not None:
        data = await api.secret_data(body.metadata.namespace or "", ref.name) or {}
        keys = {"access": data.get(ref.access_key_key, ""), "secret": data.get(ref.secret_key_key, "")}
    try:
        deleted = await asyncio.to_thread(delete_folder, located(spec.destination, path), keys)
    except Exception as error:
        if retry >= 4:
            kopf.warn(body, reason="ReclaimFailed", message=f"backup data kept: {error}")
            return
        raise kopf.TemporaryError(str(error), delay=5 * (retry + 1)) from None
    kopf.info(body, reason="Reclaimed", message=f"{deleted} objects deleted under {path}")


def delete_folder(location: BackupDestination, keys: dict[str, str]) -> int:
    client, _ = s3_session(
        location.endpoint, location.region, keys.get("access") or None, keys.get("secret") or None,
        location.endpoint is not None,
    )  # fmt: skip
    prefix = f"{(location.path or '').strip('/')}/"
    found = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    delete_keys(client, location.bucket, found)
    return len(found)


def moment(text: str) -> datetime:
    """A time as the API server writes it (RFC 3339, UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(moment_: datetime) -> str:
    return moment_.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def max_age(text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = AGE.match(text)
    if match is None:
        raise ValueError(f"retention.maxAge {text!r} is not a number and a unit (s, m, h, d, w), e.g. 30d")
    return timedelta(seconds=int(match[1]) * AGE_UNITS[match[2]])


def expired(backups: list[Manifest], count: int | None, age: timedelta | None, at: datetime) -> list[str]:
    """The completed backups past the retention: beyond the newest `count`, or completed longer than `age` ago."""
    done = [backup for backup in backups if (backup.get("status") or {}).get("phase") == Phase.COMPLETED]
    done.sort(key=lambda backup: backup["status"].get("completedAt") or "", reverse=True)
    names = []
    for position, backup in enumerate(done):
        completed = moment(backup["status"]["completedAt"])
        if (count is not None and position >= count) or (age is not None and at - completed > age):
            names.append(backup["metadata"]["name"])
    return names


def next_time(schedule: str, after: datetime) -> datetime:
    """The first time of the cron schedule (in UTC) after `after`; ValueError naming what is wrong."""
    naive = after.astimezone(UTC).replace(tzinfo=None) if after.tzinfo else after
    try:
        return next(CronSim(schedule, naive)).replace(tzinfo=UTC)
    except CronSimError as error:
        raise ValueError(f"schedule {schedule!r}: {error}") from None


@kopf.timer(*TAMS_SCHEDULED_BACKUPS, interval=SCHEDULE_CHECK_SECONDS)
async def run_schedule(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Start the backup that is due (once, however many times were missed while no operator ran), then apply the
    retention."""
    api: KubeApi = memo["api"]
    manifest, status = dict(body), dict(body.get("status") or {})
    spec = TamsScheduledBackupSpec.model_validate(body.get("spec") or {})
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    at = datetime.now(UTC)
    last = moment(status.get("lastScheduleTime") or body.metadata["creationTimestamp"])
    try:
        due = next_time(spec.schedule, last)
        age = max_age(spec.retention.max_age)
    except ValueError as error:
        await set_status(api, manifest, error=str(error))
        return
    if at >= due and not spec.suspend:
        backup = f"{name}-{due:%Y%m%d%H%M%S}"
        await api.create(scheduled_backup(manifest, spec, backup))
        kopf.info(body, reason="Scheduled", message=f"TamsBackup {backup}")
        last = due
        # Recorded before anything else can fail: a time fires once.
        await set_status(api, manifest, lastScheduleTime=rfc3339(due), lastBackup=backup,
                         nextScheduleTime=rfc3339(next_time(spec.schedule, due)), error=None)  # fmt: skip
    ours = await api.list(f"{GROUP}/{VERSION}", "TamsBackup", namespace, {SCHEDULE_LABEL: name})
    for old in expired(ours, spec.retention.count, age, at):
        await api.delete(f"{GROUP}/{VERSION}", "TamsBackup", namespace, old)
        kopf.info(body, reason="Expired", message=f"TamsBackup {old} is past the retention")
    upcoming = None if spec.suspend else rfc3339(next_time(spec.schedule, max(last, at)))
    await set_status(api, manifest, nextScheduleTime=upcoming, error=None)


def scheduled_backup(schedule: Manifest, spec: TamsScheduledBackupSpec, name: str) -> Manifest:
    backup: Manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TamsBackup",
        "metadata": {
            "name": name,
            "namespace": schedule["metadata"]["namespace"],
            "labels": {SCHEDULE_LABEL: schedule["metadata"]["name"], **MANAGED_BY},
        },
        "spec": spec.backup.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    kopf.append_owner_reference(backup, owner=schedule)
    return backup
