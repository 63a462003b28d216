"""The SQLite store's schema version: a new database gets it, a database of another version is refused at
start in one line, never half-used (there are no migrations yet)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tams_api.errors import ConfigurationError
from tams_api.stores.sqlite import SCHEMA_VERSION, SqliteMetadataStore


def test_a_new_database_gets_the_current_version_and_opens_again(tmp_path: Path) -> None:
    path = tmp_path / "tams.sqlite"
    SqliteMetadataStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    SqliteMetadataStore(path)


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION - 1, SCHEMA_VERSION + 1])
def test_a_database_of_another_version_is_refused_naming_the_setting(tmp_path: Path, version: int) -> None:
    path = tmp_path / "tams.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE objects (id TEXT PRIMARY KEY, storage_id TEXT)")  # as before several backends
    old.execute(f"PRAGMA user_version = {version}")
    old.commit()
    with pytest.raises(ConfigurationError) as error:
        SqliteMetadataStore(path)
    message = str(error.value)
    assert message.startswith(f"TAMS_SQLITE_PATH: {path} holds a database of schema version {version}")
    assert "\n" not in message
