"""`/service/webhooks`: registering for events. Delivery is the worker's (`tams_api.delivery`)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Body, Request
from starlette.responses import Response

from ..auth import ADMIN
from ..errors import Forbidden, NotFound
from ..http import json_response, listing_headers, no_content
from ..model import Webhook, WebhookQuery
from ..webhooks import check_url, replace, webhook_from_body
from .common import ServicesDep, get_and_head, page_request, principal_name, require_uuid, tag_filter, tams_router

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
    return json_response(
        [webhook.to_json() for webhook in listing.items], headers=listing_headers(request, listing, reverse_order)
    )


@router.post("/service/webhooks", status_code=201)
def register_webhook(request: Request, services: ServicesDep, body: Any = Body(...)) -> Response:
    webhook = webhook_from_body(str(uuid.uuid4()), body, replacing=False, owner=principal_name(request))
    check_url(webhook.url, services.settings.webhook_allow_link_local)
    stored = services.store.save_webhook(webhook, lambda _: webhook)
    return json_response(stored.to_json(), status=201)


def _webhook(services: ServicesDep, webhook_id: str) -> Webhook:
    webhook = services.store.get_webhook(require_uuid(webhook_id, "webhook"))
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    return webhook


def _check_owner(request: Request, webhook: Webhook | None) -> None:
    """Authenticated clients change only their own webhooks, unless they administer the service."""
    principal = getattr(request.state, "principal", None)
    name = principal_name(request)
    if webhook is None or webhook.owner is None or name is None or name == webhook.owner:
        return
    if not principal.may(ADMIN, strict=True):
        raise Forbidden(f"webhook {webhook.id} belongs to {webhook.owner}")


@get_and_head(router, "/service/webhooks/{webhook_id}")
def get_webhook(services: ServicesDep, webhook_id: str) -> Response:
    return json_response(_webhook(services, webhook_id).to_json())


@router.put("/service/webhooks/{webhook_id}", status_code=201)
def update_webhook(request: Request, services: ServicesDep, webhook_id: str, body: Any = Body(...)) -> Response:
    _check_owner(request, _webhook(services, webhook_id))
    update = webhook_from_body(webhook_id, body, replacing=True, owner=None)
    check_url(update.url, services.settings.webhook_allow_link_local)

    def change(stored: Webhook | None) -> Webhook:
        if stored is None:
            raise NotFound(f"webhook {webhook_id} does not exist")
        _check_owner(request, stored)
        return replace(stored, update)

    return json_response(services.store.save_webhook(update, change).to_json(), status=201)


@router.delete("/service/webhooks/{webhook_id}", status_code=204)
def delete_webhook(request: Request, services: ServicesDep, webhook_id: str) -> Response:
    _check_owner(request, _webhook(services, webhook_id))
    services.store.delete_webhook(webhook_id)
    return no_content()
