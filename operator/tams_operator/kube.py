"""A small async client of the Kubernetes API for the operator's own reads and writes.

Kopf watches and dispatches; this client applies children (server-side apply, so drift is undone by the
next apply), reads Secrets and writes status with optimistic concurrency. Both log in through one
`KubeCredentials`: the official client finds the credentials the way kubectl does, and whichever of the two is
refused (401) logs in again for both.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import kopf
import kubernetes.client
import kubernetes.config

FIELD_MANAGER = "tams-operator"
DEFAULT_KUBECONFIG = "~/.kube/config"
Manifest = dict[str, Any]


class KubeError(Exception):
    """The API server refused a request; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def connection_info(context: str | None = None) -> kopf.ConnectionInfo:
    """Credentials found as kubectl finds them: the kubeconfig files KUBECONFIG names, else ~/.kube/config (its
    current context, or `context`), else the pod's service account. The official client reads them and runs what
    they name (exec credential plugins, auth providers): each call logs in anew."""
    configuration = kubernetes.client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    try:
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser(DEFAULT_KUBECONFIG)):
            # Named here: the client's own default is the KUBECONFIG of when it was first imported.
            kubernetes.config.load_kube_config(kubeconfig, context=context, client_configuration=configuration)
        else:
            kubernetes.config.load_incluster_config(configuration)
    except kubernetes.config.ConfigException as error:
        raise kopf.LoginError(f"cannot log in to the Kubernetes API: {error}") from error
    scheme, _, token = (configuration.get_api_key_with_prefix("BearerToken") or "").partition(" ")
    if not token and not configuration.cert_file:
        # The client logs a failing exec plugin and goes on without credentials: better no login than anonymous.
        raise kopf.LoginError("the kubeconfig's user gave no credentials (its exec credential plugin failed?)")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,  # the client's files, inline data written out
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        proxy_url=configuration.proxy,
    )


class KubeCredentials:
    """The operator's one login, for Kopf (its login handler) and `KubeApi` alike: done once, again only when the
    credentials in use are refused, one login at a time; whoever is refused meanwhile gets its outcome, so many
    requests refused at once run an exec plugin once."""

    def __init__(self, context: str | None = None) -> None:
        self.context = context
        self.info: kopf.ConnectionInfo | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> kopf.ConnectionInfo:
        return self.info or await self.renew(None)

    async def renew(self, refused: kopf.ConnectionInfo | None) -> kopf.ConnectionInfo:
        """Credentials other than `refused`: a new login unless one happened since (told by identity, as a login may
        give equal credentials back)."""
        async with self._lock:
            if self.info is None or self.info is refused:
                self.info = await asyncio.to_thread(connection_info, self.context)
            return self.info


def tls_identity(info: kopf.ConnectionInfo) -> tuple[object, ...]:
    """What a client's connections are made with, as opposed to the headers of each request."""
    return info.server, info.ca_path, info.insecure, info.certificate_path, info.private_key_path, info.proxy_url


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=info.ca_path)
    if info.insecure:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if info.certificate_path:
        context.load_cert_chain(info.certificate_path, info.private_key_path)
    return context


def http_client(info: kopf.ConnectionInfo) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=info.server, verify=_ssl_context(info), proxy=info.proxy_url, timeout=30.0)


def authorization(info: kopf.ConnectionInfo) -> dict[str, str]:
    return {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"} if info.token else {}


IRREGULAR_PLURALS = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies"}


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    # The kinds the operator touches make their plural with an s (configmaps, deployments, tamsstores), but these.
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = IRREGULAR_PLURALS.get(kind, f"{kind.lower()}s")
    collection = f"{prefix}/namespaces/{namespace}/{plural}"
    return collection if name is None else f"{collection}/{name}"


def manifest_path(manifest: Manifest) -> str:
    metadata = manifest["metadata"]
    return path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"])


class KubeApi:
    def __init__(self, credentials: KubeCredentials) -> None:
        self.credentials = credentials
        self.client: httpx.AsyncClient | None = None
        self._tls: tuple[object, ...] | None = None
        self._retired: httpx.AsyncClient | None = None

    async def _client_for(self, info: kopf.ConnectionInfo) -> httpx.AsyncClient:
        """The client for the latest credentials' TLS identity: a login may bring another (an exec plugin's new
        client certificate). The client before may still have requests in flight: it is closed at the next change,
        long idle by then. Stale credentials take the client there is: refused, they are renewed."""
        if self.client is None or (tls_identity(info) != self._tls and info is self.credentials.info):
            retired, self._retired = self._retired, self.client
            self.client, self._tls = http_client(info), tls_identity(info)
            if retired is not None:
                await retired.aclose()
        return self.client

    async def aclose(self) -> None:
        for client in (self.client, self._retired):
            if client is not None:
                await client.aclose()

    async def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **options: Any
    ) -> httpx.Response:
        async def send(info: kopf.ConnectionInfo) -> httpx.Response:
            client = await self._client_for(info)
            return await client.request(method, url, headers={**(headers or {}), **authorization(info)}, **options)

        info = await self.credentials.current()
        response = await send(info)
        if response.status_code == 401:  # expired or revoked: once more, after a login (this one's or another's)
            response = await send(await self.credentials.renew(info))
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise KubeError(response.status_code, f"{method} {url}: {response.status_code} {message}")
        return response

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        try:
            return (await self._request("GET", path(api_version, kind, namespace, name))).json()
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str, labels: dict[str, str]) -> list[Manifest]:
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        response = await self._request("GET", path(api_version, kind, namespace), params={"labelSelector": selector})
        return response.json()["items"]

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply, taking over fields others changed: the operator's children are what it says."""
        try:
            response = await self._request(
                "PATCH",
                manifest_path(manifest),
                params={"fieldManager": FIELD_MANAGER, "force": "true"},
                json=manifest,
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        except KubeError as error:
            if error.status != 422:
                raise
            # Someone changed the key of a list entry (a Service port's number): apply merges by key and would
            # keep their entry beside ours. A merge patch replaces such lists whole. Nothing to patch: the manifest
            # itself is invalid, as the apply said.
            try:
                return await self.merge_patch(manifest, manifest)
            except KubeError as patched:
                if patched.status == 404:
                    raise error from None
                raise
        return response.json()

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete unless absent (or of an API the cluster does not serve), its dependents after it (a Job's own
        default would orphan its pods); False when it was absent."""
        try:
            await self._request("DELETE", path(api_version, kind, namespace, name),
                                params={"propagationPolicy": "Background"})  # fmt: skip
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def create(self, manifest: Manifest) -> bool:
        """Create unless it exists; False when it did."""
        metadata = manifest["metadata"]
        try:
            await self._request("POST", path(manifest["apiVersion"], manifest["kind"], metadata["namespace"]),
                                json=manifest)  # fmt: skip
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def merge_patch(self, manifest: Manifest, patch: Manifest) -> Manifest:
        response = await self._request(
            "PATCH", manifest_path(manifest), json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        return response.json()

    async def update_status(self, owner: Manifest, change: Callable[[Manifest, dict[str, Any]], None]) -> None:
        """Read the object, let `change` edit its status, write it back unless someone wrote in between
        (then read again): conditions are a list, and a merge patch replaces a list whole."""
        for _ in range(10):
            current = await self.get(owner["apiVersion"], owner["kind"], owner["metadata"]["namespace"],
                                     owner["metadata"]["name"])  # fmt: skip
            if current is None:
                return
            status = dict(current.get("status") or {})
            change(current, status)
            if status == (current.get("status") or {}):
                return
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "status": status}
            try:
                await self._request(
                    "PATCH",
                    manifest_path(current) + "/status",
                    json=patch,
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                return
            except KubeError as error:
                if error.status != 409:
                    raise
        raise KubeError(409, f"status of {manifest_path(owner)} kept changing under the operator")

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's keys and decoded values; None when there is no such Secret."""
        secret = await self.get("v1", "Secret", namespace, name)
        return None if secret is None else decoded(secret)


def decoded(secret: Manifest) -> dict[str, str]:
    """A Secret's keys and decoded values."""
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
