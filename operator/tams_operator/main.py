"""The operator: Kopf's settings, the shared Kubernetes client, and the handlers of each resource."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import kopf
import prometheus_client

from . import backups, deletion_requests, stores, webhooks  # noqa: F401  (importing registers the handlers)
from .config import OperatorSettings
from .kube import KubeApi, connection_info, http_client
from .upgrades import RolloutGate

PREFIX = "tams-operator.io"


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Kopf and the operator's own client use the same credentials."""
    return connection_info()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The operator's own names on the objects it handles, not Kopf's defaults.
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300  # long watches, re-established by Kopf
    memo["config"] = config = OperatorSettings()
    if config.metrics_port:
        memo["metrics"], _ = prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    memo["api"] = KubeApi(http_client(connection_info()))
    memo["locks"] = collections.defaultdict(asyncio.Lock)  # one reconcile of a TamsStore at a time
    memo["seen"] = {}  # what of each child last mattered to its store (stores.news)
    memo["rollout"] = RolloutGate(config.rollout_delay)  # one store at a time onto a new operator image


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo["api"].client.aclose()
    if "metrics" in memo:
        memo["metrics"].shutdown()
