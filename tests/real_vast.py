"""The API suite on a real VAST cluster ("vast-real+s3"), when VASTDB_ENDPOINT, VASTDB_ACCESS_KEY,
VASTDB_SECRET_KEY and VASTDB_BUCKET name one (the bucket must exist).

One fresh schema per test session, provisioned at first use and dropped with `deprovision_vast` at the end; each
test starts on it emptied (every row of the store's tables deleted), since tests expect a store of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import vastdb

from tams_api.config import Settings
from tams_api.provision import deprovision_vast, provision_vast
from tams_api.stores.vast.schema import ROW_ID, TABLES

REAL_VAST_VARIABLES = ("VASTDB_ENDPOINT", "VASTDB_ACCESS_KEY", "VASTDB_SECRET_KEY", "VASTDB_BUCKET")
NO_REAL_VAST = f"no VAST cluster: set {', '.join(REAL_VAST_VARIABLES)} to run the API suite on one too"


def real_vast_settings(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The settings of the cluster the VASTDB_* variables name (schema aside); None unless all are set."""
    if not all(environ.get(name) for name in REAL_VAST_VARIABLES):
        return None
    return {
        "metadata_backend": "vast",
        "vast_endpoint": environ["VASTDB_ENDPOINT"],
        "vast_access_key": environ["VASTDB_ACCESS_KEY"],
        "vast_secret_key": environ["VASTDB_SECRET_KEY"],
        "vast_bucket": environ["VASTDB_BUCKET"],
    }


@contextmanager
def session_schema(settings: Settings) -> Iterator[dict[str, Any]]:
    """A fresh schema for this test session, provisioned now and dropped at the end; the settings naming it."""
    fresh = settings.model_copy(update={"vast_schema": f"tams_test_{uuid.uuid4().hex[:12]}"})
    provision_vast(fresh)
    try:
        yield {"vast_schema": fresh.vast_schema}
    finally:
        deprovision_vast(fresh)


def empty_store(settings: Settings) -> None:
    """Delete every row of the store's tables but its write guards and schema version, in one transaction: the next
    test starts on an empty store."""
    session = vastdb.connect(
        access=settings.vast_access_key, secret=settings.vast_secret_key, endpoint=settings.vast_endpoint
    )
    with session.transaction() as tx:
        schema = tx.bucket(settings.vast_bucket).schema(settings.vast_schema)
        for name, columns in TABLES.items():
            if name in ("write_guards", "schema_version"):  # made at provisioning, not data
                continue
            table = schema.table(name)
            rows = table.select(columns=[columns.names[0]], internal_row_id=True).read_all()
            if rows.num_rows:
                table.delete(rows.select([ROW_ID]))
