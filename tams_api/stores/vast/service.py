"""The service's stored name and description (service info), and profiles."""

from __future__ import annotations

from ...model import Page, Profile, ProfileQuery, ServiceInfo
from ..shared import profile_document, profile_from_row
from .rows import _all, _delete, _insert, _page, _select
from .session import Transactions, _guard, _retried_on_conflict, _Tx


class ServiceMixin(Transactions):
    """The service info and profiles."""

    def get_service_info(self, defaults: ServiceInfo) -> ServiceInfo:
        with self._read() as t:
            stored = {row["key"]: row["value"] for row in _select(t["service_info"])}
        return ServiceInfo(
            name=stored.get("name", defaults.name), description=stored.get("description", defaults.description)
        )

    @_retried_on_conflict
    def update_service_info(self, name: str | None, description: str | None) -> None:
        with self._write() as t:
            _guard(t, "service info")
            table = t["service_info"]
            for key, value in (("name", name), ("description", description)):
                if value is not None:
                    _delete(table, _select(table, table["key"] == key, ["key"], row_ids=True))
                    _insert(table, "service_info", [{"key": key, "value": value}])

    # -- profiles ---------------------------------------------------------------------------------------------

    @staticmethod
    def profile_record(t: _Tx, profile_id: str) -> Profile | None:
        table = t["profiles"]
        rows = _select(table, table["id"] == profile_id, ["id", "created", "document"])
        return profile_from_row((rows[0]["id"], rows[0]["created"], rows[0]["document"])) if rows else None

    def list_profiles(self, query: ProfileQuery) -> Page[Profile]:
        with self._read() as t:
            table = t["profiles"]
            conditions = [
                table[column] == getattr(query, column)
                for column in ("format", "codec", "label")
                if getattr(query, column) is not None
            ]
            rows = _select(table, _all(*conditions), ["id", "created", "document"])
        items, next_key = _page(rows, lambda row: (row["id"],), False, query.page)
        profiles = [profile_from_row((row["id"], row["created"], row["document"])) for row in items]
        return Page(profiles, next_key, query.page.limit)

    @staticmethod
    def insert_profile(t: _Tx, profile: Profile) -> None:
        _guard(t, f"profile {profile.id}")  # two replicas inserting one id: the second conflicts and looks again
        metadata = profile.flow_metadata
        row = {
            "id": profile.id,
            "format": metadata.get("format"),
            "codec": metadata.get("codec"),
            "label": profile.details.get("label"),
            "created": profile.created,
            "document": profile_document(profile),
        }
        _insert(t["profiles"], "profiles", [row])
