"""The tests' PostgreSQL (postgres_server.py): password logins, fresh schemas and fresh databases, as the stores
will use them."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from postgres_server import PASSWORD, USER, PostgresServer


def test_the_url_logs_in_with_its_password(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url) as connection:
        assert connection.execute("SELECT current_user, current_database()").fetchone() == (USER, "tams")
        assert connection.info.pgconn.used_password


@pytest.mark.parametrize("url", ["url", "admin_url"])
def test_a_wrong_password_is_refused(postgres_server: PostgresServer, url: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(getattr(postgres_server, url), password="wrong")  # overrides the URL's


def test_a_new_schema_takes_a_table(postgres_server: PostgresServer) -> None:
    schema = postgres_server.new_schema()
    assert schema != postgres_server.new_schema()
    with psycopg.connect(postgres_server.url) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        table = sql.Identifier(schema, "flows")
        connection.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, label text)").format(table))
        connection.execute(sql.SQL("INSERT INTO {} VALUES ('a', 'é')").format(table))
        assert connection.execute(sql.SQL("SELECT label FROM {}").format(table)).fetchall() == [("é",)]


def test_a_new_database_is_tams_own(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    assert url.startswith(f"postgresql://{USER}:{PASSWORD}@127.0.0.1:") and url != postgres_server.url
    with psycopg.connect(url) as connection:
        name, owner = connection.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert name != "tams" and owner == USER
        connection.execute("CREATE TABLE objects (id text PRIMARY KEY)")
        connection.execute("INSERT INTO objects VALUES ('o')")
        assert connection.execute("SELECT id FROM objects").fetchall() == [("o",)]
    assert postgres_server.new_database() != url
