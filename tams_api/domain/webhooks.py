"""The lifecycle of webhooks: who may change one, what a registration or a replacement makes of it, and the moves
of the delivery worker (started, in error, past the events delivered). A webhook that starts listening receives the
events written from then on, not those before."""

from __future__ import annotations

import functools

from ..auth import ADMIN, ANONYMOUS, Principal
from ..errors import BadRequest, Forbidden
from ..model import Webhook
from ..stores.metadata import MetadataStore, Transaction
from . import found


def get(store: MetadataStore, webhook_id: str) -> Webhook:
    """The webhook, which must exist."""
    return store.read(lambda tx: _existing(store, tx, webhook_id))


def check_owner(webhook: Webhook, principal: Principal) -> None:
    """Authenticated clients change only their own webhooks, unless they administer the service."""
    if webhook.owner is None or principal is ANONYMOUS or principal.name == webhook.owner:
        return
    if not principal.may(ADMIN, strict=True):
        raise Forbidden(f"webhook {webhook.id} belongs to {webhook.owner}")


def register(store: MetadataStore, webhook: Webhook) -> Webhook:
    """Store a new webhook, as its registration (`webhook_from_body`) describes it."""
    return store.write(functools.partial(_register, store, webhook))


def _register(store: MetadataStore, webhook: Webhook, tx: Transaction) -> Webhook:
    store.put_webhook(tx, webhook, from_now=webhook.active)
    return webhook


def replace(store: MetadataStore, update: Webhook, principal: Principal) -> Webhook:
    """Replace the stored webhook of `update`'s id as a PUT asks, if `principal` may; the webhook as stored."""
    return store.write(functools.partial(_replace, store, update, principal))


def _replace(store: MetadataStore, update: Webhook, principal: Principal, tx: Transaction) -> Webhook:
    stored = _existing(store, tx, update.id)
    check_owner(stored, principal)
    changed = replaced(stored, update)
    store.put_webhook(tx, changed, from_now=changed.active and not stored.active)
    return changed


def delete(store: MetadataStore, webhook_id: str, principal: Principal) -> None:
    """Delete the webhook, if `principal` may."""
    store.write(functools.partial(_delete, store, webhook_id, principal))


def _delete(store: MetadataStore, webhook_id: str, principal: Principal, tx: Transaction) -> None:
    check_owner(_existing(store, tx, webhook_id), principal)
    store.delete_webhook(tx, webhook_id)


def set_status(store: MetadataStore, webhook_id: str, status: str, error: dict[str, str] | None = None) -> None:
    """The worker's moves (created -> started, started -> error), unless a client changed the webhook meanwhile."""
    store.write(functools.partial(_set_status, store, webhook_id, status, error))


def _set_status(
    store: MetadataStore, webhook_id: str, status: str, error: dict[str, str] | None, tx: Transaction
) -> None:
    stored = store.webhook_record(tx, webhook_id)
    if stored is not None and stored.active:
        stored.status, stored.error = status, error
        store.put_webhook(tx, stored, from_now=False)


def advance(store: MetadataStore, webhook_id: str, cursor: int) -> None:
    """Move the webhook's cursor past the events up to `cursor`: delivered, or not wanted. Never back."""
    store.write(functools.partial(_advance, store, webhook_id, cursor))


def _advance(store: MetadataStore, webhook_id: str, cursor: int, tx: Transaction) -> None:
    stored = store.webhook_record(tx, webhook_id)
    if stored is not None and stored.cursor < cursor:
        stored.cursor = cursor
        store.put_webhook(tx, stored, from_now=False)


def _existing(store: MetadataStore, tx: Transaction, webhook_id: str) -> Webhook:
    return found(store.webhook_record(tx, webhook_id), "webhook", webhook_id)


def next_status(current: str, requested: str) -> str:
    """Clients disable webhooks, or (re-)enable them with `created`; the service starts them and puts them
    in error."""
    if requested == "disabled":
        if current == "error":
            raise BadRequest("a webhook in error cannot be disabled: re-enable it with status 'created', or delete it")
        return "disabled"
    return current if current in ("created", "started") else "created"


def replaced(stored: Webhook, update: Webhook) -> Webhook:
    """The stored webhook changed as a PUT asks: configuration replaced, status moved by the rules, the API key
    value kept when the PUT leaves it out (clients cannot read it back) and names the same header."""
    status = next_status(stored.status, update.status)
    api_key_value = update.api_key_value
    if api_key_value is None and update.api_key_name == stored.api_key_name:
        api_key_value = stored.api_key_value
    return Webhook(
        id=stored.id,
        url=update.url,
        events=update.events,
        status=status,
        api_key_name=update.api_key_name,
        api_key_value=api_key_value,
        options=update.options,
        tags=update.tags,
        error=stored.error if status == "error" else None,
        owner=stored.owner,
        cursor=stored.cursor,
    )
