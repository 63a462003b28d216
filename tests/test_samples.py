"""samples/: each file applied as written to the real API server with the CRDs installed (schemas, defaults and
CEL rules; unknown fields refused rather than pruned), complete in itself (every Secret it references is in
it), and the Argo CD Application in the shape Argo CD expects."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane import ControlPlane
from operator_harness import GROUP, ROOT, apply, create, documents, install, path

Manifest = dict[str, Any]
SAMPLES = ROOT / "samples"
ARGOCD_SAMPLES = sorted(SAMPLES.glob("argocd-*.yaml"))  # Argo CD Applications: no Argo CD in these tests
KUBE_SAMPLES = sorted(set(SAMPLES.glob("*.yaml")) - set(ARGOCD_SAMPLES))
# Secrets first, as `kubectl apply` would need them before the operator reads them.
APPLY_ORDER = ["Secret", "TamsStore", "TamsWebhook", "TamsDeletionRequest", "TamsBackup", "TamsScheduledBackup"]


def secret_refs(value: Any) -> set[str]:
    """Names of the Secrets a spec refers to (`credentialsSecretRef`, `secretRef`, `tokensSecretRef`, ...)."""
    if isinstance(value, list):
        return {name for item in value for name in secret_refs(item)}
    if not isinstance(value, dict):
        return set()
    named = {ref["name"] for key, ref in value.items() if key.lower().endswith("secretref")}
    return named | {name for child in value.values() for name in secret_refs(child)}


def names(manifests: list[Manifest], kind: str) -> set[str]:
    return {manifest["metadata"]["name"] for manifest in manifests if manifest["kind"] == kind}


@pytest.mark.parametrize("sample", KUBE_SAMPLES, ids=lambda sample: sample.name)
def test_a_sample_brings_the_secrets_it_references(sample: Path) -> None:
    manifests = documents(sample)
    assert {manifest["kind"] for manifest in manifests} <= set(APPLY_ORDER)
    referenced = {name for manifest in manifests for name in secret_refs(manifest.get("spec"))}
    assert referenced == names(manifests, "Secret")
    for secret in (manifest for manifest in manifests if manifest["kind"] == "Secret"):
        assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert all("namespace" not in manifest["metadata"] for manifest in manifests), "applied with -n"


def test_webhooks_and_deletions_name_a_sample_store() -> None:
    every = [manifest for sample in KUBE_SAMPLES for manifest in documents(sample)]
    stores = names(every, "TamsStore")
    for manifest in every:
        if manifest["kind"] in ("TamsWebhook", "TamsDeletionRequest", "TamsBackup"):
            assert manifest["spec"]["storeRef"]["name"] in stores
        if manifest["kind"] == "TamsScheduledBackup":
            assert manifest["spec"]["backup"]["storeRef"]["name"] in stores


@pytest.fixture(scope="module")
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> Iterator[str]:
    name = f"samples-{uuid.uuid4().hex[:8]}"
    create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    # No operator runs here, so nothing holds a finalizer: the namespace goes with all in it.
    admin.delete(f"/api/v1/namespaces/{name}")


@pytest.mark.parametrize("sample", KUBE_SAMPLES, ids=lambda sample: sample.name)
def test_the_api_server_accepts_the_sample_as_written(admin: httpx.Client, namespace: str, sample: Path) -> None:
    manifests = sorted(documents(sample), key=lambda manifest: APPLY_ORDER.index(manifest["kind"]))
    for manifest in manifests:
        placed = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        applied = apply(admin, placed)
        assert admin.get(path(placed)).json()["metadata"]["uid"] == applied["metadata"]["uid"]
        if manifest["apiVersion"] == GROUP:
            assert contains(applied["spec"], manifest["spec"]), "nothing given was dropped"


def contains(stored: Any, given: Any) -> bool:
    """Whether what was given survives in what was stored (which may hold defaults besides)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(key in stored and contains(stored[key], given[key]) for key in given)
    return stored == given


@pytest.mark.parametrize("sample", ARGOCD_SAMPLES, ids=lambda sample: sample.name)
def test_the_argo_cd_applications_sync_a_git_path_into_a_namespace(sample: Path) -> None:
    [application] = documents(sample)
    assert (application["apiVersion"], application["kind"]) == ("argoproj.io/v1alpha1", "Application")
    assert application["metadata"]["namespace"] == "argocd", "where Argo CD looks for Applications"
    spec = application["spec"]
    assert set(spec) <= {"project", "source", "destination", "syncPolicy", "ignoreDifferences", "info"}
    assert spec["project"]
    assert {"repoURL", "path", "targetRevision"} <= set(spec["source"])
    assert not Path(spec["source"]["path"]).is_absolute()
    assert spec["destination"]["namespace"] and ({"server", "name"} & set(spec["destination"]))
    assert set(spec["syncPolicy"]) <= {"automated", "syncOptions", "retry", "managedNamespaceMetadata"}
    assert set(spec["syncPolicy"]["automated"]) <= {"prune", "selfHeal", "allowEmpty"}


def test_the_readme_installs_what_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Install with Helm", 1)[1].split("\n### ", 1)[0]
    [commands] = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert "helm install tams-operator charts/tams-operator -n tams-system --create-namespace" in commands
    [sample] = re.findall(r"kubectl apply -f (samples/\S+)", commands)
    [waited] = re.findall(r"tamsstore/(\S+)", commands)
    assert waited in names(documents(ROOT / sample), "TamsStore")
