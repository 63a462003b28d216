"""A small async client of the Kubernetes API for the operator's own reads and writes.

Kopf watches and dispatches; this client applies children (server-side apply, so drift is undone by the
next apply), reads Secrets and writes status with optimistic concurrency. Credentials are found the way
Kopf finds them (in-cluster service account, else KUBECONFIG).
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

import httpx
import kopf

FIELD_MANAGER = "tams-operator"
Manifest = dict[str, Any]


class KubeError(Exception):
    """The API server refused a request; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def connection_info() -> kopf.ConnectionInfo:
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no service account token and no KUBECONFIG: cannot reach the Kubernetes API")
    return info


def _data_file(data: str | bytes) -> str:
    """httpx wants client certificates as files; kubeconfigs may inline them (base64)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as file:
        file.write(base64.b64decode(data))
        return file.name


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    cadata = base64.b64decode(info.ca_data).decode() if info.ca_data else None
    context = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None, cadata=cadata)
    if info.insecure:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    certificate = info.certificate_path or (info.certificate_data and _data_file(info.certificate_data))
    if certificate:
        key = info.private_key_path or (info.private_key_data and _data_file(info.private_key_data))
        context.load_cert_chain(str(certificate), str(key) if key else None)
    return context


def http_client(info: kopf.ConnectionInfo) -> httpx.AsyncClient:
    headers = {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"} if info.token else {}
    auth = httpx.BasicAuth(info.username, info.password or "") if info.username else None
    return httpx.AsyncClient(base_url=info.server, headers=headers, auth=auth, verify=_ssl_context(info), timeout=30.0)


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
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        response = await self.client.request(method, url, **options)
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
