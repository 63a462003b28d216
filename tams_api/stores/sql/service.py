"""The SQL store's service information and flow profiles."""

from __future__ import annotations

from ...model import Page, Profile, ProfileQuery, ServiceInfo
from ...paging import decode_key, encode_key
from ..shared import profile_document, profile_from_row
from .connection import Db, SqlConnections


class ServiceMixin(SqlConnections):
    """The service's name and description; flow profiles."""

    def get_service_info(self, defaults: ServiceInfo) -> ServiceInfo:
        with self._read() as db:
            stored = dict(db.execute("SELECT key, value FROM service_info").fetchall())
        return ServiceInfo(
            name=stored.get("name", defaults.name), description=stored.get("description", defaults.description)
        )

    def update_service_info(self, name: str | None, description: str | None) -> None:
        given = [(key, value) for key, value in (("name", name), ("description", description)) if value is not None]
        self.write(
            lambda db: db.executemany(
                "INSERT INTO service_info (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                given,
            )
        )

    @staticmethod
    def profile_record(db: Db, profile_id: str) -> Profile | None:
        row = db.execute("SELECT id, created, document FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        return profile_from_row(row) if row else None

    def list_profiles(self, query: ProfileQuery) -> Page[Profile]:
        conditions, params = [], []
        for column in ("format", "codec", "label"):
            value = getattr(query, column)
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if query.page.key is not None:
            conditions.append("id > ?")
            params.append(decode_key(query.page.key, 1, ("",))[0])
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._query(
            f"SELECT id, created, document FROM profiles {where} ORDER BY id LIMIT ?",
            (*params, query.page.limit + 1),
        )
        next_key = encode_key([rows[query.page.limit - 1][0]]) if len(rows) > query.page.limit else None
        return Page([profile_from_row(row) for row in rows[: query.page.limit]], next_key, query.page.limit)

    @staticmethod
    def insert_profile(db: Db, profile: Profile) -> None:
        metadata = profile.flow_metadata
        db.execute(
            "INSERT INTO profiles (id, format, codec, label, created, document) VALUES (?, ?, ?, ?, ?, ?)",
            (
                profile.id,
                metadata.get("format"),
                metadata.get("codec"),
                profile.details.get("label"),
                profile.created,
                profile_document(profile),
            ),
        )
