"""The PostgreSQL metadata store's own concerns on a real server: configuration and its errors, the versioned
schema, provisioning and deprovisioning, and what PostgreSQL cannot hold. Its behaviour as a TAMS store is tested by
the API suite, which runs on it too (`STORE_BACKENDS`: postgres+filesystem, postgres+s3)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from helpers import make_settings, new_id, video_flow
from postgres_server import PASSWORD, PostgresServer
from tams_api.__main__ import main
from tams_api.app import create_app
from tams_api.config import Settings
from tams_api.errors import ConfigurationError
from tams_api.provision import deprovision_postgres
from tams_api.stores.migrations import Migration
from tams_api.stores.postgres import PostgresMetadataStore
from tams_api.stores.postgres import schema as postgres_schema


@pytest.fixture
def settings(postgres_server: PostgresServer, tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        metadata_backend="postgres",
        postgres_url=postgres_server.url,
        postgres_schema=postgres_server.new_schema(),
    )


def tables(server: PostgresServer, schema: str) -> set[str]:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {name for (name,) in rows}


def test_the_backend_needs_a_url_and_a_plain_schema_name() -> None:
    with pytest.raises(ValidationError, match="TAMS_METADATA_BACKEND is postgres: set TAMS_POSTGRES_URL"):
        Settings(metadata_backend="postgres")
    with pytest.raises(ValidationError, match="postgres_schema"):
        Settings(metadata_backend="postgres", postgres_url="postgresql://x/y", postgres_schema="a;b")


def test_a_wrong_password_is_one_line_naming_the_setting(settings: Settings) -> None:
    wrong = settings.postgres_url.replace(PASSWORD, "not-the-password")  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match=r"^TAMS_POSTGRES_URL: cannot use PostgreSQL: .*password"):
        create_app(settings.model_copy(update={"postgres_url": wrong}))


def test_the_password_can_come_from_a_file(settings: Settings, tmp_path: Path) -> None:
    """As a Secret mounted in the pod gives it; the file's password wins over none in the URL."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    without = settings.postgres_url.replace(f":{PASSWORD}@", "@")  # type: ignore[union-attr]
    changed = settings.model_copy(update={"postgres_url": without, "postgres_password_file": password_file})
    with TestClient(create_app(changed)) as client:
        assert client.get("/ready").status_code == 200
    missing = changed.model_copy(update={"postgres_password_file": tmp_path / "absent"})
    with pytest.raises(ConfigurationError, match=r"^TAMS_POSTGRES_PASSWORD_FILE: cannot read it"):
        create_app(missing)


def test_a_new_schema_is_created_at_the_latest_version_and_opens_again(settings: Settings) -> None:
    first = PostgresMetadataStore(settings.postgres_url or "", settings.postgres_schema)
    first.close()
    again = PostgresMetadataStore(settings.postgres_url or "", settings.postgres_schema)
    again.close()
    version = postgres_schema.SCHEMA_VERSION
    assert str(first.schema_upgrade).endswith(f"schema {settings.postgres_schema}: created at schema version {version}")
    assert str(again.schema_upgrade).endswith(f"already at schema version {version}")


def test_a_newer_schema_is_refused_in_one_line_naming_the_setting(settings: Settings) -> None:
    PostgresMetadataStore(settings.postgres_url or "", settings.postgres_schema).close()
    with psycopg.connect(settings.postgres_url or "") as connection:
        connection.execute(f"UPDATE {settings.postgres_schema}.schema_version SET version = 99")
    with pytest.raises(ConfigurationError, match=r"^TAMS_POSTGRES_SCHEMA: .* has schema version 99, newer than"):
        PostgresMetadataStore(settings.postgres_url or "", settings.postgres_schema)


def test_a_next_version_adds_a_column_and_keeps_the_data(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """There has been one PostgreSQL schema so far: a synthetic next version shows the migration machinery at work
    on a store holding data, as the next real one will be."""
    with TestClient(create_app(settings)) as client:
        flow_id = new_id()
        assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id())).status_code == 201

    def add_column(connection: Any) -> None:
        connection.execute("ALTER TABLE flows ADD COLUMN next_column TEXT")

    migrations = [*postgres_schema.MIGRATIONS, Migration(2, "a next column", add_column)]
    monkeypatch.setattr(postgres_schema, "MIGRATIONS", migrations)
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/flows/{flow_id}").status_code == 200
        services = client.app.state.services  # type: ignore[attr-defined]
        assert str(services.store.schema_upgrade).endswith("migrated from schema version 1 to 2")
    with psycopg.connect(settings.postgres_url or "") as connection:
        assert connection.execute(f"SELECT version FROM {settings.postgres_schema}.schema_version").fetchone() == (2,)


def test_concurrent_starts_on_an_empty_schema_create_it_once(settings: Settings) -> None:
    def start(_: int) -> str:
        store = PostgresMetadataStore(settings.postgres_url or "", settings.postgres_schema, pool_size=1)
        store.close()
        return str(store.schema_upgrade)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(start, range(4)))
    assert sum("created at schema version" in outcome for outcome in outcomes) == 1, outcomes


def test_provisioning_creates_the_schema_proves_writes_and_deprovisioning_drops_only_the_stores_tables(
    settings: Settings, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name, value in (
        ("TAMS_METADATA_BACKEND", "postgres"),
        ("TAMS_POSTGRES_URL", settings.postgres_url or ""),
        ("TAMS_POSTGRES_SCHEMA", settings.postgres_schema),
        ("TAMS_DATA_DIR", str(settings.data_dir)),
    ):
        monkeypatch.setenv(name, value)
    main(["provision", "postgres"])
    main(["provision", "postgres"])
    first, second = capsys.readouterr().out.splitlines()
    assert "created at schema version" in first and first.endswith("write access proven")
    assert "already at schema version" in second
    assert tables(postgres_server, settings.postgres_schema) == set(postgres_schema.TABLES)

    with psycopg.connect(settings.postgres_url or "") as connection:
        connection.execute(f"CREATE TABLE {settings.postgres_schema}.someone_elses (id INTEGER)")
    outcome = deprovision_postgres(settings)
    assert outcome.endswith("kept someone_elses (not the store's)"), outcome
    assert tables(postgres_server, settings.postgres_schema) == {"someone_elses"}

    with psycopg.connect(settings.postgres_url or "") as connection:
        connection.execute(f"DROP TABLE {settings.postgres_schema}.someone_elses")
    main(["provision", "postgres"])
    assert deprovision_postgres(settings).endswith(f"schema {settings.postgres_schema}")
    assert deprovision_postgres(settings).endswith("nothing to drop")


def test_text_postgresql_cannot_hold_is_a_400_and_stores_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        flow_id = new_id()
        response = client.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id(), label="nul\u0000label"))
        assert response.status_code == 400, response.text
        assert "NUL" in response.json()["summary"]
        assert client.get(f"/flows/{flow_id}").status_code == 404
