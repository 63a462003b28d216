"""TamsStore: provision the stores, roll out the service, report how it is doing, reclaim on deletion.

The story of one reconcile (`converge`): unless the store is paused (annotation tams-operator.io/paused) → the
operator's token Secret exists → the credentials in the user's Secrets resolve (their versions go into the pod
template: a rotated Secret rolls the pods) → the metadata and media stores are provisioned (once per generation) →
the children are applied (server-side apply: edits by others are undone, deleted children come back; those the spec
no longer asks for go) → the Deployments and their pods are rolled up into Available and Ready. Anything outside
the spec that fails (a missing Secret, an unreachable bucket) is a condition saying what to fix, retried with
backoff; a spec that cannot work is a condition too, and waits for the next change of the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

import kopf

from tams_api import API_VERSION
from tams_api.config import Settings
from tams_api.errors import ConfigurationError

from .backups import restore_location
from .conditions import STUCK_POD_REASONS, ConditionType, Reason, condition, is_true
from .config import OperatorSettings
from .kube import KubeApi, KubeError, Manifest
from .metrics import RECONCILE_SECONDS, RECONCILES, STORE_PAUSED, STORE_READY
from .provisioning import (
    InvalidSpec,
    NotReady,
    credentials,
    deprovision,
    provision_media,
    provision_metadata,
    service_settings,
)
from .resources import children, operator_secret, removable_children
from .spec import dumped
from .status import Finding, write_status
from .tamsstore import GROUP, INSTANCE_LABEL, MANAGED_BY, TAMS_STORE_API_VERSION, VERSION, Store
from .upgrades import follows_operator, image_to_run

TAMS_STORES = (GROUP, VERSION, "tamsstores")
PAUSED_ANNOTATION = "tams-operator.io/paused"
# Children of APIs a cluster may not have: a missing API is reported, not retried as an error.
OPTIONAL_APIS = frozenset({"HTTPRoute", "PodMonitor"})


def context(memo: kopf.Memo) -> tuple[KubeApi, OperatorSettings]:
    return memo["api"], memo["config"]


def store_of(body: Manifest, config: OperatorSettings) -> Store:
    return Store.from_body(body, config.default_image, config.namespace)


def store_to_run(memo: kopf.Memo, body: Manifest) -> Store:
    """The store with the image its pods are to run now: the operator's, once the store may move to it (upgrades.py)."""
    config: OperatorSettings = memo["config"]
    store = store_of(body, config)
    status = body.get("status") or {}
    running = status.get("image")
    admitted = (
        store.spec.update_policy == "Automatic"
        and not paused(body)  # it would hold the gate while nothing moves it
        and follows_operator(store.spec, running, config.default_image)
        and memo["rollout"].admit((store.namespace, store.name), time.monotonic())
    )
    spec_changed = body["metadata"].get("generation") != status.get("observedGeneration")
    image = image_to_run(store.spec, running, config.default_image, spec_changed, admitted)
    return dataclasses.replace(store, default_image=image)


def settle_rollout(memo: kopf.Memo, store: Store, running: str | None, findings: list[Finding]) -> None:
    """The store that holds the rollout gate lets the next one go once it runs the operator's image and is
    available, or once it no longer follows the operator (an image of its own, or Manual)."""
    config: OperatorSettings = memo["config"]
    available = any(finding.type == ConditionType.AVAILABLE and finding.ok for finding in findings)
    following = store.spec.image is None and store.spec.update_policy == "Automatic"
    if (running == config.default_image and available) or not following:
        memo["rollout"].release((store.namespace, store.name), time.monotonic())


def paused(body: Manifest) -> bool:
    return (body["metadata"].get("annotations") or {}).get(PAUSED_ANNOTATION) == "true"


async def converge(memo: kopf.Memo, body: Manifest, reprovision: bool) -> None:
    """Bring one TamsStore's world in line with its spec; raise NotReady/InvalidSpec after recording why.
    `reprovision` (a change of the spec, or the operator starting): provision again and remove the children the spec
    no longer asks for."""
    api: KubeApi = memo["api"]
    findings: list[Finding] = []
    outcome = "ok"
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    async with memo["locks"][(namespace, name)]:
        latest = await current_store(api, namespace, name)
        if latest is None:
            return
        body = latest
        store = store_to_run(memo, body)
        generation = body["metadata"].get("generation")
        STORE_PAUSED.labels(store.namespace, store.name).set(paused(body))
        if paused(body):
            message = f"annotation {PAUSED_ANNOTATION} is true: nothing is changed until it goes"
            findings = [Finding(ConditionType.RECONCILIATION_PAUSED, True, Reason.PAUSED, message)]
            await record(api, body, store, findings, reconciled=False)
            return
        if condition(body.get("status") or {}, ConditionType.RECONCILIATION_PAUSED) is not None:
            findings.append(Finding(ConditionType.RECONCILIATION_PAUSED, False, Reason.RESUMED, "reconciling again"))
        started = time.perf_counter()
        try:
            await ensure_operator_secret(api, body, store)
            resolved = await credentials(api, store)
            store = dataclasses.replace(
                store,
                secret_versions=tuple(sorted(resolved.secret_versions.items())),
                restore_from=await restore_location(api, body, store),
            )
            service = service_settings(store, resolved)
            status = body.get("status") or {}
            if reprovision or not (
                is_true(status, ConditionType.METADATA_PROVISIONED, generation)
                and is_true(status, ConditionType.MEDIA_PROVISIONED, generation)
            ):
                await provision(store, service, findings)
            missing = await apply_children(api, body, store)
            findings += exposure(store, missing)
            if reprovision:
                await remove_children(api, store)
                if "PodMonitor" in missing:
                    kopf.warn(body, reason="PodMonitorSkipped", message="monitoring.podMonitor needs the Prometheus "
                              "Operator's CRDs (monitoring.coreos.com/v1 PodMonitor)")  # fmt: skip
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
            settle_rollout(memo, store, store.spec.image or store.default_image, findings)
            await record(api, body, store, findings, reconciled=True)
            RECONCILES.labels(outcome).inc()
            RECONCILE_SECONDS.observe(time.perf_counter() - started)


async def current_store(api: KubeApi, namespace: str, name: str) -> Manifest | None:
    """The TamsStore as it is now, None once gone or going. Read under the store's lock: a body read before it may
    predate the reconcile that held the lock meanwhile, and writing from it would undo that reconcile's work (the
    children of the previous spec applied again, its conditions stamped with the previous generation)."""
    current = await api.get(TAMS_STORE_API_VERSION, "TamsStore", namespace, name)
    if current is None or current["metadata"].get("deletionTimestamp"):
        return None
    return current


def problem_findings(reason: str, message: str) -> list[Finding]:
    """The conditions a failure belongs to: a store's own, or both when no store could even be tried."""
    kinds = {
        Reason.VAST_FAILED: [ConditionType.METADATA_PROVISIONED],
        Reason.POSTGRES_FAILED: [ConditionType.METADATA_PROVISIONED],
        Reason.S3_FAILED: [ConditionType.MEDIA_PROVISIONED],
        Reason.BACKUP_NOT_READY: [ConditionType.METADATA_PROVISIONED],
        Reason.BACKUP_FAILED: [ConditionType.METADATA_PROVISIONED],
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


async def apply_children(api: KubeApi, body: Manifest, store: Store) -> list[str]:
    """Apply every child; a child the API server refuses is the spec's fault (InvalidSpec, naming it). Returns the
    kinds of the children whose API the cluster does not serve."""
    missing: list[str] = []
    for child in children(store):
        if child["kind"] == "PersistentVolumeClaim":
            await apply_claim(api, body, store, child)
            continue
        kopf.append_owner_reference(child, owner=body)
        try:
            await api.apply(child)
        except KubeError as error:
            if error.status == 404 and child["kind"] in OPTIONAL_APIS:
                missing.append(child["kind"])
                continue
            if error.status in (400, 422):
                raise InvalidSpec(f"{child['kind']} {child['metadata']['name']}: {error}") from None
            raise
    return missing


def exposure(store: Store, missing: list[str]) -> list[Finding]:
    """How clients outside the cluster reach the store (condition Exposed)."""
    spec = store.spec
    if spec.ingress is None and spec.http_route is None:
        message = f"reachable in the cluster only, at {store.endpoint}: ingress or httpRoute reach it from outside"
        return [Finding(ConditionType.EXPOSED, False, Reason.CLUSTER_ONLY, message)]
    if "HTTPRoute" in missing:
        message = "httpRoute needs the Gateway API CRDs (gateway.networking.k8s.io/v1 HTTPRoute): install them"
        return [Finding(ConditionType.EXPOSED, False, Reason.CRD_NOT_INSTALLED, message)]
    routes = [kind for kind, wanted in (("Ingress", spec.ingress), ("HTTPRoute", spec.http_route)) if wanted]
    message = f"{' and '.join(routes)} {store.child_name} route {store.public_url} to the API"
    return [Finding(ConditionType.EXPOSED, True, Reason.EXPOSED, message)]


async def remove_children(api: KubeApi, store: Store) -> None:
    """The children of fields the spec no longer has (absent ones, or of APIs the cluster lacks, answer 404)."""
    for api_version, kind, name in removable_children(store):
        await api.delete(api_version, kind, store.namespace, name)


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
    return await api.list("v1", "Pod", store.namespace, {INSTANCE_LABEL: store.name, **MANAGED_BY})


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
    fields: dict[str, Any] = {
        "endpoint": store.endpoint,
        "url": store.public_url,
        "uiUrl": f"{store.public_url}/ui",
        "apiVersion": API_VERSION,
        "replicas": store.spec.replicas,
        "selector": store.selector("api"),
    }
    if reconciled:  # only a reconcile knows the image it applied
        fields["observedGeneration"] = generation
        fields["image"] = store.spec.image or store.default_image
    if store.restore_from is not None:
        fields["restoredFrom"] = dumped(store.restore_from)
    else:
        generation = (body.get("status") or {}).get("observedGeneration", generation)

    def derived(status: dict[str, Any]) -> Finding:
        found = ready(status, generation)
        STORE_READY.labels(store.namespace, store.name).set(found.ok is True)
        return found

    await write_status(api, body, findings, fields, derived, generation)


def retry_on_failure(config: OperatorSettings, retry: int) -> Callable[[Exception], Exception]:
    def translate(problem: Exception) -> Exception:
        if isinstance(problem, InvalidSpec):
            return kopf.PermanentError(f"fix the spec: {problem}")
        return kopf.TemporaryError(str(problem), delay=config.retry_delay(retry))

    return translate


async def resync(memo: kopf.Memo, body: Manifest) -> None:
    """Converge without provisioning again; failures are in status already, and the change handlers retry. A store
    that was paused is reconciled in full: its spec may have changed meanwhile. (Kopf sees no change of the paused
    annotation, which shares the prefix of its own: pausing takes effect at the next change or resync, resuming at
    the next resync.)"""
    was_paused = is_true(body.get("status") or {}, ConditionType.RECONCILIATION_PAUSED)
    with contextlib.suppress(NotReady, InvalidSpec):
        await converge(memo, body, reprovision=was_paused)


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


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED_BY)
@kopf.on.event("", "v1", "pods", labels=MANAGED_BY)
async def child_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Roll a Deployment's or pod's change up into its TamsStore at once; a deleted Deployment comes back."""
    api: KubeApi = memo["api"]
    name = body.metadata.labels.get(INSTANCE_LABEL)
    if not name or not news(memo["seen"], event["type"], dict(body)):
        return
    namespace = body.metadata.namespace or ""
    if event["type"] == "DELETED" and body.get("kind") == "Deployment":
        owner = await current_store(api, namespace, name)
        if owner is not None:
            await resync(memo, owner)
        return
    async with memo["locks"][(namespace, name)]:
        owner = await current_store(api, namespace, name)
        if owner is None:
            return
        store = store_of(owner, memo["config"])
        found = await availability(api, store)
        settle_rollout(memo, store, (owner.get("status") or {}).get("image"), found)
        await record(api, owner, store, found, reconciled=False)


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
    store = store_of(dict(body), config)
    memo["rollout"].release((store.namespace, store.name), time.monotonic())  # a store that goes holds no one back
    for gauge in (STORE_READY, STORE_PAUSED):
        with contextlib.suppress(KeyError):  # never set: the operator never reconciled it
            gauge.remove(store.namespace, store.name)
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
