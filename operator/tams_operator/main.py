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
from .kube import KubeApi, KubeCredentials
from .upgrades import RolloutGate

PREFIX = "tams-operator.io"


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Kopf logs in through the operator's one login (after the startup handlers): at first, and whenever its
    credentials are refused, it gets those the operator's own client has renewed meanwhile, else a new login."""
    memo["kopf_login"] = await memo["credentials"].renew(memo.get("kopf_login"))
    return memo["kopf_login"]


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
    config = OperatorSettings()
    if config.metrics_port:
        memo["metrics"], _ = prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    prepare(memo, config)


def prepare(memo: kopf.Memo, config: OperatorSettings) -> None:
    """What the handlers share: settings, the Kubernetes client, and the state kept between their calls."""
    memo["config"] = config
    memo["credentials"] = KubeCredentials(config.kube_context or None)
    memo["api"] = KubeApi(memo["credentials"])
    memo["locks"] = collections.defaultdict(asyncio.Lock)  # one reconcile of a TamsStore at a time
    memo["seen"] = {}  # what of each child last mattered to its store (stores.news)
    memo["rollout"] = RolloutGate(config.rollout_delay)  # one store at a time onto a new operator image


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo["api"].aclose()
    if "metrics" in memo:
        memo["metrics"].shutdown()
