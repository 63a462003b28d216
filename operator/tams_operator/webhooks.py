"""TamsWebhook: a webhook of a store's TAMS API, managed as a Kubernetes object.

The webhook is registered (POST) or replaced (PUT) when the spec changes, found again by a tag carrying the
object's uid if the operator died between registering and recording it, watched for the service's status
(started, error), registered again if someone deleted it through the API, and deleted with the object.
"""

from __future__ import annotations

from typing import Any

import kopf

from .conditions import ConditionType, Reason
from .kube import KubeApi, Manifest
from .provisioning import NotReady
from .status import Finding, write_status
from .stores import context
from .tams import TamsApi, problem, store_api
from .tamsstore import GROUP, VERSION

TAMS_WEBHOOKS = (GROUP, VERSION, "tamswebhooks")
UID_TAG = "tams-operator.io/uid"
OPTIONS = {  # spec field -> TAMS webhook field
    "flowIds": "flow_ids",
    "sourceIds": "source_ids",
    "flowCollectedByIds": "flow_collected_by_ids",
    "sourceCollectedByIds": "source_collected_by_ids",
    "acceptGetUrls": "accept_get_urls",
    "acceptStorageIds": "accept_storage_ids",
    "presigned": "presigned",
    "verboseStorage": "verbose_storage",
    "includeObjectTimerange": "include_object_timerange",
}


class Refused(Exception):
    """The TAMS API refused the webhook as specified (4xx): only a change of the spec helps."""


def webhook_body(spec: dict[str, Any], uid: str, api_key_value: str | None) -> dict[str, Any]:
    """The TAMS webhook a TamsWebhook spec describes."""
    body: dict[str, Any] = {
        "url": spec["url"],
        "events": spec["events"],
        "status": "created" if spec.get("enabled", True) else "disabled",
        "tags": {UID_TAG: uid},
    }
    body |= {field: spec[name] for name, field in OPTIONS.items() if name in spec}
    if "apiKey" in spec:
        body |= {"api_key_name": spec["apiKey"]["headerName"], "api_key_value": api_key_value}
    return body


async def api_key_value(api: KubeApi, namespace: str, spec: dict[str, Any]) -> str | None:
    if "apiKey" not in spec:
        return None
    ref = spec["apiKey"]["secretRef"]
    data = await api.secret_data(namespace, ref["name"])
    if data is None or ref["key"] not in data:
        missing = f"Secret {ref['name']!r}" if data is None else f"key {ref['key']!r} of Secret {ref['name']!r}"
        raise NotReady(
            Reason.SECRET_NOT_FOUND, f"{missing} not found in namespace {namespace!r} (spec.apiKey.secretRef)"
        )
    return data[ref["key"]]


async def registered_id(tams: TamsApi, uid: str) -> str | None:
    """The webhook registered for this object before, if any."""
    response = await tams.request("GET", "/service/webhooks", params={f"tag.{UID_TAG}": uid})
    found = response.json() if response.status_code == 200 else []
    return found[0]["id"] if found else None


async def register(tams: TamsApi, webhook_id: str | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """PUT over the known webhook, POST when there is none (or it was deleted behind the operator's back)."""
    if webhook_id is not None:
        response = await tams.request("PUT", f"/service/webhooks/{webhook_id}", json={"id": webhook_id, **wanted})
        if response.status_code != 404:
            return checked(response)
    return checked(await tams.request("POST", "/service/webhooks", json=wanted))


def checked(response: Any) -> dict[str, Any]:
    if response.status_code >= 400:
        raise Refused(f"the TAMS API refused the webhook: {problem(response)}")
    return response.json()


def observed(webhook: dict[str, Any]) -> tuple[list[Finding], dict[str, Any]]:
    state = webhook["status"]
    fields = {"webhookId": webhook["id"], "tamsStatus": state, "error": (webhook.get("error") or {}).get("summary")}
    if state == "error":
        return [
            Finding(
                ConditionType.READY, False, Reason.WEBHOOK_ERROR, fields["error"] or "the TAMS API gave up delivering"
            )
        ], fields
    return [Finding(ConditionType.READY, True, Reason.REGISTERED, f"webhook {webhook['id']} is {state}")], fields


async def sync(memo: kopf.Memo, body: Manifest) -> None:
    api, config = context(memo)
    namespace, spec = body["metadata"]["namespace"], body["spec"]
    status = body.get("status") or {}
    try:
        key = await api_key_value(api, namespace, spec)
        async with store_api(api, config, namespace, spec["storeRef"]["name"]) as tams:
            webhook_id = status.get("webhookId") or await registered_id(tams, body["metadata"]["uid"])
            webhook = await register(tams, webhook_id, webhook_body(spec, body["metadata"]["uid"], key))
    except (NotReady, Refused) as failure:
        reason = failure.reason if isinstance(failure, NotReady) else Reason.REFUSED
        await write_status(api, body, [Finding(ConditionType.READY, False, reason, str(failure))], {})
        raise
    findings, fields = observed(webhook)
    await write_status(api, body, findings, {**fields, "observedGeneration": body["metadata"].get("generation")})


@kopf.on.create(*TAMS_WEBHOOKS)
@kopf.on.update(*TAMS_WEBHOOKS)
@kopf.on.resume(*TAMS_WEBHOOKS)
async def reconcile(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    status = body.get("status") or {}
    if status.get("webhookId") and status.get("observedGeneration") == body.metadata.get("generation"):
        return  # registered as specified; re-registering on a restart would re-enable a webhook in error
    try:
        await sync(memo, dict(body))
    except Refused as refused:
        raise kopf.PermanentError(str(refused)) from None
    except NotReady as problem:
        raise kopf.TemporaryError(str(problem), delay=memo["config"].retry_delay(retry)) from None


# A daemon is stopped when its object is being deleted, while the deletion handler runs: the backoff lets it end
# its look (and see that it was stopped) rather than be cancelled halfway through a registration.
@kopf.daemon(*TAMS_WEBHOOKS, cancellation_backoff=5, cancellation_timeout=5)
async def watch_status(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The service's view (created → started, or error) into status; a webhook deleted through the API is
    registered again; a store that cannot be reached makes the object not Ready until it can."""
    api, config = context(memo)
    while not await stopped.wait(config.poll_interval):
        status = body.get("status") or {}
        if not status.get("webhookId"):
            continue  # not registered (yet): the change handlers are at it
        try:
            async with store_api(api, config, body.metadata.namespace or "", body.spec["storeRef"]["name"]) as tams:
                response = await tams.request("GET", f"/service/webhooks/{status['webhookId']}")
            if response.status_code == 404:
                if not stopped:  # else it was deleted for the object's own deletion
                    await sync(memo, dict(body))
                continue
            findings, fields = observed(checked(response))
            await write_status(api, dict(body), findings, fields)
        except NotReady as problem:
            await write_status(api, dict(body), [Finding(ConditionType.READY, False, problem.reason, str(problem))], {})
        except Refused:
            continue  # recorded by sync; only a change of the spec helps


@kopf.on.delete(*TAMS_WEBHOOKS)
async def unregister(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    api, config = context(memo)
    try:
        async with store_api(api, config, body.metadata.namespace or "", body.spec["storeRef"]["name"]) as tams:
            # Found by its tag when the operator registered it but died before recording the id.
            webhook_id = (body.get("status") or {}).get("webhookId") or await registered_id(tams, body.metadata.uid)
            if webhook_id:
                await tams.request("DELETE", f"/service/webhooks/{webhook_id}")
    except NotReady as problem:
        if problem.reason == Reason.STORE_NOT_FOUND or retry >= 4:
            return  # the store is gone, and its webhooks with it; or it stays unreachable: let the object go
        raise kopf.TemporaryError(str(problem), delay=config.retry_delay(retry)) from None
