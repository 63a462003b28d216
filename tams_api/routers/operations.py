"""`/health`, `/ready` and `/metrics`: for Kubernetes probes and Prometheus, not TAMS paths (so absent from
the OpenAPI document). Probes carry no credentials: /health and /ready never ask for any, /metrics only
when TAMS_METRICS_PUBLIC is false."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from ..errors import Unavailable
from ..http import JsonResponse
from ..metrics import exposition
from .common import ServicesDep, authorize

router = APIRouter(tags=["Operations"], include_in_schema=False)


@router.get("/health")
async def health() -> Response:
    """Liveness: the process answers. It looks at no store, so an outage of one never restarts the pods."""
    return JsonResponse({"status": "ok"})


@router.get("/ready")
def ready(services: ServicesDep) -> Response:
    """Readiness: the metadata store and the default media store answer (checked at most every few seconds)."""
    problems = services.readiness.problems()
    if problems:
        raise Unavailable(f"not ready: {'; '.join(problems)}")
    return JsonResponse({"status": "ready"})


async def metrics_authorized(request: Request, services: ServicesDep) -> None:
    if not services.settings.metrics_public:
        authorize(request)


@router.get("/metrics", dependencies=[Depends(metrics_authorized)])
def metrics(services: ServicesDep) -> Response:
    return Response(exposition(services.store), media_type=CONTENT_TYPE_LATEST)
