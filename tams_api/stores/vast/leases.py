"""The worker's lease: one holder at a time of a named lease."""

from __future__ import annotations

import time
from typing import Any

from .rows import _delete, _insert, _select
from .session import Transactions, _guard, _retried_on_conflict, _Tx


class LeasesMixin(Transactions):
    """Named leases with an expiry."""

    @staticmethod
    def _lease_rows(t: _Tx, name: str) -> list[dict[str, Any]]:
        leases = t["leases"]
        return _select(leases, leases["name"] == name, row_ids=True)

    @_retried_on_conflict
    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease is current."""
        stamp = time.time_ns()
        with self._write() as t:
            _guard(t, f"lease {name}")
            rows = self._lease_rows(t, name)
            if any(row["holder"] != holder and row["expires_ns"] > stamp for row in rows):
                return False
            _delete(t["leases"], rows)
            _insert(t["leases"], "leases", [{"name": name, "holder": holder, "expires_ns": stamp + int(seconds * 1e9)}])
            return True

    @_retried_on_conflict
    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as t:
            _delete(t["leases"], [row for row in self._lease_rows(t, name) if row["holder"] == holder])
