"""The worker's lease in the SQLite store: one worker at a time does the background work."""

from __future__ import annotations

import time

from .connection import SqliteConnections


class LeasesMixin(SqliteConnections):
    """Named leases with an expiry."""

    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease is current."""
        stamp = time.time_ns()
        with self._write() as db:
            row = db.execute("SELECT holder, expires_ns FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > stamp:
                return False
            db.execute(
                "INSERT OR REPLACE INTO leases (name, holder, expires_ns) VALUES (?, ?, ?)",
                (name, holder, stamp + int(seconds * 1_000_000_000)),
            )
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
