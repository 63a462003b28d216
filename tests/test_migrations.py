"""Versioned schemas: a store made by an earlier release is migrated in place at start (or by `tams-api migrate`)
and keeps every record; a store newer than this release is refused in one line naming the setting.

Old SQLite databases are built from the old schemas (tests/old_schemas/, recovered from git) holding the rows of
the `content` this release writes, column by column. Old VAST stores are this release's content with the old
tables' shape made through the SDK (the fake): there has been one VAST change of shape so far (objects.storage_id,
before several storage backends) and none since, so a synthetic next version shows that a column is added by the
same machinery.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import vastdb
from fastapi.testclient import TestClient

from endpoints import READS, Content
from helpers import VAST_SETTINGS, make_settings, new_fake_vast
from tams_api.__main__ import main
from tams_api.app import create_app
from tams_api.config import MediaBackendSpec, Settings
from tams_api.errors import ConfigurationError
from tams_api.model import ServiceInfo
from tams_api.provision import provision_vast
from tams_api.stores.migrations import Migration
from tams_api.stores.sqlite import SqliteMetadataStore
from tams_api.stores.sqlite.schema import SCHEMA_VERSION
from tams_api.stores.vast import schema as vast_schema
from tams_api.stores.vast.schema import TABLES
from tams_api.stores.vast.store import VastMetadataStore
from vast_fake import FakeVast

OLD_SCHEMAS = Path(__file__).parent / "old_schemas"
# Databases of old releases: their schema file and the version they record. Before versions were recorded
# (user_version 0) main had the version-1 schema, and for two merges (7fa2873, 1b0dfde) already version 2's.
OLD_SQLITE = {
    "v1-unrecorded": ("sqlite_v1.sql", 0),
    "v2-unrecorded": ("sqlite_v2.sql", 0),
    "v2": ("sqlite_v2.sql", 2),
}
OLD_COLUMNS = {("objects", "storage_id"): "storage_ids"}  # old name -> this release's


def answers(client: TestClient, content: Content) -> dict[str, Any]:
    """Every read of the spec's endpoints on the content, without the expiring signatures of media URLs."""
    return {call.id: answer(call.send(client, content)) for call in READS}


def answer(response: httpx.Response) -> tuple[int, Any, str | None]:
    def unsigned(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: unsigned(item) for key, item in value.items()}
        if isinstance(value, list):
            return [unsigned(item) for item in value]
        return value.split("?")[0] if isinstance(value, str) and value.startswith("http") else value

    body = unsigned(response.json()) if response.content else None
    return response.status_code, body, response.headers.get("link")


def read_everything(settings: Settings, content: Content) -> dict[str, Any]:
    with TestClient(create_app(settings)) as client:
        return answers(client, content)


# -- SQLite ----------------------------------------------------------------------------------------------------


def old_database(current: Path, old: Path, release: str) -> None:
    """A database of an old `release` (OLD_SQLITE) holding the rows of `current` (a database of this release), each
    column under its old name."""
    schema, version = OLD_SQLITE[release]
    db = sqlite3.connect(old)
    db.execute("PRAGMA journal_mode=WAL")  # as every release made its databases
    db.executescript((OLD_SCHEMAS / schema).read_text())
    db.execute("ATTACH DATABASE ? AS current", (str(current),))
    tables = db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    for (table,) in tables.fetchall():
        columns = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]
        sources = [OLD_COLUMNS.get((table, column), column) for column in columns]
        db.execute(f"INSERT INTO main.{table} ({', '.join(columns)}) SELECT {', '.join(sources)} FROM current.{table}")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


@pytest.fixture
def template(content_template: tuple[Path, Content], tmp_path: Path) -> tuple[Path, Content]:
    """A copy of the content's data directory (database, media, signing key), as this release wrote it."""
    template_dir, content = content_template
    return Path(shutil.copytree(template_dir, tmp_path / "current")), content


def with_old_database(template_dir: Path, target: Path, release: str) -> Path:
    """A copy of the data directory whose database is of an old `release` (OLD_SQLITE)."""
    shutil.copytree(template_dir, target)
    for leftover in target.glob("tams.sqlite*"):
        leftover.unlink()
    old_database(template_dir / "tams.sqlite", target / "tams.sqlite", release)
    return target


def user_version(path: Path) -> int:
    return sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]


@pytest.mark.parametrize("release", list(OLD_SQLITE))
def test_a_database_of_an_earlier_version_keeps_every_record(
    template: tuple[Path, Content], tmp_path: Path, release: str
) -> None:
    current_dir, content = template
    old_dir = with_old_database(current_dir, tmp_path / "old", release)
    expected = read_everything(make_settings(current_dir), content)
    assert read_everything(make_settings(old_dir), content) == expected
    assert user_version(old_dir / "tams.sqlite") == SCHEMA_VERSION


def test_what_the_migrations_changed_works(template: tuple[Path, Content], tmp_path: Path) -> None:
    """On a database from before schema versions: objects on several backends (storage_ids, a released_objects row
    per backend) and soft delete (deleted_flows)."""
    current_dir, content = template
    old_dir = with_old_database(current_dir, tmp_path / "old", "v1-unrecorded")
    archive = MediaBackendSpec(label="archive", backend="filesystem", media_dir=tmp_path / "archive")

    def archive_files() -> list[Path]:
        return [path for path in archive.media_dir.rglob("*") if path.is_file()]

    settings = make_settings(old_dir, extra_storage_backends=[archive], soft_delete=True)
    with TestClient(create_app(settings)) as client:
        instances = f"/objects/{content.object_id}/instances"
        assert client.post(instances, json={"storage_id": archive.storage_id}).status_code == 201
        stored = client.get(f"/objects/{content.object_id}", params={"verbose_storage": "true"}).json()
        assert sorted(url["storage_id"] for url in stored["get_urls"]) == sorted(
            [archive.storage_id, settings.media_backends[0].storage_id]
        )
        assert archive_files() != []
        # Queued in released_objects (a row per object and backend) and deleted from that backend after the commit.
        assert client.delete(instances, params={"storage_id": archive.storage_id}).status_code == 204
        assert archive_files() == []

        assert client.delete(f"/flows/{content.member_flow_id}").status_code == 204
        assert [flow["flow_id"] for flow in client.get("/x-tams/deleted-flows").json()] == [content.member_flow_id]
        assert client.post(f"/x-tams/flows/{content.member_flow_id}/restore").status_code == 204
        assert client.get(f"/flows/{content.member_flow_id}").status_code == 200


def shape(path: Path) -> dict[str, Any]:
    """A database's tables (columns, keys, WITHOUT ROWID) and indexes, whatever the text they were created with."""
    db = sqlite3.connect(path)
    tables = {row[1]: row[4] for row in db.execute("PRAGMA main.table_list") if not row[1].startswith("sqlite_")}
    columns = {table: db.execute(f"PRAGMA table_xinfo({table})").fetchall() for table in tables}
    indexes = db.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    return {
        "tables": tables,
        "columns": columns,
        "indexes": {name: (table, " ".join(sql.split())) for name, table, sql in indexes},
    }


@pytest.mark.parametrize("release", list(OLD_SQLITE))
def test_migrating_gives_the_schema_a_new_database_has(tmp_path: Path, release: str) -> None:
    (tmp_path / "old").mkdir()
    SqliteMetadataStore(tmp_path / "new.sqlite").close()
    old_database(tmp_path / "new.sqlite", tmp_path / "old" / "tams.sqlite", release)
    SqliteMetadataStore(tmp_path / "old" / "tams.sqlite").close()
    assert shape(tmp_path / "old" / "tams.sqlite") == shape(tmp_path / "new.sqlite")


def test_a_new_database_is_created_at_the_latest_version_and_opens_again(tmp_path: Path) -> None:
    path = tmp_path / "tams.sqlite"
    assert str(SqliteMetadataStore(path).schema_upgrade) == f"SQLite {path}: created at schema version {SCHEMA_VERSION}"
    assert user_version(path) == SCHEMA_VERSION
    assert str(SqliteMetadataStore(path).schema_upgrade).endswith(f"already at schema version {SCHEMA_VERSION}")


def test_a_newer_database_is_refused_in_one_line_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "tams.sqlite"
    SqliteMetadataStore(path).close()
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(ConfigurationError) as error:
        SqliteMetadataStore(path)
    message = str(error.value)
    assert message.startswith(f"TAMS_SQLITE_PATH: SQLite {path} has schema version {SCHEMA_VERSION + 1}, newer")
    assert "\n" not in message
    assert user_version(path) == SCHEMA_VERSION + 1, "left as it was"


def test_a_failed_migration_is_rolled_back_and_named_in_one_line(tmp_path: Path) -> None:
    """A database from the project's first hours lacks tables of version 1 (here: released_objects): migrating it
    to version 2 fails whole, after version 1 was recorded in a transaction of its own."""
    path = tmp_path / "tams.sqlite"
    day_one = sqlite3.connect(path)
    day_one.execute("CREATE TABLE objects (id TEXT PRIMARY KEY, storage_id TEXT) WITHOUT ROWID")
    day_one.close()
    with pytest.raises(ConfigurationError) as error:
        SqliteMetadataStore(path)
    message = str(error.value)
    assert message.startswith(f"TAMS_SQLITE_PATH: SQLite {path}: migrating to schema version 2 (objects on several")
    assert message.endswith("failed and was rolled back: no such table: released_objects") and "\n" not in message
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(objects)")]
    assert (columns, user_version(path)) == (["id", "storage_id"], 1)


def concurrently(count: int, start: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(count) as pool:
        return [started.result() for started in [pool.submit(start) for _ in range(count)]]


def test_concurrent_starts_apply_each_migration_once(template: tuple[Path, Content], tmp_path: Path) -> None:
    """Each migration is a transaction that reads the version first: starts at once share the steps (applying one
    twice would fail: its column is renamed already) and all end at the latest version."""
    old_dir = with_old_database(template[0], tmp_path / "old", "v1-unrecorded")
    stores = concurrently(4, lambda: SqliteMetadataStore(old_dir / "tams.sqlite"))
    assert {store.schema_upgrade.after for store in stores} == {SCHEMA_VERSION}
    assert min(store.schema_upgrade.before for store in stores) == 0
    for store in stores:
        store.close()


def test_the_cli_migrates_and_says_from_which_version(
    template: tuple[Path, Content], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    old_dir = with_old_database(template[0], tmp_path / "old", "v2")
    monkeypatch.setenv("TAMS_DATA_DIR", str(old_dir))
    main(["migrate"])
    main(["migrate"])
    path = old_dir / "tams.sqlite"
    assert capsys.readouterr().out.splitlines() == [
        f"tams-api: SQLite {path}: migrated from schema version 2 to {SCHEMA_VERSION}",
        f"tams-api: SQLite {path}: already at schema version {SCHEMA_VERSION}",
    ]
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SystemExit) as exit_:
        main(["migrate"])
    assert str(exit_.value).startswith(f"tams-api: bad configuration: TAMS_SQLITE_PATH: SQLite {path} has schema")


# -- VAST ------------------------------------------------------------------------------------------------------

VAST = {"endpoint": "http://vast.test", "access_key": "vast-access", "secret_key": "vast-secret", "bucket": "tams"}


def vast_store() -> VastMetadataStore:
    return VastMetadataStore(**VAST)


def changing(fake: FakeVast) -> Any:
    """A transaction on the fake cluster and the store's schema in it."""
    return fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test").transaction()


def version_less(fake: FakeVast, before_storage_backends: bool) -> None:
    """The store as a release from before schema versions left it: today's tables without `schema_version`, or, from
    before several storage backends (git show d368a73:tams_api/stores/vast.py), objects.storage_id and neither
    write guards nor soft delete."""
    with changing(fake) as tx:
        schema = tx.bucket("tams").schema("tams")
        dropped = ["schema_version", *(["write_guards", "deleted_flows"] if before_storage_backends else [])]
        for name in dropped:
            schema.table(name).drop()
        if before_storage_backends:
            schema.table("objects").rename_column("storage_ids", "storage_id")


def vast_version(fake: FakeVast) -> list[int]:
    return fake.read_committed("tams", "tams", "schema_version")["version"].to_pylist()


@pytest.fixture
def vast_template(
    vast_content_template: tuple[FakeVast, Content], monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeVast, Content]:
    """A clone of the VAST content (this release's store), which `vastdb.connect` reaches."""
    fake = vast_content_template[0].clone()
    monkeypatch.setattr(vastdb, "connect", fake.connect)
    return fake, vast_content_template[1]


@pytest.mark.parametrize("before_storage_backends", [False, True], ids=["today", "before-storage-backends"])
def test_a_vast_store_from_before_versions_is_adopted_with_every_record(
    vast_template: tuple[FakeVast, Content], tmp_path: Path, before_storage_backends: bool
) -> None:
    fake, content = vast_template
    settings = make_settings(tmp_path, **VAST_SETTINGS)
    expected = read_everything(settings, content)
    version_less(fake, before_storage_backends)
    assert str(vast_store().schema_upgrade) == "VAST tams/tams: migrated from schema version 0 to 1"
    assert read_everything(settings, content) == expected
    assert vast_version(fake) == [1]
    assert fake.read_committed("tams", "tams", "write_guards").num_rows == vast_schema.GUARD_STRIPES


def with_next_version(monkeypatch: pytest.MonkeyPatch) -> pa.Field:
    """A release after this one, whose version 2 adds a column to service_info: its migration and its tables."""
    field = pa.field("updated_by", pa.string())

    def add_updated_by(schema: vast_schema.StoreSchema) -> None:
        schema.existing().table("service_info").add_column(pa.schema([field]))

    migrations = [*vast_schema.MIGRATIONS, Migration(2, "service_info.updated_by", add_updated_by)]
    monkeypatch.setattr(vast_schema, "MIGRATIONS", migrations)
    monkeypatch.setitem(TABLES, "service_info", TABLES["service_info"].append(field))
    return field


def test_a_next_version_adds_a_column_and_keeps_the_data(
    vast_template: tuple[FakeVast, Content], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = vast_template
    vast_store().update_service_info("kept", None)
    with monkeypatch.context() as next_release:
        field = with_next_version(next_release)
        store = vast_store()
        assert str(store.schema_upgrade) == "VAST tams/tams: migrated from schema version 1 to 2"
        assert store.get_service_info(ServiceInfo("default", "")).name == "kept"
        assert fake.read_committed("tams", "tams", "service_info").schema.field(field.name) == field
        assert str(vast_store().schema_upgrade).endswith("already at schema version 2")
        assert vast_version(fake) == [2]
    with pytest.raises(ConfigurationError) as error:
        vast_store()
    message = str(error.value)
    assert message.startswith("TAMS_VAST_SCHEMA: VAST tams/tams has schema version 2, newer than the 1 this release")
    assert "\n" not in message


def test_concurrent_starts_migrate_a_vast_store_once(
    vast_template: tuple[FakeVast, Content], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas starting at once all read version 1; the first to commit the new column wins, the others conflict
    and read version 2 on their next try."""
    fake, _ = vast_template
    with_next_version(monkeypatch)
    fake.begin_together(3)
    upgrades = [str(store.schema_upgrade) for store in concurrently(3, vast_store)]
    assert sorted(upgrade.split(": ", 1)[1] for upgrade in upgrades) == [
        "already at schema version 2",
        "already at schema version 2",
        "migrated from schema version 1 to 2",
    ]
    assert vast_version(fake) == [2]


def test_concurrent_starts_on_an_empty_vast_schema_create_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas started at once before provisioning: the first to commit creates the tables, the others retry."""
    fake = new_fake_vast()
    monkeypatch.setattr(vastdb, "connect", fake.connect)
    fake.begin_together(3)
    upgrades = sorted(str(store.schema_upgrade).split(": ", 1)[1] for store in concurrently(3, vast_store))
    assert upgrades == ["already at schema version 1", "already at schema version 1", "created at schema version 1"]


def test_the_cli_migrates_a_vast_store(
    vast_template: tuple[FakeVast, Content], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    version_less(vast_template[0], before_storage_backends=False)
    for name, value in VAST_SETTINGS.items():
        monkeypatch.setenv(f"TAMS_{name.upper()}", value)
    main(["migrate"])
    assert capsys.readouterr().out == "tams-api: VAST tams/tams: migrated from schema version 0 to 1\n"


def test_provisioning_migrates_a_vast_store(vast_template: tuple[FakeVast, Content], tmp_path: Path) -> None:
    fake, _ = vast_template
    version_less(fake, before_storage_backends=True)
    provisioned = provision_vast(make_settings(tmp_path, **VAST_SETTINGS))
    assert provisioned == (
        "VAST tams/tams at http://vast.test: migrated from schema version 0 to 1; "
        f"created table write_guards, table deleted_flows, {vast_schema.GUARD_STRIPES} write guards"
    )
