"""TamsDeletionRequest: deleting a flow's segments (or the flow) as a Kubernetes object, with its progress in
status. Small deletions finish at once (204); large ones become the API's flow delete requests (202), whose
progress is followed until done or error. The spec is immutable (CEL), so each object is one deletion.
"""

from __future__ import annotations

from typing import Any

import kopf

from .kube import KubeApi, Manifest
from .provisioning import NotReady
from .status import Finding, write_status
from .stores import GROUP, VERSION, context
from .tams import TamsApi, problem, store_api

TAMS_DELETION_REQUESTS = (GROUP, VERSION, "tamsdeletionrequests")
FINISHED = ("done", "error")


async def request_deletion(tams: TamsApi, spec: dict[str, Any]) -> dict[str, Any]:
    """Ask the API to delete; the status fields that follow from its answer."""
    flow = spec["flowId"]
    if spec.get("deleteFlow"):
        response = await tams.request("DELETE", f"/flows/{flow}")
    else:
        response = await tams.request("DELETE", f"/flows/{flow}/segments", params={"timerange": spec["timerange"]})
    if response.status_code == 204:
        return {"state": "done", "timerangeRemaining": "()"}
    if response.status_code == 202:
        return progress(response.json())
    return {"state": "error", "error": f"the TAMS API refused the deletion: {problem(response)}"}


def progress(request: dict[str, Any]) -> dict[str, Any]:
    """Status fields of a TAMS flow delete request."""
    fields = {"requestId": request["id"], "state": request["status"]}
    fields["timerangeRemaining"] = request.get("timerange_remaining", "()")
    if request.get("error"):
        fields["error"] = request["error"].get("summary")
    return fields


def findings(fields: dict[str, Any]) -> list[Finding]:
    state = fields.get("state")
    complete = Finding("Complete", state == "done", state or "Pending", f"deletion is {state}")
    failed = Finding("Failed", state == "error", state or "Pending", fields.get("error") or f"deletion is {state}")
    return [complete, failed]


async def advance(api: KubeApi, memo: kopf.Memo, body: Manifest) -> bool:
    """One step: request the deletion, or look at its progress. True once it is finished."""
    config = memo["config"]
    status = body.get("status") or {}
    if status.get("state") in FINISHED:
        return True
    namespace, spec = body["metadata"]["namespace"], body["spec"]
    async with store_api(api, config, namespace, spec["storeRef"]["name"]) as tams:
        if status.get("requestId"):
            response = await tams.request("GET", f"/flow-delete-requests/{status['requestId']}")
            # Gone from the API's list: it finished and expired long ago.
            fields = {"state": "done"} if response.status_code == 404 else progress(response.json())
        else:
            fields = await request_deletion(tams, spec)
    await write_status(api, body, findings(fields), {**fields, "observedGeneration": body["metadata"]["generation"]})
    return fields["state"] in FINISHED


@kopf.daemon(*TAMS_DELETION_REQUESTS, cancellation_timeout=5)
async def carry_out(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Request, then follow, until the deletion is done or failed; a store not reachable yet is waited for."""
    api, config = context(memo)
    retry = 0
    while not stopped:
        try:
            if await advance(api, memo, dict(body)):
                return
            retry, delay = 0, config.poll_interval
        except NotReady as problem:
            await write_status(api, dict(body), [Finding("Complete", False, problem.reason, str(problem))], {})
            retry, delay = retry + 1, config.retry_delay(retry)
        await stopped.wait(delay)
