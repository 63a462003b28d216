"""The operator with a TamsStore on PostgreSQL, against the real kube-apiserver and a real PostgreSQL server: the
URI read from a Secret shaped like CloudNativePG's, the schema and tables made, failures named, and reclaimPolicy
Delete dropping the store's tables and no other."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from control_plane import ControlPlane
from operator_harness import condition, create, new_namespace, operated, path, wait
from postgres_server import PASSWORD, PostgresServer
from s3_server import S3Server
from test_operator import s3_spec, secret, tams_store, wait_condition, with_keys


@pytest.fixture(scope="module")
def admin(kube: ControlPlane) -> Iterator[httpx.Client]:
    with operated(kube) as client:
        yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    return new_namespace(admin)


def app_secret(namespace: str, url: str) -> dict:
    """What CloudNativePG writes for a cluster's application database (`<cluster>-app`), the keys the store reads and
    some it does not."""
    return secret(namespace, "archive-db-app", uri=url, username="tams", dbname="tams", port="5432", password="")


def tables_of(server: PostgresServer, schema: str) -> set[str]:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
    return {name for (name,) in rows}


def test_a_store_on_postgres_is_provisioned_shared_and_reclaimed(
    admin: httpx.Client, namespace: str, s3_server: S3Server, postgres_server: PostgresServer
) -> None:
    with_keys(admin, namespace)
    create(admin, app_secret(namespace, postgres_server.url))
    schema = postgres_server.new_schema()
    spec = {
        "replicas": 3,
        "metadata": {"backend": "postgres", "postgres": {"uriSecretRef": {"name": "archive-db-app"}, "schema": schema}},
        "media": s3_spec(s3_server, f"tams-{uuid.uuid4().hex[:12]}", createBucket=True),
        "reclaimPolicy": "Delete",
    }
    store = create(admin, tams_store(namespace, spec))

    provisioned = condition(wait_condition(admin, store, "MetadataProvisioned"), "MetadataProvisioned")
    assert schema in provisioned["message"] and "write access proven" in provisioned["message"]
    assert {"flows", "segments", "events", "leases"} <= tables_of(postgres_server, schema)
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    api = wait(lambda: admin.get(f"{deployments}/news-tams").json().get("spec"), "the API Deployment")
    assert api["replicas"] == 3
    [container] = api["template"]["spec"]["containers"]
    env = {item["name"]: item.get("valueFrom", {}).get("secretKeyRef") for item in container["env"]}
    assert env["TAMS_POSTGRES_URL"] == {"name": "archive-db-app", "key": "uri"}, "the URI never copied"
    assert admin.get(f"{deployments}/news-tams-worker").status_code == 200, "one worker for the replicas"

    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {schema}.notes (line text)")  # someone else's, in the same schema
    assert admin.delete(path(store)).status_code in (200, 202)
    wait(lambda: admin.get(path(store)).status_code == 404, "the TamsStore gone")
    assert tables_of(postgres_server, schema) == {"notes"}, "the store's tables dropped, no other"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (lambda server: server.url.replace(PASSWORD, "wrong"), "password authentication failed"),
        (lambda server: server.database_url("absent"), 'database "absent" does not exist'),
    ],
    ids=["wrong-password", "no-database"],
)
def test_a_postgres_store_that_cannot_be_used_says_why(
    admin: httpx.Client,
    namespace: str,
    postgres_server: PostgresServer,
    url: Callable[[PostgresServer], str],
    message: str,
) -> None:
    create(admin, app_secret(namespace, url(postgres_server)))
    metadata = {"backend": "postgres", "postgres": {"uriSecretRef": {"name": "archive-db-app"}}}
    store = create(admin, tams_store(namespace, {"metadata": metadata}))
    body = wait_condition(admin, store, "MetadataProvisioned", "False")
    found = condition(body, "MetadataProvisioned")
    assert found["reason"] == "PostgresFailed"
    assert "TAMS_POSTGRES_URL: cannot use PostgreSQL" in found["message"] and message in found["message"]
    assert "wrong" not in found["message"] and PASSWORD not in found["message"], "no password in the status"
