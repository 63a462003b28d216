"""Status conditions, the Kubernetes way: one entry per type, lastTransitionTime moves only when the status does."""

from __future__ import annotations

import datetime
from typing import Any

Condition = dict[str, Any]


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> float:
    """Seconds since the epoch of a condition's lastTransitionTime."""
    return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.UTC).timestamp()


def set_condition(
    status: dict[str, Any], type_: str, ok: bool | None, reason: str, message: str, generation: int | None
) -> None:
    """Set one condition in `status` (True, False, or Unknown when `ok` is None)."""
    value = "Unknown" if ok is None else str(ok)
    conditions = [dict(condition) for condition in status.get("conditions") or []]
    previous = next((condition for condition in conditions if condition["type"] == type_), None)
    condition = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        condition["observedGeneration"] = generation
    moved = previous is None or previous.get("status") != value
    condition["lastTransitionTime"] = now() if moved else previous.get("lastTransitionTime", now())
    status["conditions"] = [c for c in conditions if c["type"] != type_] + [condition]
    status["conditions"].sort(key=lambda c: c["type"])


def condition(status: dict[str, Any], type_: str) -> Condition | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def is_true(status: dict[str, Any], type_: str, generation: int | None = None) -> bool:
    """The condition holds (for `generation`, when given)."""
    found = condition(status, type_)
    if found is None or found["status"] != "True":
        return False
    return generation is None or found.get("observedGeneration") == generation
