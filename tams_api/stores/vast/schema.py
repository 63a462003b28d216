"""The VAST store's schema and its migrations: its tables (Arrow schemas), their projections, and the version of
the whole, recorded in the `schema_version` table beside them.

What the SDK (vastdb 2.1) can change in place, each within a transaction (it sends the transaction id with every
change): add columns (`Table.add_column`: existing rows hold NULL, there are no defaults, so code reads NULL as the
default), drop and rename columns (`drop_column`, `rename_column`), create, rename and drop tables. It cannot change
a column's type: a migration adds a column of the new type (or a new table) and copies the data over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from vastdb import errors

from ...errors import ConfigurationError
from ..migrations import Migration, Upgrade, upgrade

ROW_ID = "$row_id"  # the SDK's column of row ids, which `update` and `delete` need
_S, _I, _B = pa.string(), pa.int64(), pa.bool_()


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(columns)


TABLES: dict[str, pa.Schema] = {
    "service_info": _schema(("key", _S), ("value", _S)),
    "profiles": _schema(("id", _S), ("format", _S), ("codec", _S), ("label", _S), ("created", _S), ("document", _S)),
    "sources": _schema(
        ("id", _S),
        ("format", _S),
        ("label", _S),
        ("description", _S),
        ("created_by", _S),
        ("updated_by", _S),
        ("created", _S),
        ("created_ns", _I),
        ("updated", _S),
        ("updated_ns", _I),
    ),
    "flows": _schema(
        ("id", _S),
        ("source_id", _S),
        ("format", _S),
        ("codec", _S),
        ("label", _S),
        ("profile_id", _S),
        ("status", _S),
        ("frame_width", _I),
        ("frame_height", _I),
        ("init_segments", _I),
        ("read_only", _I),
        ("metadata", _S),
        ("created", _S),
        ("created_ns", _I),
        ("metadata_updated", _S),
        ("metadata_updated_ns", _I),
        ("segments_updated", _S),
        ("seg_start_ns", _I),  # first segment's start, last segment's end: NULL without segments
        ("seg_end_ns", _I),
        ("max_segment_ns", _I),  # longest segment's end - start: bounds window queries (never shrinks)
    ),
    "tags": _schema(("kind", _S), ("entity_id", _S), ("name", _S), ("value", _S)),
    "tag_values": _schema(("kind", _S), ("name", _S), ("value", _S), ("entity_id", _S)),
    "flow_collections": _schema(("collector_id", _S), ("position", _I), ("member_id", _S), ("item", _S)),
    "segments": _schema(
        ("flow_id", _S),
        ("start_ns", _I),
        ("end_ns", _I),
        ("timerange", _S),
        ("object_id", _S),
        ("ts_offset", _S),
        ("last_duration", _S),
        ("sample_offset", _I),
        ("sample_count", _I),
    ),
    "objects": _schema(
        ("id", _S),
        ("storage_ids", _S),  # comma-separated: the backends holding a controlled instance
        ("content_type", _S),
        ("allocated_for", _S),
        ("allocated_ns", _I),
        ("registered", _B),
        ("first_flow_id", _S),
        ("timerange", _S),
        ("key_frame_count", _I),
        ("init_object_id", _S),
        ("uncontrolled_urls", _S),
    ),
    "released_objects": _schema(("id", _S), ("storage_id", _S)),  # a row per object and backend
    "webhooks": _schema(
        ("id", _S), ("url", _S), ("status", _S), ("owner", _S), ("document", _S), ("error", _S), ("cursor", _I)
    ),
    # The outbox; `seq` comes from the "events" row of `counters`, updated in the event's transaction, so two
    # writers of events conflict (first writer wins) and sequence numbers are unique and commit-ordered.
    "events": _schema(
        ("seq", _I),
        ("type", _S),
        ("timestamp", _S),
        ("flow_id", _S),
        ("source_id", _S),
        ("flow_collected_by", _S),
        ("source_collected_by", _S),
        ("payload", _S),
    ),
    "counters": _schema(("name", _S), ("value", _I)),
    "delete_requests": _schema(
        ("id", _S),
        ("flow_id", _S),
        ("to_delete", _S),
        ("remaining", _S),
        ("delete_flow", _B),
        ("status", _S),
        ("created", _S),
        ("created_ns", _I),
        ("created_by", _S),
        ("updated", _S),
        ("expiry", _S),
        ("expiry_ns", _I),
        ("error", _S),
    ),
    "leases": _schema(("name", _S), ("holder", _S), ("expires_ns", _I)),
    # GUARD_STRIPES rows made at provisioning; `_guard` writes the stripes of the keys a transaction creates.
    "write_guards": _schema(("stripe", _I), ("writes", _I)),
    # Soft-deleted flows (extension): their rows stay where they are, hidden from the spec's endpoints. A table of
    # its own rather than columns of `flows`, so that schemas made before it only gain a table at start.
    "deleted_flows": _schema(("flow_id", _S), ("deleted_at", _S), ("deleted_ns", _I), ("deleted_by", _S)),
    # The version of all these tables (MIGRATIONS): one row. Two starts adopting a store at once could each insert
    # one, so the greatest is the version and recording updates every row.
    "schema_version": _schema(("version", _I)),
}
GUARD_STRIPES = 256

# Semi-sorted projections for the lookups every request makes: (table, name, sorted columns, unsorted columns).
PROJECTIONS = (
    ("segments", "segments_by_flow_start", ["flow_id", "start_ns"], ["end_ns", "timerange", "object_id"]),
    ("segments", "segments_by_object", ["object_id", "flow_id"], ["start_ns"]),
    ("objects", "objects_by_id", ["id"], ["registered", "init_object_id", "allocated_for"]),
    ("flows", "flows_by_id", ["id"], ["source_id", "read_only"]),
    ("tags", "tags_by_entity", ["kind", "entity_id", "name"], ["value"]),
    ("tag_values", "tag_values_by_name", ["kind", "name", "value"], ["entity_id"]),
    ("flow_collections", "flow_collections_by_collector", ["collector_id", "position"], ["member_id"]),
    ("events", "events_by_seq", ["seq"], ["type"]),
)


class StoreSchema:
    """The store's schema within one transaction, which may not exist yet: what migrations change."""

    def __init__(self, tx: Any, bucket: str, name: str) -> None:
        try:
            self.root = tx.bucket(bucket)
        except errors.MissingBucket:
            raise ConfigurationError(
                f"TAMS_VAST_BUCKET: bucket {bucket!r} does not exist: create it in VMS (a view with the S3 and "
                "DATABASE protocols), or set TAMS_VAST_MANAGEMENT_ENDPOINT, _USERNAME, _PASSWORD and "
                "TAMS_VAST_BUCKET_OWNER so that `tams-api provision vast` creates it"
            ) from None
        self.name = name

    def existing(self) -> Any | None:
        """The SDK's schema, if it exists."""
        return self.root.schema(self.name, fail_if_missing=False)


def _adopt(schema: StoreSchema) -> None:
    """Stores made before versions were recorded hold today's tables or, made before several storage backends
    (24d449b; refused at start since), objects.storage_id, whose one backend id the comma-separated storage_ids that
    replaced it holds the same way. The tables, projections and write guards they lack are created after migrating."""
    objects = schema.existing().table("objects", fail_if_missing=False)
    if objects is not None and "storage_id" in objects.arrow_schema.names:
        objects.rename_column("storage_id", "storage_ids")


# The migration to version N at index N - 1 (migrations.py).
MIGRATIONS: list[Migration[StoreSchema]] = [
    Migration(1, "adopt a store made before schema versions were recorded", _adopt),
]


def _create_missing(schema: StoreSchema) -> list[str]:
    """Create the schema, tables, projections and write guards that are missing; what was created. Tables must
    have exactly the columns of TABLES (after migrating, they do)."""
    created = [] if schema.existing() is not None else [f"schema {schema.name}"]
    tables = schema.root.create_schema(schema.name, fail_if_exists=False)
    for name, columns in TABLES.items():
        if tables.table(name, fail_if_missing=False) is None:
            created.append(f"table {name}")
        table = tables.create_table(name, columns, fail_if_exists=False)
        if table.arrow_schema != columns:
            raise ConfigurationError(
                f"TAMS_VAST_SCHEMA: table {schema.name}.{name} has columns {table.arrow_schema.names}, not "
                f"{columns.names}: use another schema"
            )
    for name, projection, sorted_columns, unsorted_columns in PROJECTIONS:
        table = tables.table(name)
        if not table.projections(projection_name=projection):
            table.create_projection(projection, sorted_columns=sorted_columns, unsorted_columns=unsorted_columns)
            created.append(f"projection {projection}")
    guards = tables.table("write_guards")
    present = set(guards.select(columns=["stripe"]).read_all()["stripe"].to_pylist())
    missing = [{"stripe": stripe, "writes": 0} for stripe in range(GUARD_STRIPES) if stripe not in present]
    if missing:
        guards.insert(pa.Table.from_pylist(missing, schema=TABLES["write_guards"]))
        created.append(f"{len(missing)} write guards")
    return created


class _Versioned:
    """The store's schema as a `VersionedStore`."""

    setting = "TAMS_VAST_SCHEMA"
    retried = (errors.Conflict,)  # another replica migrating at the same time: read its version and go on

    def __init__(self, session: Any, bucket: str, name: str) -> None:
        self.session = session
        self.bucket = bucket
        self.name = name
        self.place = f"VAST {bucket}/{name}"
        self.created: list[str] = []

    @contextmanager
    def transaction(self) -> Iterator[StoreSchema]:
        with self.session.transaction() as tx:
            yield StoreSchema(tx, self.bucket, self.name)

    def version(self, schema: StoreSchema) -> int | None:
        tables = schema.existing()
        names = set(tables.tablenames()) if tables is not None else set()
        if "schema_version" in names:
            versions = tables.table("schema_version").select(columns=["version"]).read_all()["version"].to_pylist()
            if versions:
                return max(versions)
        return 0 if names & set(TABLES) else None

    def create(self, schema: StoreSchema) -> None:
        self.created = _create_missing(schema)

    def record(self, schema: StoreSchema, version: int) -> None:
        columns = TABLES["schema_version"]
        table = schema.existing().create_table("schema_version", columns, fail_if_exists=False)
        rows = table.select(columns=["version"], internal_row_id=True).read_all()
        if rows.num_rows:
            versions = pa.array([version] * rows.num_rows, pa.int64())
            table.update(pa.table({ROW_ID: rows[ROW_ID], "version": versions}), columns=["version"])
        else:
            table.insert(pa.Table.from_pylist([{"version": version}], schema=columns))


def ensure_schema(session: Any, bucket: str, name: str) -> tuple[Upgrade, list[str]]:
    """Create or migrate the store's schema, then create the tables, projections and write guards it lacks
    (idempotent): how its version changed, and what was created."""
    versioned = _Versioned(session, bucket, name)
    with _explained(bucket, name):
        upgraded = upgrade(versioned, MIGRATIONS)
        if upgraded.before is None:
            return upgraded, versioned.created
        with session.transaction() as tx:
            return upgraded, _create_missing(StoreSchema(tx, bucket, name))


@contextmanager
def _explained(bucket: str, schema: str) -> Iterator[None]:
    """SDK errors of provisioning and deprovisioning as one line naming what to fix."""
    where = f"VAST {bucket}/{schema}"
    try:
        yield
    except errors.Conflict:
        raise ConfigurationError(
            f"{where}: a concurrent transaction changed it (another replica or provisioning?); nothing was changed, "
            "run again"
        ) from None
    except errors.Forbidden as error:
        raise ConfigurationError(
            f"TAMS_VAST_ACCESS_KEY / TAMS_VAST_SECRET_KEY: not allowed to change {where} ({error.code})"
        ) from None
    except errors.HttpError as error:
        raise ConfigurationError(f"TAMS_VAST_BUCKET: {where}: VAST answered {error.status} {error.code}") from None


def drop_tables(session: Any, bucket: str, schema: str) -> tuple[list[str], list[str]]:
    """Drop the store's tables (projections first) and then its schema, in one transaction; what was dropped, and
    what was kept: tables and schemas this store did not create stay, and so does the schema holding them.
    A missing bucket, schema or table counts as dropped already."""
    dropped: list[str] = []
    with _explained(bucket, schema), session.transaction() as tx:
        try:
            tables = tx.bucket(bucket).schema(schema, fail_if_missing=False)
        except errors.MissingBucket:
            return [], []
        if tables is None:
            return [], []
        for table in tables.tables():
            if table.name in TABLES:
                for projection in table.projections():
                    projection.drop()
                table.drop()
                dropped.append(f"table {table.name}")
        kept = [f"table {name}" for name in tables.tablenames()] + [f"schema {s.name}" for s in tables.schemas()]
        if not kept:
            tables.drop()
            dropped.append(f"schema {schema}")
    return dropped, kept
