"""The operator as a client of a store's TAMS API, with the admin token it created for that store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .conditions import Reason
from .config import OperatorSettings
from .environment import OPERATOR_TOKEN_KEY
from .kube import KubeApi
from .provisioning import NotReady
from .tamsstore import TAMS_STORE_API_VERSION, Store


class TamsApi:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The response, whatever its 4xx but 401; unreachable, failing (5xx) or not accepting the operator's
        token (401: pods not yet rolled out with it) is NotReady, which heals."""
        try:
            response = await self.client.request(method, path, **options)
        except httpx.HTTPError as error:
            raise NotReady(
                Reason.UNREACHABLE, f"TAMS API at {self.client.base_url} cannot be reached ({error})"
            ) from None
        if response.status_code >= 500:
            raise NotReady(Reason.TAMS_ERROR, f"TAMS API {method} {path}: {response.status_code} {problem(response)}")
        if response.status_code == 401:
            raise NotReady(Reason.UNAUTHORIZED, f"TAMS API {method} {path}: the operator's token is not accepted (yet)")
        return response


def problem(response: httpx.Response) -> str:
    """The summary of the spec's error JSON, or the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("summary") or response.text) if isinstance(body, dict) else response.text


@asynccontextmanager
async def store_api(api: KubeApi, config: OperatorSettings, namespace: str, name: str) -> AsyncIterator[TamsApi]:
    body = await api.get(TAMS_STORE_API_VERSION, "TamsStore", namespace, name)
    if body is None:
        raise NotReady(Reason.STORE_NOT_FOUND, f"TamsStore {name!r} not found in namespace {namespace!r}")
    store = Store.from_body(body)
    token = (await api.secret_data(namespace, store.operator_secret_name) or {}).get(OPERATOR_TOKEN_KEY)
    if token is None:
        raise NotReady(Reason.STORE_NOT_READY, f"TamsStore {name!r} has no operator token yet")
    url = config.api_url_template.format(service=store.child_name, namespace=namespace, port=store.spec.service.port)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as client:
        yield TamsApi(client)
