"""TamsStore: provision the stores, roll out the service, report how it is doing, reclaim on deletion.

The story of one reconcile (`converge`): the operator's token Secret exists → the credentials in the user's
Secrets resolve → the metadata and media stores are provisioned (once per generation) → the children are
applied (server-side apply: edits by others are undone, deleted children come back) → the Deployments and
their pods are rolled up into Available and Ready. Anything outside the spec that fails (a missing Secret,
an unreachable bucket) is a condition saying what to fix, retried with backoff; a spec that cannot work is
a condition too, and waits for the next change of the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import kopf

from tams_api import API_VERSION
from tams_api.config import Settings
from tams_api.errors import ConfigurationError

from .conditions import STUCK_POD_REASONS, ConditionType, Reason, is_true
from .config import OperatorSettings
from .kube import KubeApi, KubeError, Manifest
from .metrics import RECONCILE_SECONDS, RECONCILES
from .provisioning import (
    InvalidSpec,
    NotReady,
    credentials,
    deprovision,
    provision_media,
    provision_metadata,
    service_settings,
)
from .resources import Store, children, operator_secret
from .status import Finding, write_status

GROUP, VERSION = "tams-operator.io", "v1alpha1"
API = f"{GROUP}/{VERSION}"
TAMS_STORES = (GROUP, VERSION, "tamsstores")
MANAGED = {"app.kubernetes.io/managed-by": "tams-operator"}
INSTANCE_LABEL = "app.kubernetes.io/instance"


def context(memo: kopf.Memo) -> tuple[KubeApi, OperatorSettings]:
    return memo["api"], memo["config"]


async def converge(memo: kopf.Memo, body: Manifest, reprovision: bool) -> None:
    """Bring one TamsStore's world in line with its spec; raise NotReady/InvalidSpec after recording why."""
    api, config = context(memo)
    store = Store.from_body(body, config.default_image)
    generation = body["metadata"].get("generation")
    findings: list[Finding] = []
    outcome = "ok"
    async with memo["locks"][(store.namespace, store.name)]:
        started = time.perf_counter()
        try:
            await ensure_operator_secret(api, body, store)
            service = service_settings(store, await credentials(api, store))
            status = body.get("status") or {}
            if reprovision or not (
                is_true(status, ConditionType.METADATA_PROVISIONED, generation)
                and is_true(status, ConditionType.MEDIA_PROVISIONED, generation)
            ):
                await provision(store, service, findings)
            await apply_children(api, body, store)
        except NotReady as problem:
            findings += problem_findings(problem.reason, str(problem))
            outcome = "not_ready"
            raise
        except InvalidSpec as problem:
            findings += problem_findings(Reason.INVALID_SPEC, str(problem))
            outcome = "invalid_spec"
            raise
        finally:
            findings += await availability(api, store)
            await record(api, body, store, findings, reconciled=True)
            RECONCILES.labels(outcome).inc()
            RECONCILE_SECONDS.observe(time.perf_counter() - started)


def problem_findings(reason: str, message: str) -> list[Finding]:
    """The conditions a failure belongs to: a store's own, or both when no store could even be tried."""
    kinds = {
        Reason.VAST_FAILED: [ConditionType.METADATA_PROVISIONED],
        Reason.POSTGRES_FAILED: [ConditionType.METADATA_PROVISIONED],
        Reason.S3_FAILED: [ConditionType.MEDIA_PROVISIONED],
    }
    return [
        Finding(kind, False, reason, message)
        for kind in kinds.get(reason, [ConditionType.METADATA_PROVISIONED, ConditionType.MEDIA_PROVISIONED])
    ]


async def provision(store: Store, service: Settings, findings: list[Finding]) -> None:
    """Both stores, each reported, so that two problems show at once; raise the first."""
    problems = []
    for kind, step in (
        (ConditionType.METADATA_PROVISIONED, provision_metadata),
        (ConditionType.MEDIA_PROVISIONED, provision_media),
    ):
        try:
            findings.append(Finding(kind, True, "Provisioned", await step(store, service)))
        except NotReady as problem:
            findings += problem_findings(problem.reason, str(problem))
            problems.append(problem)
    if problems:
        raise problems[0]


async def ensure_operator_secret(api: KubeApi, body: Manifest, store: Store) -> None:
    secret = operator_secret(store, secrets.token_urlsafe(32))
    kopf.append_owner_reference(secret, owner=body)
    if await api.create(secret):
        kopf.info(body, reason="Created", message=f"Secret {store.operator_secret_name} (the operator's token)")


async def apply_children(api: KubeApi, body: Manifest, store: Store) -> None:
    for child in children(store):
        if child["kind"] == "PersistentVolumeClaim":
            await apply_claim(api, body, store, child)
            continue
        kopf.append_owner_reference(child, owner=body)
        await api.apply(child)


async def apply_claim(api: KubeApi, body: Manifest, store: Store, claim: Manifest) -> None:
    """Claims are created once (their spec is mostly immutable) and owned by the TamsStore only under
    reclaimPolicy Delete, so that garbage collection takes the data exactly then."""
    if store.reclaims_data:
        kopf.append_owner_reference(claim, owner=body)
    if await api.create(claim):
        return
    owners = claim["metadata"].get("ownerReferences", [])
    await api.merge_patch(claim, {"metadata": {"ownerReferences": owners}})


async def availability(api: KubeApi, store: Store) -> list[Finding]:
    """Available from the Deployments and their pods."""
    names = [store.child_name] + ([store.worker_name] if store.shared_metadata else [])
    for name in names:
        deployment = await api.get("apps/v1", "Deployment", store.namespace, name)
        if deployment is None:
            return [
                Finding(
                    ConditionType.AVAILABLE, False, Reason.DEPLOYMENT_MISSING, f"Deployment {name} does not exist yet"
                )
            ]
        stuck = await stuck_pod(api, store)
        if stuck:
            return [Finding(ConditionType.AVAILABLE, False, *stuck)]
        spec, status = deployment["spec"], deployment.get("status") or {}
        wanted = spec.get("replicas", 1)
        if status.get("observedGeneration", 0) < deployment["metadata"]["generation"]:
            return [
                Finding(
                    ConditionType.AVAILABLE,
                    False,
                    Reason.ROLLING_OUT,
                    f"Deployment {name}: the new spec is not yet seen",
                )
            ]
        if status.get("updatedReplicas", 0) < wanted or status.get("replicas", 0) > wanted:
            message = f"Deployment {name}: {status.get('updatedReplicas', 0)} of {wanted} pods updated"
            return [Finding(ConditionType.AVAILABLE, False, Reason.ROLLING_OUT, message)]
        if status.get("availableReplicas", 0) < 1:
            return [Finding(ConditionType.AVAILABLE, False, Reason.UNAVAILABLE, f"Deployment {name}: no pod is ready")]
    return [Finding(ConditionType.AVAILABLE, True, Reason.AVAILABLE, "the TAMS API has ready pods")]


async def pods(api: KubeApi, store: Store) -> list[Manifest]:
    """The pods of a store's Deployments."""
    return await api.list("v1", "Pod", store.namespace, {INSTANCE_LABEL: store.name, **MANAGED})


async def stuck_pod(api: KubeApi, store: Store) -> tuple[str, str] | None:
    for pod in await pods(api, store):
        for container in _container_statuses(pod.get("status") or {}):
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_POD_REASONS:
                # What a crashed container said last (the migrate container's one-line error) says more than the
                # back-off; other containers leave no termination message.
                said = ((container.get("lastState") or {}).get("terminated") or {}).get("message", "").strip()
                why = said.splitlines()[-1] if said else waiting.get("message") or waiting["reason"]
                return waiting["reason"], f"pod {pod['metadata']['name']}: {why}"
    return None


def _container_statuses(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers first: while one is stuck (the migrate container), the others only wait for it."""
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def ready(status: dict[str, Any], generation: int | None) -> Finding:
    """Ready when all three hold for this generation; else the first that does not, and why."""
    for type_ in (ConditionType.METADATA_PROVISIONED, ConditionType.MEDIA_PROVISIONED, ConditionType.AVAILABLE):
        found = next((c for c in status.get("conditions") or [] if c["type"] == type_), None)
        if found is None or found["status"] != "True":
            reason = found.get("reason", Reason.PENDING) if found else Reason.PENDING
            message = found.get("message", f"waiting for {type_}") if found else f"waiting for {type_}"
            return Finding(ConditionType.READY, False, reason, message)
        if type_ != ConditionType.AVAILABLE and found.get("observedGeneration") != generation:
            return Finding(
                ConditionType.READY, False, Reason.PENDING, f"{type_} not yet checked for generation {generation}"
            )
    return Finding(ConditionType.READY, True, Reason.READY, "the TAMS API is provisioned and serving")


async def record(api: KubeApi, body: Manifest, store: Store, findings: list[Finding], reconciled: bool) -> None:
    """Findings into status, and Ready derived from them. Only a reconcile of the spec moves
    observedGeneration; a child's news describes the generation last reconciled."""
    generation = body["metadata"].get("generation")
    fields: dict[str, Any] = {"endpoint": store.endpoint, "apiVersion": API_VERSION}
    if reconciled:
        fields["observedGeneration"] = generation
    else:
        generation = (body.get("status") or {}).get("observedGeneration", generation)
    await write_status(api, body, findings, fields, lambda status: ready(status, generation), generation)


def retry_on_failure(config: OperatorSettings, retry: int) -> Callable[[Exception], Exception]:
    def translate(problem: Exception) -> Exception:
        if isinstance(problem, InvalidSpec):
            return kopf.PermanentError(f"fix the spec: {problem}")
        return kopf.TemporaryError(str(problem), delay=config.retry_delay(retry))

    return translate


async def resync(memo: kopf.Memo, body: Manifest) -> None:
    """Converge without provisioning again; failures are in status already, and the change handlers retry."""
    with contextlib.suppress(NotReady, InvalidSpec):
        await converge(memo, body, reprovision=False)


@kopf.on.create(*TAMS_STORES)
@kopf.on.update(*TAMS_STORES)
@kopf.on.resume(*TAMS_STORES)
async def reconcile(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    try:
        await converge(memo, dict(body), reprovision=True)
    except (NotReady, InvalidSpec) as problem:
        raise retry_on_failure(memo["config"], retry)(problem) from None


@kopf.daemon(*TAMS_STORES, cancellation_timeout=5)
async def keep_converged(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Drift: children edited or deleted behind the operator's back come back; status stays current."""
    config: OperatorSettings = memo["config"]
    while not await stopped.wait(config.resync_interval):
        if body.metadata.get("deletionTimestamp"):
            return
        await resync(memo, dict(body))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def child_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Roll a Deployment's or pod's change up into its TamsStore at once; a deleted Deployment comes back."""
    api: KubeApi = memo["api"]
    name = body.metadata.labels.get(INSTANCE_LABEL)
    if not name or not news(memo["seen"], event["type"], dict(body)):
        return
    owner = await api.get(API, "TamsStore", body.metadata.namespace or "", name)
    if owner is None or owner["metadata"].get("deletionTimestamp"):
        return
    if event["type"] == "DELETED" and body.get("kind") == "Deployment":
        await resync(memo, owner)
        return
    store = Store.from_body(owner, memo["config"].default_image)
    async with memo["locks"][(store.namespace, store.name)]:
        await record(api, owner, store, await availability(api, store), reconciled=False)


def news(seen: dict[tuple[str, str, str], tuple[Any, ...]], event_type: str, body: Manifest) -> bool:
    """Whether a Deployment's or pod's event may change its store's Available condition: most do not (a pod
    scheduled, an annotation), and each roll-up costs the API server four requests."""
    key = (body["kind"], body["metadata"]["namespace"], body["metadata"]["name"])
    if event_type == "DELETED":
        seen.pop(key, None)
        return True
    status = body.get("status") or {}
    if body["kind"] == "Deployment":
        fields = ("observedGeneration", "replicas", "updatedReplicas", "availableReplicas")
        signature: tuple[Any, ...] = (body["metadata"].get("generation"), *(status.get(f) for f in fields))
    else:
        containers = _container_statuses(status)
        states = [(c.get("ready"), ((c.get("state") or {}).get("waiting") or {}).get("reason")) for c in containers]
        signature = (status.get("phase"), *states)
    if seen.get(key) == signature:
        return False
    seen[key] = signature
    return True


async def stop_pods(api: KubeApi, store: Store) -> None:
    """Scale the store's Deployments to zero and wait for its pods to go, so that no pod writes into a bucket
    being emptied (garbage collection takes the Deployments only once the TamsStore is gone)."""
    for name in (store.child_name, store.worker_name):
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": store.namespace},
        }
        try:
            await api.merge_patch(deployment, {"spec": {"replicas": 0}})
        except KubeError as error:
            if error.status != 404:  # none to scale: never made, or collected already (foreground deletion)
                raise
    if await pods(api, store):
        raise NotReady(Reason.PODS_STOPPING, "waiting for the store's pods to stop before deleting its data")


@kopf.on.delete(*TAMS_STORES)
async def reclaim(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    """reclaimPolicy Delete removes the bucket and the tables (volumes go by garbage collection); Retain
    keeps everything. Secrets gone first (as `kubectl delete -f` of a folder may do) do not block deletion
    forever: after a few attempts the data is kept, and an event says so."""
    api, config = context(memo)
    store = Store.from_body(dict(body), config.default_image)
    if not store.reclaims_data:
        kopf.info(body, reason="Retained", message="reclaimPolicy Retain: data, buckets and tables kept")
        return
    try:
        # Garbage collection may have taken the token Secret already (foreground deletion, as Argo CD prunes).
        service = service_settings(store, await credentials(api, store, operator_token=False))
        await stop_pods(api, store)
        outcome = await asyncio.to_thread(deprovision, service)
    except (NotReady, InvalidSpec, ConfigurationError) as problem:
        if retry >= 4:
            kopf.warn(body, reason="ReclaimFailed", message=f"data kept: {problem}")
            return
        raise kopf.TemporaryError(str(problem), delay=config.retry_delay(retry)) from None
    kopf.info(body, reason="Reclaimed", message=outcome)
