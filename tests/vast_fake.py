"""In-memory fake of the `vastdb` SDK surface a metadata store uses (checked against vastdb 2.1.0), for tests.

There is no VAST server, emulator or image to test against, so a store takes a session factory and tests give it
this fake instead of `vastdb.connect`::

    fake = FakeVast(buckets=["tams"], access_key="AK", secret_key="SK")  # the SDK cannot create buckets
    session = fake.connect(access="AK", secret="SK", endpoint="http://vast")  # same signature as vastdb.connect
    with session.transaction() as tx:
        schema = tx.bucket("tams").create_schema("s", fail_if_exists=False)
        table = schema.create_table("t", pa_schema, fail_if_exists=False)

Covered, with the SDK's names, keyword arguments and defaults:
- `FakeVast.connect(access, secret, endpoint, ...)` -> `FakeSession` (`vastdb.connect` / `Session`);
  `FakeSession.transaction()` -> `FakeTransaction`: commit on exit, rollback on exception; `bucket`, `txid`,
  `is_active`, `active_txid`.
- `FakeBucket`: `create_schema`, `schema`, `schemas`.
- `FakeSchema`: `create_schema`, `schema`, `schemas`, `create_table`, `table`, `tables`, `tablenames`, `drop`,
  `rename` (nested schemas use full names "a/b", as in the SDK).
- `FakeTable`: `name`, `ref`, `path`, `handle`, `tx`, `arrow_schema`, `columns()`, `table["col"]`, `select`,
  `insert`, `update`, `delete`, `drop`, `rename`, `add_column`, `drop_column`, `rename_column`,
  `create_projection`, `projection`, `projections`.  `FakeProjection`: `name`, `columns()`, `rename`, `drop`.

Faithful to the SDK because it runs the SDK's own code:
- `select` prepares its request exactly as `Table.select` does and calls `vastdb._internal.build_query_data_request`
  (same columns, predicate and `$row_id` handling), so unsupported predicates raise what a cluster client raises
  (`NotImplementedError(expr)` for an OR across columns, `.notnull()`, `~(a == b)`, `isin([])`, ...), `True`/`False`
  predicates and `ibis._` (Deferred) predicates behave the same, and oversized requests raise `TooLargeRequest`.
  The result columns and their order are the serializer's `response_schema`.
- `create_table` / `add_column` run `validate_ibis_support_schema` (-> `NotSupportedSchema`) and the API's duplicate
  field check (-> `ValueError`).
- errors are the `vastdb.errors` classes, built with the arguments the SDK uses.

Server behaviour the SDK cannot tell us, and what the fake does (documented guesses, mostly stricter than needed):
- column types the SDK cannot put in a query request (`build_field` fails: null, dictionary, large_string, date64,
  duration, ...) are rejected at `create_table` / `add_column` like the server rejects null/dictionary (SDK tests):
  `NotSupportedSchema(message=..., cause=BadRequest(code="TabularUnsupportedColumnType"))`.
- rows come back in a shuffled order (seeded per session) in batches of random sizes; `limit_rows=n` returns an
  arbitrary subset of at most n matching rows; `limit_rows=0` means no limit (the SDK treats 0 as unset).
- literals are coerced as the serializer encodes them (`int(2.7)` on an int column, float32 rounding, decimals via
  float), then compared in Arrow (SQL NULL semantics: a NULL never matches a comparison).
- `insert` / `update` reject unknown columns, `$row_id` among the values and types that differ from the table's
  (`BadRequest`); `insert` fills columns it was not given with NULLs; `update` / `delete` of a row id that the
  transaction cannot see raise `BadRequest`.  Non-nullable fields are not enforced.
- transactions are snapshots (data as of `__enter__` plus their own writes).  Conflicts are first-writer-wins and
  detected eagerly, as the SDK's test of two concurrent column renames shows (the second gets 409 at once): writing a
  row (update/delete), a table (drop/rename/columns/projections), a table name or a schema that another open
  transaction wrote, or that a transaction committed after this one started, raises `errors.Conflict` and dooms the
  transaction: its commit raises `Conflict` too and nothing of it is applied.  Inserts never conflict, so two
  transactions may both "read, find nothing, insert" (write skew: no uniqueness without a real lock).  At commit the
  writes are replayed on the latest state; one that no longer applies (its table was dropped, its column renamed)
  fails the commit with `Conflict`.
- dropping a schema that still has tables or child schemas raises `Conflict` (SDK test `test_errors`); creating a
  projection or column that exists raises `Conflict`.
- using a table, schema or bucket object outside an active transaction raises `TransactionNotActiveError`; reading a
  `select` reader after its transaction ended raises `errors.MissingTransaction`, as the SDK's reader does.  The rows
  are those visible when `select` is called.
- SDK quirks kept on purpose: `select(columns=cols, internal_row_id=True)` appends "$row_id" to the caller's `cols`
  list; `create_table(..., fail_if_exists=False)` returns an existing table whatever its columns.
Test helpers beyond the SDK: `FakeVast.create_bucket`, `FakeVast.clone` (a copy of the committed state),
`FakeVast.read_committed` (committed rows with `$row_id`), `FakeSession.rng` (reseed to change the order),
`FakeVast(max_batch_rows=...)`; to test concurrency: `FakeVast.conflict_next_commits(n)` (the next n commits of
transactions that wrote something fail with `Conflict`, as when a concurrent writer won) and
`FakeVast.begin_together(n)` (the next n transactions to begin wait for each other once they have their
snapshots, so that none sees what another writes); to see what a store asks of a cluster: `counting_selects()`.
Not covered: snapshots, imports, sorted/partitioned/vector tables, external row ids, blob expansions, stats, ADBC.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import os
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from unittest import mock

import flatbuffers
import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests
from ibis.common.deferred import Deferred
from ibis.expr.operations import Field, Node
from ibis.expr.operations.generic import IsNull
from ibis.expr.operations.logical import (
    And,
    Between,
    Equals,
    Greater,
    GreaterEqual,
    InValues,
    Less,
    LessEqual,
    Not,
    NotEquals,
    Or,
)
from ibis.expr.operations.strings import StartsWith, StringContains
from ibis.expr.types import BooleanColumn
from requests.structures import CaseInsensitiveDict
from vastdb import _internal, errors, util
from vastdb._ibis_support import validate_ibis_support_schema
from vastdb._internal import VectorIndexSpec
from vastdb.config import BackoffConfig, QueryConfig, SessionConfig
from vastdb.partitioning import PartitionSpec
from vastdb.table_metadata import TableRef
from vastdb.transaction import TransactionNotActiveError

ROW_ID = _internal.INTERNAL_ROW_ID  # "$row_id"
ROW_ID_FIELD = _internal.INTERNAL_ROW_ID_FIELD  # uint64, the type regular tables use

_Op = Callable[["_State"], None]
_COMPARISONS: dict[type[Node], Callable[[Any, Any], pc.Expression]] = {
    Equals: operator.eq,
    NotEquals: operator.ne,
    Greater: operator.gt,
    GreaterEqual: operator.ge,
    Less: operator.lt,
    LessEqual: operator.le,
}


# ---------------------------------------------------------------------------------------------------------------
# errors as the server would send them


def _http_error(cls: type[errors.HttpError], status: int, code: str, message: str) -> errors.HttpError:
    return cls(
        code=code, message=message, method="POST", url="fake://vast", status=status, headers=CaseInsensitiveDict()
    )


def _conflict(message: str) -> errors.HttpError:
    return _http_error(errors.Conflict, 409, "Conflict", message)


def _bad_request(message: str) -> errors.HttpError:
    return _http_error(errors.BadRequest, 400, "InvalidArgument", message)


def _no_such_table(ref: TableRef) -> errors.HttpError:
    return _http_error(errors.NotFound, 404, "NoSuchTable", f"table {ref} does not exist")


class _Gone(Exception):
    """A write no longer applies to the state it is replayed on: the commit conflicts."""


# ---------------------------------------------------------------------------------------------------------------
# committed and per-transaction state


@dataclass
class _ProjectionState:
    handle: int
    sorted_columns: list[str]
    unsorted_columns: list[str]


@dataclass
class _TableState:
    handle: int
    bucket: str
    schema: str
    name: str
    arrow_schema: pa.Schema
    data: pa.Table  # the table's columns, then `$row_id`
    projections: dict[str, _ProjectionState] = field(default_factory=dict)

    def copy(self) -> _TableState:
        # Arrow tables are immutable, so sharing `data` between snapshots is safe.
        return dataclasses.replace(self, projections=dict(self.projections))

    def rebuild(self, arrow_schema: pa.Schema, columns: list[pa.ChunkedArray]) -> None:
        self.arrow_schema = arrow_schema
        self.data = pa.Table.from_arrays([*columns, self.data.column(ROW_ID)], schema=_storage_schema(arrow_schema))


@dataclass
class _State:
    schemas: set[tuple[str, str]] = field(default_factory=set)  # (bucket, full schema name)
    tables: dict[int, _TableState] = field(default_factory=dict)  # by handle: stable across renames

    def copy(self) -> _State:
        return _State(set(self.schemas), {handle: t.copy() for handle, t in self.tables.items()})

    def table(self, handle: int) -> _TableState:
        if handle not in self.tables:
            raise _Gone(f"table #{handle} no longer exists")
        return self.tables[handle]

    def find_table(self, bucket: str, schema: str, name: str) -> _TableState | None:
        return next((t for t in self.tables.values() if (t.bucket, t.schema, t.name) == (bucket, schema, name)), None)

    def tables_in(self, bucket: str, schema: str) -> list[_TableState]:
        return sorted((t for t in self.tables.values() if (t.bucket, t.schema) == (bucket, schema)), key=_by_name)

    def child_schemas(self, bucket: str, parent: str) -> list[str]:
        prefix = f"{parent}/" if parent else ""
        names = (n for b, n in self.schemas if b == bucket and n.startswith(prefix) and "/" not in n[len(prefix) :])
        return sorted(names)


def _by_name(table: _TableState) -> str:
    return table.name


def _storage_schema(arrow_schema: pa.Schema) -> pa.Schema:
    return pa.schema([*arrow_schema, ROW_ID_FIELD])


# ---------------------------------------------------------------------------------------------------------------
# writes: each is applied to the transaction's snapshot at once and replayed on the latest state at commit


def _op_create_schema(bucket: str, name: str) -> _Op:
    def apply(state: _State) -> None:
        parent = name.rpartition("/")[0]
        if (bucket, name) in state.schemas or (parent and (bucket, parent) not in state.schemas):
            raise _Gone(f"cannot create schema {name!r}")
        state.schemas.add((bucket, name))

    return apply


def _op_drop_schema(bucket: str, name: str) -> _Op:
    def apply(state: _State) -> None:
        if (bucket, name) not in state.schemas or _schema_in_use(state, bucket, name):
            raise _Gone(f"cannot drop schema {name!r}")
        state.schemas.remove((bucket, name))

    return apply


def _op_rename_schema(bucket: str, old: str, new: str) -> _Op:
    def moved(name: str) -> str:
        return new + name[len(old) :] if name == old or name.startswith(f"{old}/") else name

    def apply(state: _State) -> None:
        if (bucket, old) not in state.schemas or (bucket, new) in state.schemas:
            raise _Gone(f"cannot rename schema {old!r}")
        state.schemas = {(b, moved(n)) if b == bucket else (b, n) for b, n in state.schemas}
        for table in state.tables.values():
            if table.bucket == bucket:
                table.schema = moved(table.schema)

    return apply


def _op_create_table(table: _TableState) -> _Op:
    def apply(state: _State) -> None:
        if (table.bucket, table.schema) not in state.schemas or state.find_table(
            table.bucket, table.schema, table.name
        ):
            raise _Gone(f"cannot create table {table.name!r}")
        state.tables[table.handle] = table.copy()

    return apply


def _op_drop_table(handle: int) -> _Op:
    def apply(state: _State) -> None:
        state.table(handle)
        del state.tables[handle]

    return apply


def _op_table(handle: int, change: Callable[[_TableState], None]) -> _Op:
    def apply(state: _State) -> None:
        change(state.table(handle))

    return apply


def _schema_in_use(state: _State, bucket: str, name: str) -> bool:
    return bool(state.tables_in(bucket, name) or state.child_schemas(bucket, name))


def _require_columns(table: _TableState, fields: Iterable[pa.Field]) -> None:
    for f in fields:
        index = table.arrow_schema.get_field_index(f.name)
        if index < 0 or table.arrow_schema.field(index).type != f.type:
            raise _Gone(f"column {f.name!r} of type {f.type} is not in table {table.name!r}")


def _row_ids(table: _TableState) -> pa.Array:
    return table.data.column(ROW_ID).combine_chunks()


def _require_rows(table: _TableState, row_ids: pa.Array) -> None:
    missing = pc.invert(pc.is_in(row_ids, value_set=_row_ids(table)))
    if pc.any(missing).as_py():
        raise _Gone(f"rows {row_ids.filter(missing).to_pylist()} are not in table {table.name!r}")


def _change_rename_table(new_name: str) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        table.name = new_name

    return change


def _change_insert(rows: pa.Table, row_ids: pa.Array) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        _require_columns(table, rows.schema)
        n = rows.num_rows
        given = set(rows.column_names)
        columns = [
            rows.column(f.name) if f.name in given else pa.chunked_array([pa.nulls(n, f.type)])
            for f in table.arrow_schema
        ]
        new_rows = pa.Table.from_arrays(
            [*columns, pa.chunked_array([row_ids])], schema=_storage_schema(table.arrow_schema)
        )
        table.data = pa.concat_tables([table.data, new_rows])

    return change


def _change_update(row_ids: pa.Array, values: pa.RecordBatch) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        _require_columns(table, values.schema)
        _require_rows(table, row_ids)
        positions = pc.index_in(_row_ids(table), value_set=row_ids)  # NULL where the row is not updated
        hit = pc.is_valid(positions)
        columns = []
        for f in table.arrow_schema:
            old = table.data.column(f.name).combine_chunks()
            if f.name in values.schema.names:
                old = pc.if_else(hit, values.column(f.name).take(positions), old)
            columns.append(pa.chunked_array([old], type=f.type))
        table.rebuild(table.arrow_schema, columns)

    return change


def _change_delete(row_ids: pa.Array) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        _require_rows(table, row_ids)
        table.data = table.data.filter(pc.invert(pc.is_in(_row_ids(table), value_set=row_ids)))

    return change


def _change_add_columns(new_fields: pa.Schema) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        if any(name in table.arrow_schema.names for name in new_fields.names):
            raise _Gone(f"columns {new_fields.names} already exist")
        n = table.data.num_rows
        columns = [*table.data.columns[:-1], *(pa.chunked_array([pa.nulls(n, f.type)]) for f in new_fields)]
        table.rebuild(pa.schema([*table.arrow_schema, *new_fields]), columns)

    return change


def _change_drop_columns(names: list[str]) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        if any(name not in table.arrow_schema.names for name in names):
            raise _Gone(f"columns {names} do not exist")
        kept = [f for f in table.arrow_schema if f.name not in names]
        table.rebuild(pa.schema(kept), [table.data.column(f.name) for f in kept])

    return change


def _change_rename_column(old: str, new: str) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        names = table.arrow_schema.names
        if old not in names or new in names:
            raise _Gone(f"cannot rename column {old!r} to {new!r}")
        renamed = pa.schema([f.with_name(new) if f.name == old else f for f in table.arrow_schema])
        table.rebuild(renamed, table.data.columns[:-1])

    return change


def _change_projections(update: Callable[[dict[str, _ProjectionState]], None]) -> Callable[[_TableState], None]:
    def change(table: _TableState) -> None:
        update(table.projections)

    return change


# ---------------------------------------------------------------------------------------------------------------
# predicates: validated by the SDK's serializer, then evaluated over Arrow


def _column_name(node: Node) -> str:
    if not isinstance(node, Field):
        raise NotImplementedError(f"vast_fake evaluates predicates on top-level columns only, not {node!r}")
    return node.name


def _literal(pa_type: pa.DataType, value: Any) -> pa.Scalar:
    """The value the serializer puts on the wire for a column of this type (see `Predicate.build_literal_impl`)."""
    if pa.types.is_integer(pa_type):
        return pa.scalar(int(value), pa_type)
    if pa.types.is_float16(pa_type):
        return pa.scalar(np.float16(value), pa_type)
    if pa.types.is_floating(pa_type):
        return pa.scalar(float(value), pa_type)
    if pa.types.is_boolean(pa_type):
        return pa.scalar(value.lower() == "true" if isinstance(value, str) else bool(value), pa_type)
    if pa.types.is_decimal128(pa_type):
        return pa.scalar(Decimal(int(float(value) * 10**pa_type.scale)).scaleb(-pa_type.scale), pa_type)
    if (
        pa_type in (pa.string(), pa.binary(), pa.date32())
        or pa.types.is_timestamp(pa_type)
        or pa.types.is_time(pa_type)
    ):
        return pa.array([value], pa_type)[0]
    raise NotImplementedError(f"vast_fake cannot evaluate literals of type {pa_type}")


def _to_filter(node: Node, schema: pa.Schema) -> pc.Expression:
    """Arrow filter for an expression the serializer accepted (an AND of single-column ORs)."""
    if isinstance(node, And):
        return functools.reduce(operator.and_, (_to_filter(arg, schema) for arg in node.args))
    if isinstance(node, Or):
        return functools.reduce(operator.or_, (_to_filter(arg, schema) for arg in node.args))
    if isinstance(node, Not):  # the serializer only lets `~col.isnull()` through
        (inner,) = node.args
        return pc.field(_column_name(inner.args[0])).is_valid()
    name = _column_name(node.args[0])
    column, pa_type = pc.field(name), schema.field(name).type
    if isinstance(node, IsNull):
        return column.is_null()
    if type(node) in _COMPARISONS:
        return _COMPARISONS[type(node)](column, _literal(pa_type, node.args[1].value))
    if isinstance(node, InValues):  # one set lookup per row rather than an OR of equalities
        return column.isin(pa.array([_literal(pa_type, lit.value).as_py() for lit in node.args[1]], pa_type))
    if isinstance(node, Between):
        _, lower, upper = node.args
        return (column >= _literal(pa_type, lower.value)) & (column <= _literal(pa_type, upper.value))
    if isinstance(node, StartsWith):
        prefix = node.args[1].value
        return pc.starts_with(column, pattern=prefix) if prefix else column.is_valid()
    if isinstance(node, StringContains):
        return pc.match_substring(column, pattern=node.args[1].value)
    raise NotImplementedError(f"vast_fake cannot evaluate {node!r}")


def _unsupported_types(arrow_schema: pa.Schema) -> list[pa.Field]:
    """Fields the SDK cannot describe in a query request (its `build_field` raises), so no select could read them."""
    bad = []
    for f in arrow_schema:
        try:
            _internal.build_field(flatbuffers.Builder(256), f)
        except ValueError:
            bad.append(f)
    return bad


def _check_new_columns(arrow_schema: pa.Schema) -> None:
    """What the SDK (ibis check) and, as far as known, the server reject in a table's columns."""
    validate_ibis_support_schema(arrow_schema)
    if bad := _unsupported_types(arrow_schema):
        cause = _http_error(errors.BadRequest, 400, "TabularUnsupportedColumnType", f"unsupported columns: {bad}")
        raise errors.NotSupportedSchema(message=cause.message, cause=cause)
    if len(set(arrow_schema.names)) != len(arrow_schema.names) or ROW_ID in arrow_schema.names:
        raise _bad_request(f"invalid column names: {arrow_schema.names}")


# ---------------------------------------------------------------------------------------------------------------
# server, session, transaction


class FakeVast:
    """The fake cluster: buckets, committed state, conflict bookkeeping.  Thread-safe."""

    def __init__(
        self,
        *,
        buckets: Iterable[str] = (),
        access_key: str | None = None,
        secret_key: str | None = None,
        endpoint: str | None = None,
        seed: int = 0,
        max_batch_rows: int = 100,
    ) -> None:
        """`access_key`/`secret_key`/`endpoint` None accept anything; `seed` seeds each session's shuffling."""
        self.access_key = access_key
        self.secret_key = secret_key
        self.endpoint = endpoint
        self.seed = seed
        self.max_batch_rows = max_batch_rows
        self._buckets: set[str] = set(buckets)
        self._lock = threading.RLock()
        self._committed = _State()
        self._version = 0
        self._owners: dict[Hashable, int] = {}  # conflict key -> txid of the open transaction that wrote it
        self._changed_at: dict[Hashable, int] = {}  # conflict key -> version that last committed a write to it
        self._next_txid = 1
        self._next_handle = 1
        self._next_row_id: dict[int, int] = {}
        self._sessions = 0
        self._commits_to_fail = 0
        self._gate: threading.Barrier | None = None
        self._gate_places = 0

    def conflict_next_commits(self, count: int) -> None:
        """The next `count` commits of transactions that wrote something raise `Conflict` and apply nothing."""
        with self._lock:
            self._commits_to_fail = count

    def begin_together(self, count: int, timeout: float = 30.0) -> None:
        """The next `count` transactions to begin wait, with their snapshots taken, until all of them have begun
        (`timeout` only keeps a broken test from hanging)."""
        with self._lock:
            self._gate, self._gate_places = threading.Barrier(count, timeout=timeout), count

    def create_bucket(self, name: str) -> None:
        """What VMS does for a view with the DATABASE protocol (the SDK cannot)."""
        with self._lock:
            self._buckets.add(name)

    def connect(
        self,
        access: str | None = None,
        secret: str | None = None,
        endpoint: str | None = None,
        *,
        max_entities_per_page: int = 10_000,
        ssl_verify: bool = True,
        timeout: float | None = None,
        backoff_config: BackoffConfig | None = None,
        adbc_driver_path: str | None = None,
        end_user: str | None = None,
        config: SessionConfig | None = None,
    ) -> FakeSession:
        """`vastdb.connect`: same arguments and environment fallbacks; checks the keys like the version probe does."""
        effective_endpoint = endpoint if endpoint is not None else os.environ.get("AWS_S3_ENDPOINT_URL")
        if effective_endpoint is None:
            raise ValueError("One of endpoint and AWS_S3_ENDPOINT_URL env is required")
        access = os.environ["AWS_ACCESS_KEY_ID"] if access is None else access
        secret = os.environ["AWS_SECRET_ACCESS_KEY"] if secret is None else secret
        if self.endpoint is not None and effective_endpoint != self.endpoint:
            cause = requests.exceptions.ConnectionError(f"cannot connect to {effective_endpoint}")
            raise errors.ConnectionError(cause=cause, may_retry=True)
        if self.access_key is not None and access != self.access_key:
            raise self._forbidden(effective_endpoint, "InvalidAccessKeyId", "The access key does not exist.")
        if self.secret_key is not None and secret != self.secret_key:
            raise self._forbidden(effective_endpoint, "SignatureDoesNotMatch", "The request signature does not match.")
        with self._lock:
            self._sessions += 1
            rng = random.Random(self.seed * 1_000_003 + self._sessions)
        return FakeSession(self, access, secret, effective_endpoint, rng)

    def clone(self) -> FakeVast:
        """Another cluster with the same settings and a copy of the committed state (tests share a prepared store
        this way; Arrow data is immutable, so the copy is cheap)."""
        twin = FakeVast(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint=self.endpoint,
            seed=self.seed,
            max_batch_rows=self.max_batch_rows,
        )
        with self._lock:
            twin._buckets = set(self._buckets)
            twin._committed = self._committed.copy()
            twin._next_handle = self._next_handle
            twin._next_row_id = dict(self._next_row_id)
        return twin

    def read_committed(self, bucket: str, schema: str, table: str) -> pa.Table:
        """Committed rows of a table with their `$row_id`, in row id order: for assertions in tests."""
        with self._lock:
            found = self._committed.find_table(bucket, schema, table)
            if found is None:
                raise errors.MissingTable(bucket, schema, table)
            return found.data.sort_by(ROW_ID)

    @staticmethod
    def _forbidden(endpoint: str, code: str, message: str) -> errors.HttpError:
        url = f"{endpoint.rstrip('/')}/?transaction"
        return errors.Forbidden(
            code=code, message=message, method="GET", url=url, status=403, headers=CaseInsensitiveDict()
        )

    def _has_bucket(self, name: str) -> bool:
        with self._lock:
            return name in self._buckets

    def _new_handle(self) -> int:
        with self._lock:
            self._next_handle += 1
            return self._next_handle - 1

    def _allocate_row_ids(self, handle: int, count: int) -> pa.Array:
        with self._lock:
            first = self._next_row_id.get(handle, 0)
            self._next_row_id[handle] = first + count
        return pa.array(range(first, first + count), type=pa.uint64())

    def _begin(self, tx: FakeTransaction) -> None:
        with self._lock:
            tx.txid = self._next_txid
            self._next_txid += 1
            tx._state = self._committed.copy()
            tx._start_version = self._version
            gate = self._gate if self._gate_places > 0 else None
            self._gate_places -= gate is not None
        if gate is not None:
            gate.wait()

    def _claim(self, tx: FakeTransaction, keys: Iterable[Hashable]) -> None:
        """First writer wins: a key written by another open transaction, or since our snapshot, is a conflict."""
        keys = list(keys)
        with self._lock:
            for key in keys:
                owner = self._owners.get(key, tx.txid)
                if owner != tx.txid or self._changed_at.get(key, -1) > tx._start_version:
                    tx._doomed = True
                    raise _conflict(f"{key} was changed by a concurrent transaction")
            for key in keys:
                self._owners[key] = tx.active_txid
                tx._keys.add(key)

    def _commit(self, tx: FakeTransaction) -> None:
        with self._lock:
            try:
                if tx._doomed:
                    raise _conflict(f"transaction {tx.txid} conflicted with a concurrent transaction")
                if not tx._log:
                    return
                if self._commits_to_fail > 0:
                    self._commits_to_fail -= 1
                    raise _conflict(f"transaction {tx.txid} lost to a concurrent transaction (injected)")
                if self._version == tx._start_version:
                    new = tx._state  # nothing committed since our snapshot: it is the new state
                else:
                    new = self._committed.copy()
                    for op in tx._log:
                        try:
                            op(new)
                        except _Gone as e:
                            raise _conflict(f"transaction {tx.txid} conflicts at commit: {e}") from e
                self._version += 1
                self._committed = new
                for key in tx._keys:
                    self._changed_at[key] = self._version
            finally:
                self._end(tx)

    def _rollback(self, tx: FakeTransaction) -> None:
        with self._lock:
            self._end(tx)

    def _end(self, tx: FakeTransaction) -> None:
        for key in tx._keys:
            if self._owners.get(key) == tx.txid:
                del self._owners[key]
        tx.txid = None
        tx._state, tx._log, tx._keys, tx._doomed = _State(), [], set(), False


class FakeSession:
    """`vastdb.session.Session`: holds the credentials and starts transactions."""

    def __init__(self, server: FakeVast, access: str, secret: str, endpoint: str, rng: random.Random) -> None:
        self.access = access
        self.secret = secret
        self.endpoint = endpoint
        self.rng = rng  # shuffles `select` results; reseed it to vary the order in a test
        self._server = server

    def __repr__(self) -> str:
        """Don't show the secret key."""
        return f"{self.__class__.__name__}(endpoints=[{self.endpoint}], access={self.access})"

    def transaction(self) -> FakeTransaction:
        """A transaction to use as a context manager: commit on exit, rollback on exception."""
        return FakeTransaction(self)


class FakeTransaction:
    """`vastdb.transaction.Transaction`: a snapshot of the committed state plus this transaction's writes."""

    def __init__(self, session: FakeSession) -> None:
        self.txid: int | None = None
        self._session = session
        self._server = session._server
        self._state = _State()
        self._log: list[_Op] = []
        self._keys: set[Hashable] = set()
        self._start_version = 0
        self._doomed = False

    def __enter__(self) -> FakeTransaction:
        """Begin: take the snapshot."""
        self._server._begin(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """On success commit (may raise `errors.Conflict`); otherwise roll back and let the exception propagate."""
        if exc_type is None:
            self._server._commit(self)
        else:
            self._server._rollback(self)

    def __repr__(self) -> str:
        """Same form as the SDK."""
        return "InvalidTransaction" if self.txid is None else f"Transaction(id=0x{self.txid:016x})"

    @property
    def is_active(self) -> bool:
        """Whether the transaction is open."""
        return self.txid is not None

    @property
    def active_txid(self) -> int:
        """The open transaction's id; `TransactionNotActiveError` otherwise, as in the SDK."""
        if self.txid is None:
            raise TransactionNotActiveError()
        return self.txid

    def bucket(self, name: str) -> FakeBucket:
        """A bucket, if it exists (`MissingBucket` otherwise)."""
        self.active_txid  # noqa: B018 - raises outside a transaction
        if not self._server._has_bucket(name):
            raise errors.MissingBucket(name)
        return FakeBucket(name, self)

    def _view(self) -> _State:
        self.active_txid  # noqa: B018 - raises outside a transaction
        return self._state

    def _write(self, op: _Op, keys: Iterable[Hashable] = ()) -> None:
        self._server._claim(self, keys)
        try:
            op(self._state)
        except _Gone as e:
            raise _conflict(str(e)) from e
        self._log.append(op)


# ---------------------------------------------------------------------------------------------------------------
# bucket, schema, table, projection


@dataclass
class FakeBucket:
    """`vastdb.bucket.Bucket`: the root of the schemas."""

    name: str
    tx: FakeTransaction

    def create_schema(self, name: str, fail_if_exists: bool = True) -> FakeSchema:
        """A new schema in this bucket (`SchemaExists` if present and `fail_if_exists`)."""
        return FakeSchema("", self).create_schema(name, fail_if_exists=fail_if_exists)

    def schema(self, name: str, fail_if_missing: bool = True) -> FakeSchema | None:
        """A schema of this bucket (`MissingSchema`, or None when not `fail_if_missing`)."""
        return FakeSchema("", self).schema(name, fail_if_missing=fail_if_missing)

    def schemas(self, batch_size: int | None = None) -> list[FakeSchema]:
        """The bucket's top-level schemas, by name."""
        return FakeSchema("", self).schemas(batch_size=batch_size)


@dataclass
class FakeSchema:
    """`vastdb.schema.Schema`: `name` is the full name ("parent/child" when nested)."""

    name: str
    bucket: FakeBucket

    @property
    def tx(self) -> FakeTransaction:
        """The transaction this schema object belongs to."""
        return self.bucket.tx

    def _full(self, name: str) -> str:
        return f"{self.name}/{name}" if self.name else name

    def create_schema(self, name: str, fail_if_exists: bool = True) -> FakeSchema:
        """A child schema (`SchemaExists(bucket, name)` if present and `fail_if_exists`)."""
        if current := self.schema(name, fail_if_missing=False):
            if fail_if_exists:
                raise errors.SchemaExists(self.bucket.name, name)
            return current
        full = self._full(name)
        self.tx._write(_op_create_schema(self.bucket.name, full), [("schema", self.bucket.name, full)])
        return FakeSchema(full, self.bucket)

    def schema(self, name: str, fail_if_missing: bool = True) -> FakeSchema | None:
        """A child schema (`MissingSchema(bucket, full name)`, or None when not `fail_if_missing`)."""
        full = self._full(name)
        if (self.bucket.name, full) not in self.tx._view().schemas:
            if fail_if_missing:
                raise errors.MissingSchema(self.bucket.name, full)
            return None
        return FakeSchema(full, self.bucket)

    def schemas(self, batch_size: int | None = None) -> list[FakeSchema]:
        """Child schemas, by name."""
        return [FakeSchema(n, self.bucket) for n in self.tx._view().child_schemas(self.bucket.name, self.name)]

    def create_table(
        self,
        table_name: str,
        columns: pa.Schema,
        fail_if_exists: bool = True,
        use_external_row_ids_allocation: bool = False,
        sorting_key: Sequence[int] | Sequence[str] = (),
        vector_index: VectorIndexSpec | None = None,
        partition_spec: PartitionSpec | None = None,
    ) -> FakeTable:
        """A new regular table; an existing one is returned as is (whatever `columns`) unless `fail_if_exists`."""
        if current := self.table(table_name, fail_if_missing=False):
            if fail_if_exists:
                raise errors.TableExists(self.bucket.name, self.name, table_name)
            return current
        if use_external_row_ids_allocation or sorting_key or vector_index is not None or partition_spec is not None:
            raise NotImplementedError("vast_fake supports regular tables only")
        validate_ibis_support_schema(columns)
        if len(columns) != len(set(columns)):  # the SDK's own check, before the request
            raise ValueError(f"Arrow schema contains duplicate field names: {columns.names}")
        _check_new_columns(columns)
        handle = self.tx._server._new_handle()
        state = _TableState(
            handle, self.bucket.name, self.name, table_name, columns, _storage_schema(columns).empty_table()
        )
        self.tx._write(_op_create_table(state), [("table-name", self.bucket.name, self.name, table_name)])
        return self.table(table_name)  # type: ignore[return-value]

    def table(self, name: str, fail_if_missing: bool = True) -> FakeTable | None:
        """A table of this schema (`MissingTable`, or None when not `fail_if_missing`)."""
        found = self.tables(table_name=name)
        if not found:
            if fail_if_missing:
                raise errors.MissingTable(self.bucket.name, self.name, name)
            return None
        return found[0]

    def tables(self, table_name: str = "", page_size: int = 1000) -> list[FakeTable]:
        """All tables by name, or only `table_name` if given (exact match)."""
        found = self.tx._view().tables_in(self.bucket.name, self.name)
        return [
            FakeTable(self.tx, t.handle, self._ref(t.name)) for t in found if not table_name or t.name == table_name
        ]

    def tablenames(self, page_size: int = 1000) -> list[str]:
        """All table names."""
        return [t.name for t in self.tables(page_size=page_size)]

    def drop(self) -> None:
        """Drop this schema; `Conflict` while it still has tables or child schemas (as on a cluster)."""
        view = self.tx._view()
        if (self.bucket.name, self.name) not in view.schemas:
            raise errors.MissingSchema(self.bucket.name, self.name)
        if _schema_in_use(view, self.bucket.name, self.name):
            raise _conflict(f"schema {self.name!r} is not empty")
        self.tx._write(_op_drop_schema(self.bucket.name, self.name), [("schema", self.bucket.name, self.name)])

    def rename(self, new_name: str) -> None:
        """Rename this schema (`new_name` is the full name)."""
        keys = [("schema", self.bucket.name, self.name), ("schema", self.bucket.name, new_name)]
        if (self.bucket.name, new_name) in self.tx._view().schemas:
            raise _conflict(f"schema {new_name!r} exists")
        self.tx._write(_op_rename_schema(self.bucket.name, self.name, new_name), keys)
        self.name = new_name

    def _ref(self, table: str) -> TableRef:
        return TableRef(bucket=self.bucket.name, schema=self.name, table=table)


@dataclass
class FakeProjection:
    """`vastdb.table.Projection` (semi-sorted projection); it only records its columns here."""

    name: str
    table: FakeTable
    handle: int

    @property
    def tx(self) -> FakeTransaction:
        """The transaction this projection object belongs to."""
        return self.table.tx

    def columns(self) -> pa.Schema:
        """Sorted columns first, then unsorted ones."""
        state = self.table._table_state()
        projection = state.projections[self.name]
        names = [*projection.sorted_columns, *projection.unsorted_columns]
        return pa.schema([state.arrow_schema.field(n) for n in names])

    def rename(self, new_name: str) -> None:
        """Rename this projection."""
        old = self.name

        def update(projections: dict[str, _ProjectionState]) -> None:
            if old not in projections or new_name in projections:
                raise _Gone(f"cannot rename projection {old!r}")
            projections[new_name] = projections.pop(old)

        self.table._alter(_change_projections(update))
        self.name = new_name

    def drop(self) -> None:
        """Drop this projection."""
        name = self.name

        def update(projections: dict[str, _ProjectionState]) -> None:
            if projections.pop(name, None) is None:
                raise _Gone(f"projection {name!r} does not exist")

        self.table._alter(_change_projections(update))


class FakeTable:
    """`vastdb.table.Table` of a regular table, bound to one transaction."""

    def __init__(self, tx: FakeTransaction, handle: int, ref: TableRef) -> None:
        self._tx = tx
        self._handle = handle
        self._ref = ref
        self._ibis: tuple[pa.Schema, ibis.Table] | None = None

    def __eq__(self, other: object) -> bool:
        """Same table path, as in the SDK."""
        return isinstance(other, FakeTable) and self.ref == other.ref

    def __hash__(self) -> int:
        return hash(str(self._ref))

    def __repr__(self) -> str:
        return f"FakeTable({self._ref})"

    @property
    def ref(self) -> TableRef:
        """Bucket, schema and table names."""
        return self._ref

    @property
    def name(self) -> str:
        """Table name."""
        return self._ref.table

    @property
    def path(self) -> str:
        """ "bucket/schema/table"."""
        return self._ref.full_path

    @property
    def handle(self) -> int:
        """Stable id of the table (survives renames)."""
        return self._handle

    @property
    def tx(self) -> FakeTransaction:
        """The transaction this table object belongs to."""
        return self._tx

    @property
    def arrow_schema(self) -> pa.Schema:
        """The table's columns (without `$row_id`)."""
        return self._table_state().arrow_schema

    def columns(self) -> pa.Schema:
        """The table's columns, reloaded."""
        return self.arrow_schema

    def __getitem__(self, col_name: str) -> ibis.Column:
        """An ibis column to build predicates with, as the SDK's `table["col"]`."""
        return self._ibis_table()[col_name]

    # -- reads ------------------------------------------------------------------------------------------------

    def select(
        self,
        columns: list[str] | None = None,
        predicate: BooleanColumn | Deferred | bool | None = None,
        config: QueryConfig | None = None,
        *,
        internal_row_id: bool = False,
        limit_rows: int | None = None,
    ) -> pa.RecordBatchReader:
        """Matching rows in a shuffled order; the reader must be consumed inside the transaction."""
        state = self._table_state()
        if limit_rows is not None and limit_rows < 0:
            raise ValueError("limit_rows must be a non-negative integer or None")
        # From here on as `TableInTransaction._select_prepare` (including appending to the caller's `columns`).
        query_schema = state.arrow_schema
        select_columns = query_schema.names if columns is None else columns
        if internal_row_id:
            query_schema = pa.schema([ROW_ID_FIELD, *query_schema])
            select_columns.append(ROW_ID)
        if predicate is True:
            predicate = None
        if predicate is False:
            empty = _internal.get_response_schema(schema=query_schema, field_names=select_columns)
            return pa.RecordBatchReader.from_batches(empty, [])
        if isinstance(predicate, Deferred):
            predicate = predicate.resolve(self._ibis_table())
        request = _internal.build_query_data_request(
            schema=query_schema, predicate=predicate, field_names=select_columns
        )
        if len(request.serialized) > util.MAX_QUERY_DATA_REQUEST_SIZE:
            raise errors.TooLargeRequest(f"{len(request.serialized)} bytes")

        matched = state.data if predicate is None else state.data.filter(_to_filter(predicate.op(), query_schema))
        order = list(range(matched.num_rows))
        self._tx._session.rng.shuffle(order)
        if limit_rows:
            order = order[:limit_rows]
        names = request.response_schema.names
        picked = matched.take(pa.array(order, type=pa.int64())).select(
            [matched.schema.get_field_index(n) for n in names]
        )
        result = picked.cast(request.response_schema)
        return pa.RecordBatchReader.from_batches(request.response_schema, self._batches(result))

    def _batches(self, result: pa.Table) -> Iterator[pa.RecordBatch]:
        """Random batch sizes (stores must read every batch); `MissingTransaction` once the transaction is over."""
        tx, txid, rng = self._tx, self._tx.txid, self._tx._session.rng
        result = result.combine_chunks()
        sizes = []
        remaining = result.num_rows
        while remaining > 0:
            sizes.append(min(remaining, rng.randint(1, self._tx._server.max_batch_rows)))
            remaining -= sizes[-1]

        def generate() -> Iterator[pa.RecordBatch]:
            offset = 0
            for size in [*sizes, 0]:  # checks the transaction once more at the end, even for no rows
                if tx.txid != txid:
                    raise errors.MissingTransaction()
                if size:
                    yield from result.slice(offset, size).to_batches()
                offset += size

        return generate()

    # -- row writes -------------------------------------------------------------------------------------------

    def insert(self, rows: pa.RecordBatch | pa.Table, by_columns: bool = True) -> pa.ChunkedArray:
        """Append rows; returns their new `$row_id`s (uint64, allocated in order, never reused)."""
        state = self._table_state()
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        if table.num_rows == 0 or table.num_columns == 0:  # the SDK returns before any request
            return pa.chunked_array([], type=ROW_ID_FIELD.type)
        self._check_values(state, table.schema)
        row_ids = self._tx._server._allocate_row_ids(self._handle, table.num_rows)
        self._write_rows(_change_insert(table, row_ids))
        return pa.chunked_array([row_ids])

    def update(self, rows: pa.RecordBatch | pa.Table, columns: list[str] | None = None) -> None:
        """Set `columns` (default: all but `$row_id`) of the rows named by `$row_id`."""
        state = self._table_state()
        try:
            row_ids_chunk = rows[ROW_ID]
        except KeyError:
            raise errors.MissingRowIdColumn from None
        if columns is None:
            columns = [name for name in rows.schema.names if name != ROW_ID]
        fields = [ROW_ID_FIELD, *(rows.field(col) for col in columns)]
        values = [_combine(row_ids_chunk), *(_combine(rows[col]) for col in columns)]
        batch = pa.record_batch(schema=pa.schema(fields), data=values)  # built as the SDK builds its request
        self._check_values(state, pa.schema(fields[1:]))
        row_ids = batch.column(ROW_ID)
        self._check_rows(state, row_ids)
        self._write_rows(_change_update(row_ids, batch.drop_columns([ROW_ID])), self._row_keys(row_ids))

    def delete(self, rows: pa.RecordBatch | pa.Table) -> None:
        """Delete the rows named by `$row_id`."""
        state = self._table_state()
        try:
            row_ids_chunk = rows[ROW_ID]
        except KeyError:
            raise errors.MissingRowIdColumn from None
        row_ids = pa.record_batch(schema=pa.schema([ROW_ID_FIELD]), data=[_combine(row_ids_chunk)]).column(ROW_ID)
        self._check_rows(state, row_ids)
        self._write_rows(_change_delete(row_ids), self._row_keys(row_ids))

    # -- table changes ----------------------------------------------------------------------------------------

    def drop(self) -> None:
        """Drop this table."""
        self._table_state()
        self._tx._write(_op_drop_table(self._handle), [("table", self._handle), self._name_key(self.name)])

    def rename(self, new_name: str) -> None:
        """Rename this table."""
        self._table_state()
        if self._tx._view().find_table(self._ref.bucket, self._ref.schema, new_name):
            raise _conflict(f"table {new_name!r} exists")
        op = _op_table(self._handle, _change_rename_table(new_name))
        self._tx._write(op, [("table", self._handle), self._name_key(self.name), self._name_key(new_name)])
        self._ref = dataclasses.replace(self._ref, table=new_name)

    def add_column(self, new_column: pa.Schema) -> None:
        """Add the columns of `new_column` (NULL in existing rows)."""
        state = self._table_state()
        validate_ibis_support_schema(new_column)
        _check_new_columns(new_column)
        if set(new_column.names) & set(state.arrow_schema.names):
            raise _conflict(f"columns {new_column.names} already exist")
        self._alter(_change_add_columns(new_column))

    def drop_column(self, column_to_drop: pa.Schema) -> None:
        """Drop the columns named in `column_to_drop`."""
        state = self._table_state()
        if missing := [n for n in column_to_drop.names if n not in state.arrow_schema.names]:
            raise _bad_request(f"no such columns: {missing}")
        self._alter(_change_drop_columns(column_to_drop.names))

    def rename_column(self, current_column_name: str, new_column_name: str) -> None:
        """Rename a column."""
        state = self._table_state()
        if current_column_name not in state.arrow_schema.names:
            raise _bad_request(f"no such column: {current_column_name!r}")
        if new_column_name in state.arrow_schema.names or new_column_name == ROW_ID:
            raise _conflict(f"column {new_column_name!r} exists")
        self._alter(_change_rename_column(current_column_name, new_column_name))

    # -- projections ------------------------------------------------------------------------------------------

    def create_projection(
        self, projection_name: str, sorted_columns: list[str], unsorted_columns: list[str]
    ) -> FakeProjection:
        """A semi-sorted projection (recorded only: it changes no result)."""
        state = self._table_state()
        if missing := [n for n in [*sorted_columns, *unsorted_columns] if n not in state.arrow_schema.names]:
            raise _bad_request(f"no such columns: {missing}")
        if projection_name in state.projections:
            raise _conflict(f"projection {projection_name!r} exists")
        new = _ProjectionState(self._tx._server._new_handle(), list(sorted_columns), list(unsorted_columns))

        def update(projections: dict[str, _ProjectionState]) -> None:
            if projection_name in projections:
                raise _Gone(f"projection {projection_name!r} exists")
            projections[projection_name] = new

        self._alter(_change_projections(update))
        return self.projection(projection_name)

    def projection(self, name: str, include_stats: bool = True) -> FakeProjection:
        """A projection of this table (`MissingProjection` otherwise)."""
        found = self.projections(projection_name=name)
        if not found:
            raise errors.MissingProjection(self._ref.bucket, self._ref.schema, self._ref.table, name)
        return found[0]

    def projections(self, projection_name: str = "", include_stats: bool = True) -> list[FakeProjection]:
        """All projections by name, or only `projection_name` if given."""
        found = sorted(self._table_state().projections.items())
        return [FakeProjection(n, self, p.handle) for n, p in found if not projection_name or n == projection_name]

    # -- helpers ----------------------------------------------------------------------------------------------

    def _table_state(self) -> _TableState:
        state = self._tx._view().tables.get(self._handle)
        if state is None:
            raise _no_such_table(self._ref)
        return state

    def _ibis_table(self) -> ibis.Table:
        arrow_schema = self.arrow_schema
        if self._ibis is None or self._ibis[0] != arrow_schema:
            self._ibis = (arrow_schema, ibis.table(ibis.Schema.from_pyarrow(arrow_schema), self._ref.full_path))
        return self._ibis[1]

    def _write_rows(self, change: Callable[[_TableState], None], keys: Iterable[Hashable] = ()) -> None:
        self._tx._write(_op_table(self._handle, change), keys)

    def _alter(self, change: Callable[[_TableState], None]) -> None:
        """A change of the table itself (columns, projections): conflicts with any other such change."""
        self._tx._write(_op_table(self._handle, change), [("table", self._handle)])

    def _name_key(self, name: str) -> tuple[str, str, str, str]:
        return ("table-name", self._ref.bucket, self._ref.schema, name)

    def _row_keys(self, row_ids: pa.Array) -> list[tuple[str, int, int]]:
        return [("row", self._handle, rid) for rid in row_ids.to_pylist()]

    @staticmethod
    def _check_values(state: _TableState, fields: pa.Schema) -> None:
        for f in fields:
            index = state.arrow_schema.get_field_index(f.name)
            if index < 0:
                raise _bad_request(f"no such column: {f.name!r}")
            if state.arrow_schema.field(index).type != f.type:
                raise _bad_request(f"column {f.name!r} is {state.arrow_schema.field(index).type}, got {f.type}")
        if len(set(fields.names)) != len(fields.names):
            raise _bad_request(f"duplicate columns: {fields.names}")

    @staticmethod
    def _check_rows(state: _TableState, row_ids: pa.Array) -> None:
        try:
            _require_rows(state, row_ids)
        except _Gone as e:
            raise _bad_request(str(e)) from e


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


# -- what a store asks of a cluster -----------------------------------------------------------------------------


@dataclass(slots=True)
class SelectCount:
    """`select` calls, the rows they returned (what a cluster would ship) and the seconds the fake spent on them."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0


@contextmanager
def counting_selects() -> Iterator[SelectCount]:
    """Every `FakeTable.select` counted while inside."""
    count = SelectCount()
    original = FakeTable.select

    def select(self: FakeTable, *args: Any, **kwargs: Any) -> pa.RecordBatchReader:
        started = time.perf_counter()
        rows = original(self, *args, **kwargs).read_all()
        count.seconds += time.perf_counter() - started
        count.calls += 1
        count.rows += rows.num_rows
        return pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches())

    with mock.patch.object(FakeTable, "select", select):
        yield count
