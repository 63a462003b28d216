"""The service's wall clock, and instants as the API shows them (RFC 3339, UTC) and as stores sort them (ns).

What expires (media URLs, allocations, retention) reads the time here, so that a test moves a clock of its own
(`use`) instead of waiting for the system's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

_time_ns: Callable[[], int] = time.time_ns


@dataclass(frozen=True, slots=True)
class Instant:
    text: str
    ns: int


def time_ns() -> int:
    """Nanoseconds since the epoch by the clock in use."""
    return _time_ns()


def seconds() -> float:
    """Seconds since the epoch by the clock in use."""
    return _time_ns() / 1e9


@contextmanager
def use(clock: Callable[[], int]) -> Iterator[None]:
    """Read the time from `clock` (nanoseconds since the epoch) inside the block, in every thread."""
    global _time_ns
    previous, _time_ns = _time_ns, clock
    try:
        yield
    finally:
        _time_ns = previous


def instant_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> Instant:
    ns = time_ns()
    return Instant(instant_text(ns), ns)


def instant_ns(text: str) -> int:
    """An instant the API showed (instant_text), back in nanoseconds since the epoch (to the microsecond)."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000
