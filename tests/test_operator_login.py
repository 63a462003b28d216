"""The operator logs in as kubectl does, on the real control plane: its kubeconfig's user is an exec credential
plugin (a script printing an ExecCredential, as `aws eks get-token` or `gke-gcloud-auth-plugin` do), and a token
the API server stops accepting mid-run is replaced by the plugin's next one without a restart: the operator's own
client logs in again on its 401 (once for many requests refused at once, with a new client when the plugin hands out a
new client certificate) and Kopf gets the same credentials."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tams_operator.kube import KubeApi, KubeCredentials

from control_plane import OPERATOR, ControlPlane
from operator_harness import create, install, new_namespace, path, play_kubelet, wait
from test_operator import deployment_ref, get, is_ready, merge_patch, tams_store
from test_operator_restart import operator_process

SERVICE_ACCOUNT = "/api/v1/namespaces/tams-system/serviceaccounts/tams-operator"
EXEC_CREDENTIAL = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential"}


class ExecPlugin:
    """A credential plugin handing out whatever credentials the test gave it last, counting its runs (one a line)."""

    def __init__(self, folder: Path) -> None:
        self.script, self.credential, self.log = folder / "get-token", folder / "credential.json", folder / "runs"
        self.script.write_text(f"#!/bin/sh\necho run >> {self.log}\ncat {self.credential}\n")
        self.script.chmod(0o755)

    def hand_out(self, **status: str) -> None:
        """`token`, or `clientCertificateData` and `clientKeyData` (PEM)."""
        scratch = self.credential.with_suffix(".new")  # replaced whole: the plugin may be running
        scratch.write_text(json.dumps({**EXEC_CREDENTIAL, "status": status}))
        scratch.replace(self.credential)

    @property
    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def kubeconfig(self, kube: ControlPlane) -> Path:
        """The operator's kubeconfig, its user this plugin instead of a token."""
        config = yaml.safe_load(kube.kubeconfig(OPERATOR).read_text())
        config["users"][0]["user"] = {"exec": {"apiVersion": EXEC_CREDENTIAL["apiVersion"],
                                               "command": str(self.script), "interactiveMode": "Never"}}  # fmt: skip
        kubeconfig = self.script.with_name("kubeconfig")
        kubeconfig.write_text(yaml.safe_dump(config))
        return kubeconfig


@pytest.fixture
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with kube.client() as client:
        install(client)
        yield client


@pytest.fixture
def plugin(tmp_path: Path) -> ExecPlugin:
    return ExecPlugin(tmp_path)


@pytest.fixture
def probe(kube: ControlPlane, admin: httpx.Client, plugin: ExecPlugin, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A ConfigMap (not made yet) for the operator's own client to write, in a namespace of its own; the client's
    kubeconfig (KUBECONFIG) has `plugin` as its user."""
    monkeypatch.setenv("KUBECONFIG", str(plugin.kubeconfig(kube)))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": new_namespace(admin)}}


def with_operator_client(scenario: Callable[[KubeApi], Awaitable[None]]) -> None:
    """`scenario` run with the operator's own client, logged in as KUBECONFIG says, closed after."""

    async def run() -> None:
        api = KubeApi(KubeCredentials())
        try:
            await scenario(api)
        finally:
            await api.aclose()

    asyncio.run(run())


def revocable_token(admin: httpx.Client) -> tuple[str, dict]:
    """A token of the operator's service account bound to a Secret of its own: deleting the Secret revokes it."""
    metadata = {"name": f"login-{uuid.uuid4().hex[:8]}", "namespace": "tams-system"}
    binding = create(admin, {"apiVersion": "v1", "kind": "Secret", "metadata": metadata})
    reference = {"apiVersion": "v1", "kind": "Secret", "name": binding["metadata"]["name"],
                 "uid": binding["metadata"]["uid"]}  # fmt: skip
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"boundObjectRef": reference}}
    response = admin.post(f"{SERVICE_ACCOUNT}/token", json=request)
    assert response.status_code == 201, response.text
    return response.json()["status"]["token"], binding


def revoke(kube: ControlPlane, admin: httpx.Client, token: str, binding: dict) -> None:
    """Delete the token's Secret, and wait until the API server refuses the token (it caches logins briefly)."""
    assert admin.delete(path(binding)).status_code == 200
    with httpx.Client(base_url=kube.server, headers={"Authorization": f"Bearer {token}"}, verify=False) as client:
        wait(lambda: client.get("/apis").status_code == 401, "the token refused", 60)


def test_the_operators_client_logs_in_again_once_for_requests_refused_together(
    kube: ControlPlane, admin: httpx.Client, plugin: ExecPlugin, probe: dict
) -> None:
    token, binding = revocable_token(admin)
    plugin.hand_out(token=token)

    async def scenario(api: KubeApi) -> None:
        await api.apply({**probe, "data": {"written": "before"}})
        assert plugin.runs == 1
        plugin.hand_out(token=kube.tokens[OPERATOR])
        revoke(kube, admin, token, binding)
        # Ten reads at once, all refused with the revoked token: one login, each retried with its outcome.
        namespace = probe["metadata"]["namespace"]
        read = await asyncio.gather(*(api.get("v1", "ConfigMap", namespace, "probe") for _ in range(10)))
        assert [found["data"] for found in read] == [{"written": "before"}] * 10
        assert plugin.runs == 2
        await api.apply({**probe, "data": {"written": "after"}})

    with_operator_client(scenario)
    assert get(admin, probe)["data"] == {"written": "after"}
    assert plugin.runs == 2


def refused(kube: ControlPlane, certificate: str, key: str, folder: Path) -> bool:
    """Whether the API server refuses this client certificate (401), as once it has expired."""
    (folder / "old.crt").write_text(certificate)
    (folder / "old.key").write_text(key)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(folder / "old.crt", folder / "old.key")
    return httpx.get(f"{kube.server}/apis", verify=context).status_code == 401


def test_the_operators_client_takes_the_plugins_new_client_certificate_when_the_old_one_expires(
    kube: ControlPlane, admin: httpx.Client, plugin: ExecPlugin, probe: dict, tmp_path: Path
) -> None:
    """As Teleport's `tsh` hands out certificates: the connections are made with the new one (another TLS identity,
    so another HTTP client), not only the requests' headers."""
    # Short-lived, so that it expires under the client; the client's first requests come right after.
    certificate, key = kube.client_certificate(OPERATOR, datetime.timedelta(seconds=10))
    plugin.hand_out(clientCertificateData=certificate, clientKeyData=key)

    async def scenario(api: KubeApi) -> None:
        await api.apply({**probe, "data": {"written": "before"}})
        renewed, renewed_key = kube.client_certificate(OPERATOR, datetime.timedelta(hours=1))
        plugin.hand_out(clientCertificateData=renewed, clientKeyData=renewed_key)
        wait(lambda: refused(kube, certificate, key, tmp_path), "the first certificate expired", 60)
        await api.apply({**probe, "data": {"written": "after"}})

    with_operator_client(scenario)
    assert get(admin, probe)["data"] == {"written": "after"}
    assert plugin.runs == 2


def store_ready(admin: httpx.Client, store: dict) -> bool:
    instance = f"app.kubernetes.io/instance={store['metadata']['name']}"
    return bool(play_kubelet(admin, store["metadata"]["namespace"], instance) and is_ready(admin, store))


def delete_stores(admin: httpx.Client, *stores: dict) -> None:
    """While their operator runs (their finalizer is its), so that no other test meets them."""
    for store in stores:
        admin.delete(path(store))
    for store in stores:
        wait(lambda store=store: admin.get(path(store)).status_code == 404, f"{store['metadata']['name']} gone", 60)


def test_an_operator_whose_kubeconfig_runs_an_exec_plugin_makes_a_store_ready(
    kube: ControlPlane, admin: httpx.Client, plugin: ExecPlugin, tmp_path: Path
) -> None:
    plugin.hand_out(token=kube.tokens[OPERATOR])
    namespace = new_namespace(admin)
    with operator_process(kube, namespace, tmp_path / "operator.log", plugin.kubeconfig(kube)):
        store = create(admin, tams_store(namespace, {}))
        wait(lambda: store_ready(admin, store), "the store Ready", 60)
        assert plugin.runs == 1, "Kopf and the operator's own client log in once, together"
        delete_stores(admin, store)


def test_a_token_refused_mid_run_is_replaced_by_the_plugins_next_without_a_restart(
    kube: ControlPlane, admin: httpx.Client, plugin: ExecPlugin, tmp_path: Path
) -> None:
    token, binding = revocable_token(admin)
    plugin.hand_out(token=token)
    namespace = new_namespace(admin)
    log = tmp_path / "operator.log"
    with operator_process(kube, namespace, log, plugin.kubeconfig(kube)) as operator:
        news = create(admin, tams_store(namespace, {}))
        wait(lambda: store_ready(admin, news), "news Ready", 60)
        assert plugin.runs == 1

        plugin.hand_out(token=kube.tokens[OPERATOR])
        revoke(kube, admin, token, binding)
        # The operator's writes go on: a spec change applied and reported, a new store made and reported.
        assert merge_patch(admin, news, {"spec": {"presignedUrlTimeout": 600}})["metadata"]["generation"] == 2
        config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "news-tams", "namespace": namespace}}
        wait(lambda: get(admin, config)["data"]["TAMS_PRESIGNED_URL_TIMEOUT"] == "600", "the ConfigMap changed")
        wait(lambda: get(admin, news)["status"].get("observedGeneration") == 2, "news at generation 2")
        sport = create(admin, tams_store(namespace, {}, name="sport"))
        wait(lambda: store_ready(admin, sport), "sport Ready", 60)
        assert get(admin, deployment_ref(namespace, "sport-tams"))["metadata"]["ownerReferences"]
        assert operator.poll() is None, log.read_text()[-3000:]
        assert plugin.runs == 2, "one login after the refusal, for Kopf and the operator's client alike"
        delete_stores(admin, news, sport)
