"""Readiness: whether this replica can serve, i.e. its metadata store and default media store answer.

Kubernetes asks every few seconds on every replica, and a store that does not answer may take seconds to
say so: one check runs at a time, and its answer is reused for `CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

CACHE_SECONDS = 2.0


class Readiness:
    def __init__(self, probes: Mapping[str, Callable[[], None]], cache_seconds: float = CACHE_SECONDS) -> None:
        """`probes`: what each checks (e.g. "metadata store") -> a call that raises when it cannot be reached."""
        self.probes = probes
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._problems: list[str] = []
        self._checked = -cache_seconds

    def problems(self) -> list[str]:
        """What is unreachable and why, e.g. ["metadata store: ConnectionError: ..."]; empty when ready."""
        with self._lock:  # callers arriving during a check wait for it and share its answer
            if time.monotonic() - self._checked >= self.cache_seconds:
                self._problems = self._check()
                self._checked = time.monotonic()
            return self._problems

    def _check(self) -> list[str]:
        problems = []
        for what, probe in self.probes.items():
            try:
                probe()
            except Exception as error:
                problems.append(f"{what}: {error.__class__.__name__}: {error}".rstrip(": "))
        return problems
