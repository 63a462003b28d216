"""TamsDeletionRequest: deleting a flow's segments (or the flow) as a Kubernetes object, with its progress in
status. Small deletions finish at once (204); large ones become the API's flow delete requests (202), whose
progress is followed until done or error. The spec is immutable (CEL), so each object is one deletion.
"""

from __future__ import annotations

from typing import Any

import kopf

from .conditions import ConditionType, Reason
from .config import OperatorSettings
from .kube import KubeApi, Manifest
from .provisioning import NotReady
from .status import Finding, write_status
from .stores import context
from .tams import TamsApi, problem, store_api
from .tamsstore import GROUP, VERSION

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


async def follow(tams: TamsApi, request_id: str) -> dict[str, Any]:
    """Status fields of the flow delete request now."""
    response = await tams.request("GET", f"/flow-delete-requests/{request_id}")
    if response.status_code == 404:
        # Finished requests are forgotten after TAMS_DELETE_REQUEST_RETENTION (a day by default): the operator was
        # away longer than that, or the store lost it. Done or failed, nobody saw: say so rather than guess.
        unknown = f"flow delete request {request_id} is no longer known to the TAMS API: its outcome was not seen"
        return {"state": "error", "error": unknown}
    if response.status_code != 200:
        raise NotReady(Reason.TAMS_ERROR, f"following flow delete request {request_id}: {problem(response)}")
    return progress(response.json())


def findings(fields: dict[str, Any]) -> list[Finding]:
    """Complete and Failed, with reasons in the Kubernetes style and, for a failure, the API's words."""
    state = fields["state"]
    if state == "error":
        reason, message = Reason.FAILED, fields["error"]
    elif state == "done":
        reason, message = Reason.DONE, "the segments are deleted"
    else:
        request = f"flow delete request {fields['requestId']}"
        reason, message = Reason.IN_PROGRESS, f"{request} is {state}, {fields['timerangeRemaining']} remaining"
    return [
        Finding(ConditionType.COMPLETE, state == "done", reason, message),
        Finding(ConditionType.FAILED, state == "error", reason, message),
    ]


async def advance(api: KubeApi, config: OperatorSettings, body: Manifest, status: dict[str, Any]) -> dict[str, Any]:
    """One step from `status`: request the deletion, or look at its progress; the status fields it leads to,
    recorded."""
    spec = body["spec"]
    async with store_api(api, config, body["metadata"]["namespace"], spec["storeRef"]["name"]) as tams:
        if status.get("requestId"):
            fields = await follow(tams, status["requestId"])
        else:
            fields = await request_deletion(tams, spec)
    await write_status(api, body, findings(fields), {**fields, "observedGeneration": body["metadata"]["generation"]})
    return fields


# The backoff lets a step under way finish (a deletion requested, its request id recorded) when the object goes.
@kopf.daemon(*TAMS_DELETION_REQUESTS, cancellation_backoff=5, cancellation_timeout=5)
async def carry_out(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Request, then follow, until the deletion is done or failed; a store not reachable yet is waited for."""
    api, config = context(memo)
    # What was recorded, kept here too: the watch may not have brought the last write back into `body` yet, and
    # a deletion requested twice would be two requests.
    status = dict(body.get("status") or {})
    retry = 0
    while not stopped and status.get("state") not in FINISHED:
        try:
            status |= await advance(api, config, dict(body), status)
            retry, delay = 0, config.poll_interval
        except NotReady as problem:
            await write_status(
                api, dict(body), [Finding(ConditionType.COMPLETE, False, problem.reason, str(problem))], {}
            )
            retry, delay = retry + 1, config.retry_delay(retry)
        await stopped.wait(delay)
