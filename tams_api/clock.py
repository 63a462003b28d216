"""Wall-clock instants as the API shows them (RFC 3339, UTC) and as stores sort them (ns)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Instant:
    text: str
    ns: int


def instant_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> Instant:
    ns = time.time_ns()
    return Instant(instant_text(ns), ns)
