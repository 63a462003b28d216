"""The worker's lease in the SQL store: one worker at a time does the background work."""

from __future__ import annotations

import time

from .connection import SqlConnections


class LeasesMixin(SqlConnections):
    """Named leases with an expiry."""

    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease is current."""
        stamp = time.time_ns()
        # One statement: whoever writes first takes an expired lease, whatever the isolation level.
        taken = self.write(
            lambda db: db.execute(
                "INSERT INTO leases (name, holder, expires_ns) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET holder = excluded.holder, expires_ns = excluded.expires_ns "
                "WHERE leases.holder = excluded.holder OR leases.expires_ns <= ? RETURNING holder",
                (name, holder, stamp + int(seconds * 1_000_000_000), stamp),
            ).fetchall()
        )
        return bool(taken)

    def release_lease(self, name: str, holder: str) -> None:
        self.write(lambda db: db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)))
