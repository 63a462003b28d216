"""`/service/webhooks`: registering for events. Delivery is the worker's (`tams_api.delivery`)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Body, Request
from starlette.responses import Response

from ..domain import webhooks
from ..http import JsonResponse, listing_headers, no_content
from ..model import WebhookQuery
from ..webhooks import check_url, webhook_from_body
from .common import (
    ServicesDep,
    get_and_head,
    page_request,
    principal,
    principal_name,
    require_uuid,
    tag_filter,
    tams_router,
)

router = tams_router(tags=["Webhooks"])


@get_and_head(router, "/service/webhooks")
def list_webhooks(
    request: Request,
    services: ServicesDep,
    reverse_order: bool = False,
    page: str | None = None,
    limit: int | None = None,
) -> Response:
    query = WebhookQuery(page=page_request(services.settings, limit, page, reverse_order), tags=tag_filter(request))
    listing = services.store.list_webhooks(query)
    return JsonResponse(
        [webhook.to_json() for webhook in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


@router.post("/service/webhooks", status_code=201)
def register_webhook(request: Request, services: ServicesDep, body: Any = Body(...)) -> Response:
    webhook = webhook_from_body(str(uuid.uuid4()), body, replacing=False, owner=principal_name(request))
    check_url(webhook.url, services.settings.webhook_allow_link_local)
    return JsonResponse(webhooks.register(services.store, webhook).to_json(), status=201)


@get_and_head(router, "/service/webhooks/{webhook_id}")
def get_webhook(services: ServicesDep, webhook_id: str) -> Response:
    return JsonResponse(webhooks.get(services.store, require_uuid(webhook_id, "webhook")).to_json())


@router.put("/service/webhooks/{webhook_id}", status_code=201)
def update_webhook(request: Request, services: ServicesDep, webhook_id: str, body: Any = Body(...)) -> Response:
    # Unknown or someone else's: said before anything about the body.
    webhooks.check_owner(webhooks.get(services.store, require_uuid(webhook_id, "webhook")), principal(request))
    update = webhook_from_body(webhook_id, body, replacing=True, owner=None)
    check_url(update.url, services.settings.webhook_allow_link_local)
    return JsonResponse(webhooks.replace(services.store, update, principal(request)).to_json(), status=201)


@router.delete("/service/webhooks/{webhook_id}", status_code=204)
def delete_webhook(request: Request, services: ServicesDep, webhook_id: str) -> Response:
    webhooks.delete(services.store, require_uuid(webhook_id, "webhook"), principal(request))
    return no_content()
