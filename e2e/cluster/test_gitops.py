"""GitOps with a real Argo CD: from a git repository, through Argo CD, to stores that answer (ISSUE 23).

A repository made here holds the chart (charts/tams-operator, as in this checkout) and a folder of TamsStore,
TamsWebhook and TamsDeletionRequest manifests. Argo CD (argocd_addons.py: its application controller and repo
server, built from its Go module, with the project's health scripts installed into argocd-cm by the README's
command) syncs two Applications from it automatically: the chart, which installs the operator, and the stores (the
sample Application, pruning). Each step commits, asks Argo CD to refresh as a git server's webhook would, and reads
the health Argo CD gives the Application and each resource (our Lua) back from the Application's status; the values
are printed with the e2e figures.

The operator here is the one Argo CD installs, so this module runs before any test that installs it with Helm
(conftest.py orders it first) and, at its end, deletes its Applications with what they made, and then the chart's
CRDs (which Argo CD leaves): the others then install the chart with Helm into a cluster without it. The tests run
in file order, each a step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml

import argocd_addons
from argocd_addons import ArgoCD, GitRepository
from cluster_access import Cluster, first_answer
from cluster_setup import CHART, OPERATOR_NAMESPACE, RELEASE, WAIT_S, operator_values, wait_available
from operator_harness import GROUP, ROOT, apply, condition, documents, wait
from test_scenario import add_segments, s3_client

pytestmark = pytest.mark.cluster
Manifest = dict[str, Any]
NAMESPACE = "gitops"  # where the stores Application puts the stores
CHART_APP, STORES_APP = "tams-operator", "tams-stores"
STORES = "stores"  # the repository's folder of our custom objects
SAMPLES = ROOT / "samples"
# A webhook of the embedded store whose events (flows deleted) no step causes: nothing is delivered to its URL.
WEBHOOK_EVENTS = ["flows/deleted"]
MISSING_SECRET = "keys-nobody-made"


def sample(name: str, kind: str) -> Manifest:
    [found] = [document for document in documents(SAMPLES / name) if document["kind"] == kind]
    return found


def dump(*manifests: Manifest) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


@dataclass
class GitOps:
    """The repository, Argo CD, and what each step read from Argo CD (printed with the figures)."""

    argocd: ArgoCD
    repository: GitRepository
    figures: dict[str, object]
    bucket: str
    revision: str = ""  # the last commit: a reading counts once Argo CD compared the Application with it
    steps: list[str] = field(default_factory=list)

    def commit(self, message: str, changes: Mapping[str, str | None]) -> None:
        """A commit pushed, and Argo CD asked to compare the Applications with it."""
        self.revision = self.repository.commit(message, changes)
        for name in (CHART_APP, STORES_APP):
            if self.argocd.exists(name):
                self.argocd.refresh(name)

    def current(self, app: str) -> Manifest | None:
        """The Application's status once Argo CD compared it with the last commit."""
        status = self.argocd.application(app).get("status") or {}
        return status if (status.get("sync") or {}).get("revision") == self.revision else None

    def wait_resource(self, app: str, kind: str, name: str, *healths: str, timeout: float = WAIT_S) -> tuple[str, str]:
        """The resource's health and message once Argo CD, at the last commit, gives it one of `healths`; recorded
        as this step's reading."""

        def reached() -> tuple[str, str] | None:
            found = argocd_addons.resource_health(self.current(app), kind, name)
            return found if found and found[0] in healths else None

        health, message = wait(reached, f"Argo CD: {kind} {name} of {app} {'/'.join(healths)}", timeout)
        self.record(app, f"{kind}/{name}", health, message)
        return health, message

    def wait_app(self, app: str, health: str, sync: str = "Synced", timeout: float = WAIT_S) -> None:
        """The Application's health and sync status, at the last commit; recorded."""

        def reached() -> bool:
            return argocd_addons.app_health(self.current(app)) == (health, sync)

        wait(reached, f"Argo CD: {app} {health} and {sync} at {self.revision[:8]}", timeout)
        self.record(app, "Application", health, sync)

    def record(self, app: str, what: str, health: str, detail: str) -> None:
        self.steps.append(f"{app} {what}: {health} ({detail})")
        self.figures[f"Argo CD step {len(self.steps)}: {app} {what}"] = f"{health} ({detail})"


def from_sample(name: str, repository: GitRepository) -> Manifest:
    """An Application sample pointed at the repository's main branch, deleted with what it made (the test's
    cleanup: a user's Application leaves what it made when deleted)."""
    application = sample(name, "Application")
    application["metadata"]["finalizers"] = [argocd_addons.CASCADE_FINALIZER]
    application["spec"]["source"] |= {"repoURL": repository.url, "targetRevision": "main"}
    return application


def chart_application(repository: GitRepository) -> Manifest:
    """samples/argocd-application-operator.yaml with the values the e2e installs the chart with (the image loaded into
    the nodes, short intervals)."""
    application = from_sample("argocd-application-operator.yaml", repository)
    spec = application["spec"]
    named = (application["metadata"]["name"], spec["source"]["helm"]["releaseName"], spec["destination"]["namespace"])
    assert named == (CHART_APP, RELEASE, OPERATOR_NAMESPACE), "the sample installs what the e2e's Helm install does"
    spec["source"]["helm"]["valuesObject"] = operator_values()
    return application


def stores_application(repository: GitRepository) -> Manifest:
    """samples/argocd-application.yaml on the repository's stores folder, into NAMESPACE, pruning (the sample leaves
    pruning off: deleting a store from git then deletes nothing)."""
    application = from_sample("argocd-application.yaml", repository)
    assert application["metadata"]["name"] == STORES_APP
    application["spec"]["source"]["path"] = STORES
    application["spec"]["destination"]["namespace"] = NAMESPACE
    application["spec"]["syncPolicy"]["automated"]["prune"] = True
    return application


def s3_store(bucket: str, secret: str | None = None) -> str:
    """The S3 sample (reclaimPolicy Delete) with a bucket of its own, its credentials Secret named `secret` when
    given (the sample's Secret is a file of its own, so that removing the store leaves the keys to reclaim with)."""
    store = sample("tamsstore-s3.yaml", "TamsStore")
    store["spec"]["media"]["s3"]["bucket"] = bucket
    if secret:
        store["spec"]["media"]["s3"]["credentialsSecretRef"]["name"] = secret
    return dump(store)


def first_stores(bucket: str) -> dict[str, str | None]:
    webhook = sample("tamswebhook.yaml", "TamsWebhook")
    webhook["spec"]["events"] = WEBHOOK_EVENTS
    return {
        f"{STORES}/s3-keys.yaml": dump(sample("tamsstore-s3.yaml", "Secret")),
        f"{STORES}/media.yaml": s3_store(bucket),
        f"{STORES}/embedded.yaml": dump(sample("tamsstore-embedded.yaml", "TamsStore")),
        f"{STORES}/webhook.yaml": dump(sample("tamswebhook.yaml", "Secret"), webhook),
    }


def delete_chart_crds(admin: httpx.Client) -> None:
    """The chart's CRDs deleted and waited for until gone, as a user removing the operator deletes them: Argo CD
    neither tracks nor deletes CRDs (they would take every custom object with them), as Helm leaves its crds/."""
    names = [crd["metadata"]["name"] for path in sorted((CHART / "crds").glob("*.yaml")) for crd in documents(path)]
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for name in names:
        assert admin.delete(f"{crds}/{name}").status_code in (200, 202, 404)
    wait(lambda: all(admin.get(f"{crds}/{name}").status_code == 404 for name in names), "the chart's CRDs gone", WAIT_S)


@pytest.fixture(scope="module")
def argocd(cluster: Cluster, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    """Argo CD's application controller and repo server (with Redis) running against the cluster as host processes,
    its CRDs, configuration and the project's health scripts installed; stopped after these steps (it would
    otherwise keep watching every object of the cluster while the other tests run)."""
    with argocd_addons.running_argocd(cluster, admin, tmp_path_factory.mktemp("argocd")) as running:
        yield running


@pytest.fixture(scope="module")
def gitops(
    cluster: Cluster,
    admin: httpx.Client,
    argocd: ArgoCD,
    seaweedfs: str,
    figures: dict[str, object],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GitOps]:
    """The repository with the chart, and the chart's Application applied; at the end both Applications deleted with
    what they made (the stores first, while the operator still runs to reclaim them)."""
    operator = admin.get(f"/apis/apps/v1/namespaces/{OPERATOR_NAMESPACE}/deployments/{RELEASE}")
    assert operator.status_code == 404, "the operator is already installed (Helm): the GitOps steps must run first"
    repository = GitRepository(tmp_path_factory.mktemp("gitops"))
    steps = GitOps(argocd, repository, figures, bucket=f"gitops-{uuid.uuid4().hex[:8]}")
    steps.commit("The operator's chart", repository.add_tree(CHART, "charts/tams-operator"))
    apply(admin, chart_application(repository))
    with ExitStack() as cleanup:  # in reverse: each step runs even when one before it failed
        cleanup.callback(admin.delete, f"/api/v1/namespaces/{NAMESPACE}")
        cleanup.callback(delete_chart_crds, admin)
        cleanup.callback(argocd.delete, CHART_APP)
        cleanup.callback(argocd.delete, STORES_APP)
        yield steps


# 1. The chart's Application installs the operator -----------------------------------------------------------------


def test_argo_cd_installs_the_operator_from_the_chart_in_git(gitops: GitOps, admin: httpx.Client) -> None:
    started = time.monotonic()
    gitops.wait_app(CHART_APP, "Healthy")
    wait_available(admin, OPERATOR_NAMESPACE, RELEASE)
    gitops.figures["Argo CD: chart Application applied -> Healthy (s)"] = round(time.monotonic() - started, 1)
    health, _ = gitops.wait_resource(CHART_APP, "Deployment", RELEASE, "Healthy")
    assert health == "Healthy"


# 2. The stores: Progressing while they provision, Healthy when Ready ------------------------------------------------


def test_the_stores_show_progressing_then_healthy(gitops: GitOps, admin: httpx.Client) -> None:
    gitops.commit("Two stores and a webhook", first_stores(gitops.bucket))
    apply(admin, stores_application(gitops.repository))
    seen: list[str] = []

    def healthy() -> bool:
        found = argocd_addons.resource_health(gitops.current(STORES_APP), "TamsStore", "media")
        if found and (not seen or seen[-1] != found[0]):
            seen.append(found[0])
        return bool(found) and found[0] == "Healthy"

    wait(healthy, "Argo CD: the S3 store Healthy", WAIT_S)
    gitops.record(STORES_APP, "TamsStore/media (seen)", "Healthy", " -> ".join(seen))
    assert "Progressing" in seen and seen.index("Progressing") < seen.index("Healthy"), seen
    for kind, name in (("TamsStore", "embedded"), ("TamsWebhook", "new-segments")):
        gitops.wait_resource(STORES_APP, kind, name, "Healthy")
    gitops.wait_app(STORES_APP, "Healthy")


# 3. A commit that breaks a store: Degraded, with the operator's message; the fix: Healthy ---------------------------


def test_a_missing_secret_in_git_turns_the_store_degraded_with_the_operators_message(
    gitops: GitOps, admin: httpx.Client
) -> None:
    broken = s3_store(gitops.bucket, MISSING_SECRET)
    gitops.commit("The S3 store names a Secret nobody made", {f"{STORES}/media.yaml": broken})
    _, message = gitops.wait_resource(STORES_APP, "TamsStore", "media", "Degraded")
    store = admin.get(f"/apis/{GROUP}/namespaces/{NAMESPACE}/tamsstores/media").json()
    ready = condition(store, "Ready")
    assert ready and ready["status"] == "False" and MISSING_SECRET in ready["message"], ready
    assert message == ready["message"], "Argo CD shows the operator's message"
    gitops.wait_app(STORES_APP, "Degraded")


def test_the_fix_commit_turns_it_healthy(gitops: GitOps) -> None:
    gitops.commit("The S3 store's keys again", {f"{STORES}/media.yaml": s3_store(gitops.bucket)})
    gitops.wait_resource(STORES_APP, "TamsStore", "media", "Healthy")
    gitops.wait_app(STORES_APP, "Healthy")


# 4. A deletion request committed to git: Healthy once done ----------------------------------------------------------


def test_a_deletion_request_in_git_shows_healthy_once_done(gitops: GitOps, cluster: Cluster) -> None:
    request = sample("tamsdeletionrequest.yaml", "TamsDeletionRequest")
    url = f"http://embedded-tams.{NAMESPACE}.svc"
    with cluster.services(timeout=30) as services:
        assert first_answer(services, f"{url}/service").status_code == 200
        add_segments(services, url, request["spec"]["flowId"], "[0:0_1800:0)", "[3600:0_3610:0)")
        gitops.commit("Delete the first hour", {f"{STORES}/deletion.yaml": dump(request)})
        _, message = gitops.wait_resource(STORES_APP, "TamsDeletionRequest", request["metadata"]["name"], "Healthy")
        remaining = services.get(f"{url}/flows/{request['spec']['flowId']}/segments").json()
    assert [segment["timerange"] for segment in remaining] == ["[3600:0_3610:0)"]
    assert message == "Deleted"
    gitops.wait_app(STORES_APP, "Healthy")


# 5. A store removed from git: pruned (foreground, as Argo CD prunes), its bucket gone -------------------------------


def test_a_store_removed_from_git_is_pruned_and_its_bucket_is_gone(
    gitops: GitOps, cluster: Cluster, admin: httpx.Client
) -> None:
    s3 = s3_client(cluster)
    assert gitops.bucket in {found["Name"] for found in s3.list_buckets()["Buckets"]}
    gitops.commit("The S3 store goes", {f"{STORES}/media.yaml": None})
    store = f"/apis/{GROUP}/namespaces/{NAMESPACE}/tamsstores/media"
    wait(lambda: admin.get(store).status_code == 404, "the S3 store pruned", WAIT_S)
    assert gitops.bucket not in {found["Name"] for found in s3.list_buckets()["Buckets"]}, "Delete: the bucket is gone"
    gitops.wait_app(STORES_APP, "Healthy")
    assert argocd_addons.resource_health(gitops.current(STORES_APP), "TamsStore", "media") is None, "not listed"
