"""Writing a resource's status: conditions and fields together, an event for every condition that moved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from .conditions import condition, set_condition
from .kube import KubeApi, Manifest


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition to set (`ok` None: Unknown)."""

    type: str
    ok: bool | None
    reason: str
    message: str


async def write_status(
    api: KubeApi,
    body: Manifest,
    findings: list[Finding],
    fields: dict[str, Any],
    derived: Callable[[dict[str, Any]], Finding] | None = None,
) -> None:
    """Set `findings`, then the condition `derived` computes from the resulting status, and `fields` (None: the
    field goes)."""
    generation = body["metadata"].get("generation")
    moved: list[Finding] = []

    def change(current: Manifest, status: dict[str, Any]) -> None:
        moved.clear()
        for finding in findings:
            _note(status, finding, generation, moved)
        if derived is not None:
            _note(status, derived(status), generation, moved)
        # A None that stays in `status` is sent as null, which removes the field; one for a field that is not
        # there would make every write look like a change.
        status.update({name: value for name, value in fields.items() if value is not None or name in status})

    await api.update_status(body, change)
    for finding in moved:
        (kopf.info if finding.ok is not False else kopf.warn)(body, reason=finding.reason, message=finding.message)


def _note(status: dict[str, Any], finding: Finding, generation: int | None, moved: list[Finding]) -> None:
    before = condition(status, finding.type)
    set_condition(status, finding.type, finding.ok, finding.reason, finding.message, generation)
    after = condition(status, finding.type) or {}
    if before is None or (before["status"], before.get("reason")) != (after["status"], after["reason"]):
        moved.append(finding)
