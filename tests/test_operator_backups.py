"""TamsBackup, TamsScheduledBackup and spec.bootstrap.fromBackup: the rules on their own, then on the real
kube-apiserver and controller-manager (the Job controller runs the backups' Jobs; this test plays the kubelet, ending
their pods as `tams-api backup` would) with a real S3 server (SeaweedFS) for what the retention deletes."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from tams_operator.backups import expired, folder, max_age, next_time
from tams_operator.resources import api_deployment, backup_job
from tams_operator.spec import BackupDestination, TamsStoreSpec
from tams_operator.tamsstore import Store

from control_plane import ControlPlane
from operator_harness import GROUP, condition, create, install, new_namespace, running_operator, wait
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server

DESTINATION = BackupDestination(bucket="backups", path="tams", endpoint="http://s3.test")


def test_a_backup_writes_to_a_folder_of_its_own() -> None:
    assert folder(DESTINATION, "news", "archive", "nightly") == "tams/news/archive/nightly"
    assert folder(BackupDestination(bucket="b", path="/x/"), "news", "archive", "n") == "x/news/archive/n"
    assert folder(BackupDestination(bucket="b"), "news", "archive", "n") == "news/archive/n"


def completed(name: str, at: datetime) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": "Completed", "completedAt": at.isoformat()}}


def test_the_retention_keeps_the_newest_and_the_young() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    backups = [
        completed("old", now - timedelta(days=3)),
        completed("b", now - timedelta(hours=2)),
        completed("c", now - timedelta(hours=1)),
        {"metadata": {"name": "running"}, "status": {"phase": "Running"}},
        completed("d", now - timedelta(minutes=30)),
    ]
    assert expired(backups, count=2, age=None, at=now) == ["b", "old"]
    assert expired(backups, count=None, age=timedelta(days=1), at=now) == ["old"]
    assert expired(backups, count=None, age=None, at=now) == []
    assert max_age("30d") == timedelta(days=30) and max_age("12h") == timedelta(hours=12) and max_age(None) is None
    with pytest.raises(ValueError, match="is not a number and a unit"):
        max_age("a month")


def test_schedules_are_cron_in_utc() -> None:
    assert next_time("0 3 * * *", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert next_time("* * * * *", datetime(2026, 12, 6, 3, 0, 30)) == datetime(2026, 12, 6, 3, 1, tzinfo=UTC)
    later = datetime(2026, 12, 6, 4, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 03:00:30 UTC
    assert next_time("* * * * *", later) == datetime(2026, 12, 6, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="schedule '61 \\* \\* \\* \\*'"):
        next_time("61 * * * *", datetime(2026, 12, 6))


def test_the_backup_job_runs_beside_the_store_with_its_volumes_and_the_folder() -> None:
    store = Store("archive", "news", TamsStoreSpec(), default_image="tams:2")
    location = DESTINATION.model_copy(update={"path": "tams/news/archive/nightly"})
    job = backup_job(store, "nightly", location)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["backup", "--summary-file", "/dev/termination-log"]
    assert container["image"] == "tams:2" and pod["restartPolicy"] == "Never"
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["TAMS_BACKUP_S3_PATH"] == "tams/news/archive/nightly" and env["TAMS_BACKUP_STORE"] == "news/archive"
    assert {mount["name"] for mount in container["volumeMounts"]} == {"tmp", "data", "media"}
    [term] = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"] == store.labels("api")  # the node of the store's pods
    # Not one of the store's own pods (their failures are the store's, their count its availability).
    assert "app.kubernetes.io/instance" not in job["metadata"]["labels"]


def test_a_store_from_a_backup_restores_before_it_migrates() -> None:
    location = DESTINATION.model_copy(update={"path": "tams/news/archive/nightly"})
    store = Store("copy", "news", TamsStoreSpec(), restore_from=location)
    init = api_deployment(store)["spec"]["template"]["spec"]["initContainers"]
    assert [container["name"] for container in init] == ["restore", "migrate"]
    assert init[0]["args"] == ["restore"]
    env = {variable["name"]: variable.get("value") for variable in init[0]["env"]}
    assert env["TAMS_BACKUP_S3_BUCKET"] == "backups" and env["TAMS_BACKUP_S3_PATH"] == "tams/news/archive/nightly"
    assert "TAMS_BACKUP_S3_PATH" not in {variable["name"] for variable in init[1]["env"]}


# On the real API server.


def tams(kind: str, namespace: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": spec}  # fmt: skip


def get(admin: httpx.Client, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    response = admin.get(f"/apis/{GROUP}/namespaces/{namespace}/{plural}/{name}")
    return response.json() if response.status_code == 200 else None


def end_pod(admin: httpx.Client, namespace: str, job: str, succeeded: bool, message: str) -> bool:
    """End the Job's newest running pod as the kubelet would; False when it has none yet."""
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": f"job-name={job}"}).json()
    running = [pod for pod in pods["items"] if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    if not running:
        return False
    pod = running[0]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    terminated = {"exitCode": 0 if succeeded else 1, "message": message, "startedAt": now, "finishedAt": now}
    status = {
        "phase": "Succeeded" if succeeded else "Failed",
        "containerStatuses": [
            {"name": "backup", "image": "tams", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"terminated": terminated}}
        ],
    }  # fmt: skip
    response = admin.patch(
        f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    return True


SUMMARY = {
    "id": "b7c1",
    "metadata": {"schema_version": 3, "sources": 2, "flows": 2, "segments": 6, "objects": 7, "size": 4096},
    "media": {"objects": 6, "bytes": 1000, "missing": 0, "not_uploaded": 1},
}


def phase(admin: httpx.Client, namespace: str, name: str, wanted: str) -> dict[str, Any] | None:
    body = get(admin, namespace, "tamsbackups", name)
    return body if body and (body.get("status") or {}).get("phase") == wanted else None


def test_a_backup_runs_as_a_job_and_its_summary_becomes_its_status(kube: ControlPlane) -> None:
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        with running_operator(kube, namespace):
            create(admin, tams("TamsStore", namespace, "archive", {}))
            destination = {"bucket": "backups", "endpoint": "http://s3.test"}
            create(admin, tams("TamsBackup", namespace, "nightly", {"storeRef": {"name": "archive"},
                                                                     "destination": destination}))  # fmt: skip
            running = wait(lambda: phase(admin, namespace, "nightly", "Running"), "the backup running")
            assert running["status"]["url"] == f"s3://backups/{namespace}/archive/nightly"
            job = admin.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/nightly-backup").json()
            assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
            wait(lambda: end_pod(admin, namespace, "nightly-backup", True, json.dumps(SUMMARY)), "the Job's pod")
            done = wait(lambda: phase(admin, namespace, "nightly", "Completed"), "the backup completed")["status"]
            assert (done["backupId"], done["segments"], done["mediaObjects"], done["size"]) == ("b7c1", 6, 6, 5096)
            # Its outcome recorded, the Job goes with its pod: even ended, the pod would hold the store's volumes.
            jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
            wait(lambda: admin.get(f"{jobs}/nightly-backup").status_code == 404, "the Job deleted")

            def pods_left() -> list[dict[str, Any]]:
                selector = {"labelSelector": "job-name=nightly-backup"}
                pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", params=selector).json()["items"]
                return [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]

            wait(lambda: pods_left() == [], "its pod deleted with it")

            # A backup that fails says why, in the words its pod ended with (tried twice: backoffLimit 1).
            create(admin, tams("TamsBackup", namespace, "broken", {"storeRef": {"name": "archive"},
                                                                    "destination": destination}))  # fmt: skip
            said = "Traceback ...\ntams-api: TAMS_BACKUP_S3_ACCESS_KEY_ID: access to bucket 'backups' denied (403)"

            def failed() -> dict[str, Any] | None:
                end_pod(admin, namespace, "broken-backup", False, said)
                return phase(admin, namespace, "broken", "Failed")

            failure = wait(failed, "the backup failed", 60)["status"]
            assert failure["error"] == said.splitlines()[-1]

            # No such store: failed at once.
            create(admin, tams("TamsBackup", namespace, "orphan", {"storeRef": {"name": "nowhere"},
                                                                    "destination": destination}))  # fmt: skip
            orphan = wait(lambda: phase(admin, namespace, "orphan", "Failed"), "the orphan failed")["status"]
            assert orphan["error"] == f"no TamsStore nowhere in {namespace}"


def put_backup(
    admin: httpx.Client, namespace: str, name: str, completed_at: datetime, schedule: str, **spec: Any
) -> None:
    """A backup of the schedule as if it had completed at that time (its store does not exist: the operator fails
    it at once, and this test then writes the status a completed one has)."""
    create(admin, tams("TamsBackup", namespace, name, spec, labels={"tams-operator.io/scheduled-backup": schedule}))
    wait(lambda: phase(admin, namespace, name, "Failed"), f"{name} handled")
    status = {"phase": "Completed", "completedAt": completed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "path": f"kept/{name}"}  # fmt: skip
    response = admin.patch(
        f"/apis/{GROUP}/namespaces/{namespace}/tamsbackups/{name}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text


def test_a_schedule_of_every_minute_fires_and_the_retention_deletes_the_oldest_with_their_data(
    kube: ControlPlane, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    s3 = s3_server.client()
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        create(admin, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": namespace},
                       "stringData": {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}})  # fmt: skip
        destination = {"bucket": bucket, "endpoint": s3_server.endpoint_url, "credentialsSecretRef": {"name": "keys"}}
        template = {"storeRef": {"name": "gone"}, "destination": destination, "reclaimPolicy": "Delete"}
        with running_operator(kube, namespace):
            now = datetime.now(UTC)
            ages = {"oldest": timedelta(days=3), "older": timedelta(hours=3), "newer": timedelta(hours=2)}
            for name, age in ages.items():
                put_backup(admin, namespace, name, now - age, "nightly", **template)
                s3.put_object(Bucket=bucket, Key=f"kept/{name}/manifest.json", Body=b"{}")
            create(admin, tams("TamsStore", namespace, "archive", {}))
            spec = {"schedule": "* * * * *", "retention": {"count": 2, "maxAge": "1d"},
                    "backup": {**template, "storeRef": {"name": "archive"}}}  # fmt: skip
            create(admin, tams("TamsScheduledBackup", namespace, "nightly", spec))

            # The retention at once: "oldest" by age; the two others are the newest two.
            def listed() -> list[str]:
                items = admin.get(f"/apis/{GROUP}/namespaces/{namespace}/tamsbackups").json()["items"]
                return sorted(item["metadata"]["name"] for item in items)

            wait(lambda: listed() == ["newer", "older"], "the oldest deleted", 30)
            wait(lambda: "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="kept/oldest/"), "its data gone")

            # Within the minute, a backup of the schedule's time, made from its template.
            fired = wait(lambda: [name for name in listed() if name.startswith("nightly-")], "the schedule fired", 75)
            [name] = fired
            assert re.fullmatch(r"nightly-\d{12}00", name)
            backup = get(admin, namespace, "tamsbackups", name)
            assert backup is not None and backup["spec"]["storeRef"] == {"name": "archive"}
            assert backup["metadata"]["ownerReferences"][0]["kind"] == "TamsScheduledBackup"

            # Its status follows the backup it made (written after creating it).
            def recorded() -> dict[str, Any] | None:
                found = get(admin, namespace, "tamsscheduledbackups", "nightly") or {}
                return found if found.get("status", {}).get("lastBackup") == name else None

            schedule = wait(recorded, "the schedule's status naming its backup")
            assert schedule["status"]["nextScheduleTime"] > schedule["status"]["lastScheduleTime"]

            # Once it completes, three are completed: the oldest of them ("older") goes, its data with it.
            wait(lambda: end_pod(admin, namespace, f"{name}-backup", True, json.dumps(SUMMARY)), "its Job's pod")
            wait(lambda: listed() == sorted(["newer", name]), "the retention by count", 30)
            wait(lambda: "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="kept/older/"), "its data gone")
            assert "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix="kept/newer/")

            # A schedule that cannot work says so.
            create(admin, tams("TamsScheduledBackup", namespace, "typo", {**spec, "schedule": "61 * * * *"}))
            wait(lambda: (get(admin, namespace, "tamsscheduledbackups", "typo") or {}).get("status", {}).get("error"),
                 "the schedule's error")  # fmt: skip


def store_condition(admin: httpx.Client, namespace: str, name: str, reason: str) -> dict[str, Any] | None:
    body = get(admin, namespace, "tamsstores", name)
    found = condition(body or {}, "MetadataProvisioned")
    return body if found and found["reason"] == reason else None


def test_a_store_restores_a_completed_backup_and_bootstrap_never_comes_later(kube: ControlPlane) -> None:
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        with running_operator(kube, namespace):
            restored = {"bootstrap": {"fromBackup": {"name": "nightly"}}}
            create(admin, tams("TamsStore", namespace, "copy", restored))
            waiting = wait(lambda: store_condition(admin, namespace, "copy", "BackupNotReady"), "waiting for it")
            assert "no TamsBackup nightly (yet)" in condition(waiting, "MetadataProvisioned")["message"]

            create(admin, tams("TamsStore", namespace, "archive", {}))
            destination = {"bucket": "backups", "endpoint": "http://s3.test", "credentialsSecretRef": {"name": "k"}}
            create(admin, tams("TamsBackup", namespace, "nightly", {"storeRef": {"name": "archive"},
                                                                     "destination": destination}))  # fmt: skip
            wait(lambda: end_pod(admin, namespace, "nightly-backup", True, json.dumps(SUMMARY)), "the Job's pod")
            wait(lambda: phase(admin, namespace, "nightly", "Completed"), "the backup completed")

            def deployed() -> dict[str, Any] | None:
                response = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/copy-tams")
                return response.json() if response.status_code == 200 else None

            pod = wait(deployed, "the restored store's Deployment", 30)["spec"]["template"]["spec"]
            restore = pod["initContainers"][0]
            env = {variable["name"]: variable for variable in restore["env"]}
            assert restore["args"] == ["restore"]
            assert env["TAMS_BACKUP_S3_PATH"]["value"] == f"{namespace}/archive/nightly"
            assert env["TAMS_BACKUP_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "k", "key": "accessKey"}
            recorded = wait(lambda: get(admin, namespace, "tamsstores", "copy")["status"].get("restoredFrom"), "kept")
            assert recorded["path"] == f"{namespace}/archive/nightly"

            # The TamsBackup may go: the store keeps the folder it restored.
            admin.delete(f"/apis/{GROUP}/namespaces/{namespace}/tamsbackups/nightly")
            admin.patch(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/copy", json={"spec": {"replicas": 1,
                        "logLevel": "debug"}}, headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
            wait(lambda: (deployed() or {}).get("metadata", {}).get("generation", 0) > 1, "the change rolled")
            again = deployed()["spec"]["template"]["spec"]["initContainers"][0]
            assert again["name"] == "restore" and again["env"] == restore["env"]

            # A store that holds data never restores: bootstrap is refused once it exists, and on shared stores.
            added = admin.patch(
                f"/apis/{GROUP}/namespaces/{namespace}/tamsstores/archive",
                json={"spec": restored},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert added.status_code == 422 and "a backup is restored into a new TamsStore" in added.text
            shared = {**restored, "metadata": {"backend": "postgres", "postgres": {"uriSecretRef": {"name": "db"}}}}
            refused = admin.post(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores",
                                 json=tams("TamsStore", namespace, "pg", shared))  # fmt: skip
            assert refused.status_code == 422 and "bootstrap.fromBackup restores embedded stores" in refused.text

            # A failed backup is a store a person must fix.
            create(admin, tams("TamsBackup", namespace, "orphan", {"storeRef": {"name": "nowhere"},
                                                                    "destination": destination}))  # fmt: skip
            wait(lambda: phase(admin, namespace, "orphan", "Failed"), "the orphan failed")
            create(admin, tams("TamsStore", namespace, "hopeless", {"bootstrap": {"fromBackup": {"name": "orphan"}}}))
            wait(lambda: store_condition(admin, namespace, "hopeless", "BackupFailed"), "the failed backup named")


def test_bad_backup_specs_are_refused(kube: ControlPlane) -> None:
    with kube.client() as admin:
        install(admin)
        namespace = new_namespace(admin)
        name = f"b-{uuid.uuid4().hex[:6]}"
        for spec, message in [
            ({"destination": {"bucket": "b"}}, "storeRef: Required value"),
            ({"storeRef": {"name": "a"}, "destination": {}}, "destination.bucket: Required value"),
            ({"storeRef": {"name": "a"}, "destination": {"bucket": "b"}, "reclaimPolicy": "Keep"}, "Unsupported value"),
        ]:
            response = admin.post(f"/apis/{GROUP}/namespaces/{namespace}/tamsbackups",
                                  json=tams("TamsBackup", namespace, name, spec))  # fmt: skip
            assert response.status_code == 422 and message in response.text, response.text
        created = create(admin, tams("TamsBackup", namespace, name, {"storeRef": {"name": "a"},
                                                                      "destination": {"bucket": "b"}}))  # fmt: skip
        changed = admin.patch(
            f"/apis/{GROUP}/namespaces/{namespace}/tamsbackups/{created['metadata']['name']}",
            json={"spec": {"destination": {"bucket": "other"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert changed.status_code == 422 and "a backup cannot change" in changed.text
        schedule = {"schedule": "0 3 * * *", "retention": {"maxAge": "a month"},
                    "backup": {"storeRef": {"name": "a"}, "destination": {"bucket": "b"}}}  # fmt: skip
        response = admin.post(f"/apis/{GROUP}/namespaces/{namespace}/tamsscheduledbackups",
                              json=tams("TamsScheduledBackup", namespace, name, schedule))  # fmt: skip
        assert response.status_code == 422 and "retention.maxAge" in response.text
        both = {"bootstrap": {"fromBackup": {"name": "x", "destination": {"bucket": "b", "path": "p"}}}}
        response = admin.post(f"/apis/{GROUP}/namespaces/{namespace}/tamsstores",
                              json=tams("TamsStore", namespace, name, both))  # fmt: skip
        assert response.status_code == 422 and "a TamsBackup name or a destination, one of them" in response.text
