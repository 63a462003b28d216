"""The metadata store on VAST Database (`vastdb` SDK, pyarrow tables), behaving exactly like the SQLite one.

What the SDK offers shapes everything here:
- predicates are ANDs of per-column ORs (`==`, ranges, `isin`, `isnull`): joins, ORs across columns, ORDER BY,
  OFFSET and aggregates happen in this process, on fetches bounded by the query (an entity id, a time window);
- `select` returns rows in no particular order and `limit_rows` is an arbitrary subset: listings sort and page
  (keyset) in the client; `limit_rows` only answers "are there more than n?";
- no primary keys: uniqueness is read-check-write in one transaction; writes in this process are serialised by a
  lock (as SQLite's single writer), and writes of other processes (API replicas) by VAST's write-write conflicts:
  a transaction that creates a keyed row also writes the key's stripe of `write_guards`, so two that both read
  "absent" cannot both commit; the loser gets `errors.Conflict` and the whole write is retried from a fresh
  snapshot (`_retried_on_conflict`); `update`/`delete` need `$row_id` from a select in the same transaction;
- segments of a flow never overlap, so a segment reaching into a window starts at most the flow's longest
  segment duration (`max_segment_ns`, kept on the flow row) before it: window queries are
  `flow_id == f AND start_ns in [start - max_segment_ns, end]`, fetched in growing slices until a page is full.
"""

from __future__ import annotations

import functools
import json
import operator
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import vastdb
from vastdb import errors

from .. import timerange as tr
from ..clock import Instant, instant_text, now
from ..errors import BadRequest, ConfigurationError, Forbidden, NotFound, Unavailable, error_json
from ..model import (
    DeletedFlow,
    DeleteRequest,
    DeleteRequestQuery,
    Deletion,
    Event,
    Flow,
    FlowQuery,
    FlowUsage,
    FlowWrite,
    FormatDistribution,
    NewSegment,
    ObjectUsage,
    Page,
    PageRequest,
    Profile,
    ProfileQuery,
    ReleasedMedia,
    Segment,
    SegmentFailure,
    SegmentPage,
    SegmentQuery,
    ServiceInfo,
    Source,
    SourceQuery,
    StorageUsage,
    StoredObject,
    TagFilter,
    Tags,
    TagValue,
    TimerangeAnalysis,
    Webhook,
    WebhookQuery,
    segment_record,
)
from .shared import (
    REQUEST_COLUMNS,
    bindable,
    decode_key,
    decode_segment_key,
    delete_request_from_row,
    encode_key,
    flow_columns,
    format_counts,
    instances_by_storage_id,
    instances_left,
    profile_document,
    profile_from_row,
    reuse_problem,
    sign,
    storage_ids_column,
    storage_ids_from_column,
    tag_values,
    timerange_analysis,
)
from .vast_schema import GUARD_STRIPES, ROW_ID, TABLES, ensure_schema

P = ParamSpec("P")
R = TypeVar("R")

_CHUNK = 500  # values per `isin`, far below the SDK's request size limit
CONFLICT_ATTEMPTS = 6  # tries of a write that concurrent writers keep beating, before answering 503
CONFLICT_BACKOFF_S = 0.02  # the first retry waits up to this (full jitter), doubling with each attempt
_ACTIVE = ["created", "started"]
_CONTAINER_IN_JSON = r'"container":\s*"(?P<container>(?:[^"\\]|\\.)*)"'


# -- connecting -----------------------------------------------------------------------------------------------------


def open_session(
    endpoint: str,
    access_key: str,
    secret_key: str,
    connect: Callable[..., Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """A vastdb Session (connecting checks the server and the keys); bad ones fail here, naming the setting."""
    connect = connect or vastdb.connect  # looked up now, so that tests can replace `vastdb.connect`
    try:
        return connect(access=access_key, secret=secret_key, endpoint=endpoint, timeout=timeout)
    except errors.ConnectionError as error:
        raise ConfigurationError(f"TAMS_VAST_ENDPOINT: cannot connect to VAST at {endpoint} ({error})") from None
    except errors.Forbidden as error:
        raise ConfigurationError(
            f"TAMS_VAST_ACCESS_KEY / TAMS_VAST_SECRET_KEY: VAST at {endpoint} refused them ({error.code})"
        ) from None
    except errors.HttpError as error:
        raise ConfigurationError(
            f"TAMS_VAST_ENDPOINT: VAST at {endpoint} answered {error.status} {error.code}"
        ) from None


# -- rows -------------------------------------------------------------------------------------------------------


def _all(*predicates: Any) -> Any:
    """AND of predicates (None when there is none: every row)."""
    given = [predicate for predicate in predicates if predicate is not None]
    return functools.reduce(operator.and_, given) if given else None


def _eq(table: Any, column: str, value: Any) -> Any:
    """`table[column] == value` as a predicate (also for booleans, which linters want compared otherwise)."""
    return table[column] == value


def _select(
    table: Any, predicate: Any = None, columns: Sequence[str] | None = None, row_ids: bool = False, limit: int = 0
) -> list[dict[str, Any]]:
    """Matching rows as dicts (in no order), every batch read inside the transaction."""
    names = list(columns) if columns is not None else None  # a copy: the SDK appends "$row_id" to the list
    reader = table.select(columns=names, predicate=predicate, internal_row_id=row_ids, limit_rows=limit or None)
    return reader.read_all().to_pylist()


def _select_in(
    table: Any,
    column: str,
    values: Iterable[Any],
    predicate: Any = None,
    columns: Sequence[str] | None = None,
    row_ids: bool = False,
) -> list[dict[str, Any]]:
    """Rows whose `column` is one of `values` (and match `predicate`), in chunks; none for no values."""
    values = sorted(set(values))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        rows += _select(table, _all(table[column].isin(chunk), predicate), columns, row_ids)
    return rows


def _arrow(table: Any, predicate: Any = None, columns: Sequence[str] | None = None) -> pa.Table:
    """Matching rows as one Arrow table (for Arrow compute, not Python loops)."""
    return table.select(columns=list(columns) if columns else None, predicate=predicate).read_all()


def _grouped(
    t: _Tx,
    name: str,
    columns: Sequence[str],
    keys: list[str],
    counted: str,
    derive: Callable[[pa.Table], pa.Table] = lambda data: data,
) -> pa.Table:
    """Per group of `keys` over every row of a table: the count of `counted` (`{counted}_count`) and, for a
    numeric column, its sum (`{counted}_sum`). Aggregated batch by batch as the select streams them, so memory
    holds one batch and the partial results, never the whole table."""
    empty = derive(TABLES[name].empty_table().select(list(columns)))
    summed = pa.types.is_integer(empty.schema.field(counted).type)
    aggregations = [(counted, "count"), *([(counted, "sum")] if summed else [])]
    partials = [
        derive(pa.Table.from_batches([batch])).group_by(keys).aggregate(aggregations)
        for batch in t[name].select(columns=list(columns))
    ] or [empty.group_by(keys).aggregate(aggregations)]
    names = [f"{counted}_count", *([f"{counted}_sum"] if summed else [])]
    combined = pa.concat_tables(partials).group_by(keys).aggregate([(column, "sum") for column in names])
    return combined.select([*keys, *(f"{column}_sum" for column in names)]).rename_columns([*keys, *names])


def _with_duration(segments: pa.Table) -> pa.Table:
    """Segments with `duration`: end - start of their closed nanosecond bounds, plus one."""
    return segments.append_column("duration", pc.add(pc.subtract(segments["end_ns"], segments["start_ns"]), 1))


def _insert(table: Any, name: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        table.insert(pa.Table.from_pylist(rows, schema=TABLES[name]))


def _update(table: Any, name: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Set `columns` of rows selected with their `$row_id`."""
    if not rows:
        return
    fields = [pa.field(ROW_ID, pa.uint64()), *(TABLES[name].field(column) for column in columns)]
    data = {field.name: [row[field.name] for row in rows] for field in fields}
    table.update(pa.Table.from_pydict(data, schema=pa.schema(fields)), columns=list(columns))


def _delete(table: Any, rows: list[dict[str, Any]]) -> int:
    if rows:
        table.delete(pa.table({ROW_ID: pa.array([row[ROW_ID] for row in rows], pa.uint64())}))
    return len(rows)


def _guard(t: _Tx, *keys: str) -> None:
    """Make this transaction conflict with every concurrent one guarding one of `keys` (first writer wins): it
    writes their stripes of `write_guards`. VAST has no unique keys; without this, two transactions that both
    read "absent" would both insert."""
    stripes = sorted({zlib.crc32(key.encode()) % GUARD_STRIPES for key in keys})
    table = t["write_guards"]
    rows = _select(table, table["stripe"].isin(stripes), row_ids=True)
    if {row["stripe"] for row in rows} != set(stripes):
        raise RuntimeError(f"VAST table write_guards lacks stripes of {keys}: run `tams-api provision vast`")
    for row in rows:
        row["writes"] += 1
    _update(table, "write_guards", rows, ["writes"])


def _retried_on_conflict(method: Callable[Concatenate[VastMetadataStore, P], R]) -> Callable[..., R]:
    """A write method run again, on a fresh snapshot, when its transaction lost to a concurrent writer: VAST
    raises `errors.Conflict` (HTTP 409) on the losing write or commit and applies nothing of it. The SDK retries
    no conflict itself. After CONFLICT_ATTEMPTS tries, `Unavailable` (503). Every writing method has this:
    `_write` refuses to run outside it."""

    @functools.wraps(method)
    def retrying(self: VastMetadataStore, *args: P.args, **kwargs: P.kwargs) -> R:
        self._retrying.active = True
        try:
            for attempt in range(1, CONFLICT_ATTEMPTS):
                try:
                    return method(self, *args, **kwargs)
                except errors.Conflict:
                    time.sleep(random.uniform(0, CONFLICT_BACKOFF_S * 2 ** (attempt - 1)))
            try:
                return method(self, *args, **kwargs)
            except errors.Conflict:
                raise Unavailable(
                    f"concurrent writers changed the same data {CONFLICT_ATTEMPTS} times in a row; nothing was "
                    "changed, try again"
                ) from None
        finally:
            self._retrying.active = False

    return retrying


def _page(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], tuple], descending: bool, page: PageRequest
) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page of rows sorted by `key` (unique per row), and the next page's key."""
    keyed = sorted(((key(row), row) for row in rows), key=operator.itemgetter(0), reverse=descending)
    if page.key is not None:
        width = len(key(_KEY_PROBE))
        after = tuple(decode_key(page.key, width))
        if keyed and any(type(a) is not type(b) for a, b in zip(after, keyed[0][0], strict=True)):
            raise BadRequest(f"invalid page key {page.key!r}: it belongs to another listing or sort order")
        keyed = [(k, row) for k, row in keyed if (k < after if descending else k > after)]
    items = keyed[: page.limit]
    next_key = encode_key(list(items[-1][0])) if len(keyed) > page.limit else None
    return [row for _, row in items], next_key


class _Probe(dict):
    """A row where every column holds a placeholder: `len(key(_KEY_PROBE))` is the width of a sort key."""

    def __missing__(self, column: str) -> int:
        return 0


_KEY_PROBE = _Probe()


def _sort(sort_by: str, reverse: bool) -> tuple[Callable[[dict[str, Any]], tuple], bool]:
    """The keyset of a listing's sort, as the SQLite store orders it; (key, descending)."""
    if sort_by == "label":
        # Resources without a label sort by id, after the labelled ones (before them when reversed).
        return (lambda row: (int(row["label"] is None), row["label"] or row["id"], row["id"])), reverse
    column = f"{sort_by}_ns"
    return (lambda row: (row[column], row["id"])), not reverse


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class _Tx:
    """The store's tables within one transaction, looked up on first use."""

    def __init__(self, tx: Any, bucket: str, schema: str) -> None:
        self._tx = tx
        self._bucket = bucket
        self._schema_name = schema
        self._schema: Any = None
        self._tables: dict[str, Any] = {}
        self.listening: bool | None = None  # whether a webhook listens, once asked

    def __getitem__(self, name: str) -> Any:
        if name not in self._tables:
            if self._schema is None:
                self._schema = self._tx.bucket(self._bucket).schema(self._schema_name)
            self._tables[name] = self._schema.table(name)
        return self._tables[name]


class VastMetadataStore:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        schema: str = "tams",
        connect: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.bucket = bucket
        self.schema = schema
        self.session = open_session(endpoint, access_key, secret_key, connect, timeout)
        self.schema_upgrade, _ = ensure_schema(self.session, bucket, schema)
        self._write_lock = threading.Lock()
        self._retrying = threading.local()  # `active` while a write method runs under `_retried_on_conflict`

    # -- transactions -----------------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[_Tx]:
        with self._transaction() as t:
            yield t

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """One writer in this process at a time (no conflicts among our own requests); conflicts with other
        processes are retried by `_retried_on_conflict`, which every writing method has."""
        if not getattr(self._retrying, "active", False):
            raise RuntimeError("a VAST write outside _retried_on_conflict: its conflicts would not be retried")
        with self._write_lock, self._transaction() as t:
            yield t

    @contextmanager
    def _transaction(self) -> Iterator[_Tx]:
        try:
            with self.session.transaction() as tx:
                yield _Tx(tx, self.bucket, self.schema)
        except (errors.MissingSchema, errors.MissingTable) as error:
            raise RuntimeError(
                f"VAST {self.bucket}/{self.schema}: {error!r} is missing: run `tams-api provision vast`"
            ) from None

    def close(self) -> None:
        """The SDK's session holds no resources that need closing."""

    def probe(self) -> None:
        with self._read() as t:
            _select(t["leases"], columns=["name"], limit=1)

    # -- service ----------------------------------------------------------------------------------------------

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

    def get_profile(self, profile_id: str) -> Profile | None:
        with self._read() as t:
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

    @_retried_on_conflict
    def create_profile(self, profile: Profile) -> None:
        metadata = profile.flow_metadata
        with self._write() as t:
            _guard(t, f"profile {profile.id}")
            table = t["profiles"]
            if _select(table, table["id"] == profile.id, ["id"]):
                raise BadRequest(f"profile {profile.id} exists already; profiles cannot be changed, create a new one")
            row = {
                "id": profile.id,
                "format": metadata.get("format"),
                "codec": metadata.get("codec"),
                "label": profile.details.get("label"),
                "created": profile.created,
                "document": profile_document(profile),
            }
            _insert(table, "profiles", [row])

    # -- tags -------------------------------------------------------------------------------------------------

    @staticmethod
    def _load_tags(t: _Tx, kind: str, ids: Sequence[str]) -> dict[str, Tags]:
        result: dict[str, Tags] = {entity_id: {} for entity_id in ids}
        table = t["tags"]
        for row in _select_in(table, "entity_id", ids, table["kind"] == kind, ["entity_id", "name", "value"]):
            result[row["entity_id"]][row["name"]] = json.loads(row["value"])
        return result

    def _put_tag(self, t: _Tx, kind: str, entity_id: str, name: str, value: TagValue) -> None:
        self._delete_tag(t, kind, entity_id, name)
        _insert(t["tags"], "tags", [{"kind": kind, "entity_id": entity_id, "name": name, "value": json.dumps(value)}])
        items = sorted(set(tag_values(value)))
        rows = [{"kind": kind, "name": name, "value": item, "entity_id": entity_id} for item in items]
        _insert(t["tag_values"], "tag_values", rows)

    @staticmethod
    def _delete_tag(t: _Tx, kind: str, entity_id: str, name: str) -> bool:
        deleted = 0
        for table_name in ("tag_values", "tags"):
            table = t[table_name]
            where = _all(table["kind"] == kind, table["entity_id"] == entity_id, table["name"] == name)
            deleted = _delete(table, _select(table, where, ["name"], row_ids=True))
        return deleted > 0

    def _replace_tags(self, t: _Tx, kind: str, entity_id: str, tags: Tags) -> None:
        self._delete_all_tags(t, kind, entity_id)
        tag_rows = [{"kind": kind, "entity_id": entity_id, "name": n, "value": json.dumps(v)} for n, v in tags.items()]
        _insert(t["tags"], "tags", tag_rows)
        value_rows = [
            {"kind": kind, "name": name, "value": item, "entity_id": entity_id}
            for name, value in tags.items()
            for item in sorted(set(tag_values(value)))
        ]
        _insert(t["tag_values"], "tag_values", value_rows)

    @staticmethod
    def _delete_all_tags(t: _Tx, kind: str, entity_id: str) -> None:
        for table_name in ("tag_values", "tags"):
            table = t[table_name]
            _delete(table, _select(table, _all(table["kind"] == kind, table["entity_id"] == entity_id), ["kind"], True))

    @staticmethod
    def _tag_match(t: _Tx, kind: str, tags: TagFilter) -> Callable[[str], bool]:
        """Whether an entity passes a tag filter, from the few tag rows the filter names."""
        include: set[str] | None = None
        exclude: set[str] = set()
        for name, values in tags.values.items():
            table = t["tag_values"]
            where = _all(table["kind"] == kind, table["name"] == name)
            found = {row["entity_id"] for row in _select_in(table, "value", values, where, ["entity_id"])}
            include = found if include is None else include & found
        for name, exists in tags.exists.items():
            table = t["tags"]
            found = {row["entity_id"] for row in _select(table, _all(table["kind"] == kind, table["name"] == name))}
            if exists:
                include = found if include is None else include & found
            else:
                exclude |= found
        return lambda entity_id: (include is None or entity_id in include) and entity_id not in exclude

    # -- sources ----------------------------------------------------------------------------------------------

    @staticmethod
    def _flow_sources(t: _Tx, flow_ids: Iterable[str]) -> dict[str, str]:
        return {
            row["id"]: row["source_id"] for row in _select_in(t["flows"], "id", flow_ids, None, ["id", "source_id"])
        }

    def _source_links(self, t: _Tx, source_ids: Sequence[str]) -> dict[str, tuple[list[str], list[str]]]:
        """Per source: the sources its flows collect, and the sources whose flows collect its flows (flows that
        are not soft-deleted)."""
        own = self._live_flow_sources(t, source_ids)
        collections = t["flow_collections"]
        as_collector = _select_in(collections, "collector_id", own, None, ["collector_id", "member_id"])
        as_member = _select_in(collections, "member_id", own, None, ["collector_id", "member_id"])
        linked = {row["member_id"] for row in as_collector} | {row["collector_id"] for row in as_member}
        others = self._flow_sources(t, linked - self._hidden(t, linked))
        members: dict[str, set[str]] = {source_id: set() for source_id in source_ids}
        collectors: dict[str, set[str]] = {source_id: set() for source_id in source_ids}
        for row in as_collector:
            source_id, member = own[row["collector_id"]], others.get(row["member_id"])
            if member is not None and member != source_id:
                members[source_id].add(member)
        for row in as_member:
            source_id, collector = own[row["member_id"]], others.get(row["collector_id"])
            if collector is not None and collector != source_id:
                collectors[source_id].add(collector)
        return {source_id: (sorted(members[source_id]), sorted(collectors[source_id])) for source_id in source_ids}

    def _live_flow_sources(self, t: _Tx, source_ids: Iterable[str]) -> dict[str, str]:
        """The source of each flow of these sources that is not soft-deleted."""
        flows = _select_in(t["flows"], "source_id", source_ids, None, ["id", "source_id"])
        hidden = self._hidden(t, [row["id"] for row in flows])
        return {row["id"]: row["source_id"] for row in flows if row["id"] not in hidden}

    def _visible_sources(self, t: _Tx, source_ids: Iterable[str]) -> set[str]:
        """Those of the sources that exist for clients: a flow that is not soft-deleted names them."""
        return set(self._live_flow_sources(t, source_ids).values())

    @staticmethod
    def _hidden(t: _Tx, flow_ids: Iterable[str]) -> set[str]:
        """Those of the flows that are soft-deleted."""
        return {row["flow_id"] for row in _select_in(t["deleted_flows"], "flow_id", flow_ids, None, ["flow_id"])}

    def _sources_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Source]:
        ids = [row["id"] for row in rows]
        tags = self._load_tags(t, "source", ids)
        links = self._source_links(t, ids)
        return [
            Source(
                id=row["id"],
                format=row["format"],
                label=row["label"],
                description=row["description"],
                created_by=row["created_by"],
                updated_by=row["updated_by"],
                created=row["created"],
                updated=row["updated"],
                tags=tags[row["id"]],
                source_collection=[{"id": member} for member in links[row["id"]][0]],
                collected_by=links[row["id"]][1],
            )
            for row in rows
        ]

    def _source_rows(self, t: _Tx, source_id: str) -> list[dict[str, Any]]:
        table = t["sources"]
        return _select(table, table["id"] == source_id, row_ids=True)

    def get_source(self, source_id: str) -> Source | None:
        with self._read() as t:
            rows = self._source_rows(t, source_id) if self._visible_sources(t, [source_id]) else []
            found = self._sources_from_rows(t, rows)
        return found[0] if found else None

    def list_sources(self, query: SourceQuery) -> Page[Source]:
        with self._read() as t:
            table = t["sources"]
            conditions = [table[c] == getattr(query, c) for c in ("label", "format") if getattr(query, c) is not None]
            rows = _select(table, _all(*conditions), ["id", "label", "created_ns", "updated_ns"])
            match = self._tag_match(t, "source", query.tags)
            rows = [row for row in rows if match(row["id"])]
            visible = self._visible_sources(t, [row["id"] for row in rows])
            rows = [row for row in rows if row["id"] in visible]
            if query.collected_by_ids is not None:
                links = self._source_links(t, [row["id"] for row in rows])
                wanted = set(query.collected_by_ids)
                rows = [
                    row for row in rows if (set(links[row["id"]][1]) & wanted if wanted else not links[row["id"]][1])
                ]
            key, descending = _sort(query.sort_by, query.page.reverse)
            page_rows, next_key = _page(rows, key, descending, query.page)
            full = {row["id"]: row for row in _select_in(table, "id", [row["id"] for row in page_rows])}
            items = self._sources_from_rows(t, [full[row["id"]] for row in page_rows])
        return Page(items, next_key, query.page.limit)

    def set_source_property(self, source_id: str, name: str, value: str | None, updated_by: str | None) -> None:
        assert name in ("label", "description")
        self._update_source(source_id, {name: value, "updated_by": updated_by})

    def set_source_tag(self, source_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        def change(t: _Tx) -> None:
            if value is not None:
                self._put_tag(t, "source", source_id, name, value)
            elif not self._delete_tag(t, "source", source_id, name):
                raise NotFound(f"source {source_id} has no tag {name!r}")

        self._update_source(source_id, {"updated_by": updated_by}, change)

    @_retried_on_conflict
    def _update_source(
        self, source_id: str, values: dict[str, Any], change: Callable[[_Tx], None] | None = None
    ) -> None:
        stamp = now()
        with self._write() as t:
            rows = self._source_rows(t, source_id)
            if not rows or not self._visible_sources(t, [source_id]):
                raise NotFound(f"source {source_id} does not exist")
            for row in rows:
                row.update(values, updated=stamp.text, updated_ns=stamp.ns)
            _update(t["sources"], "sources", rows, [*values, "updated", "updated_ns"])
            if change is not None:
                change(t)
            self._emit_source(t, "sources/updated", source_id)

    # -- flows ------------------------------------------------------------------------------------------------

    def _flows_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Flow]:
        ids = [row["id"] for row in rows]
        tags = self._load_tags(t, "flow", ids)
        collections = t["flow_collections"]
        as_collector = _select_in(
            collections, "collector_id", ids, None, ["collector_id", "position", "member_id", "item"]
        )
        as_member = _select_in(collections, "member_id", ids, None, ["collector_id", "member_id"])
        hidden = self._hidden(
            t, {row["member_id"] for row in as_collector} | {row["collector_id"] for row in as_member}
        )
        items: dict[str, list[tuple[int, Any]]] = {flow_id: [] for flow_id in ids}
        for row in as_collector:
            if row["member_id"] not in hidden:
                items[row["collector_id"]].append((row["position"], json.loads(row["item"])))
        collected_by: dict[str, set[str]] = {flow_id: set() for flow_id in ids}
        for row in as_member:
            if row["collector_id"] not in hidden:
                collected_by[row["member_id"]].add(row["collector_id"])
        return [
            Flow(
                id=row["id"],
                source_id=row["source_id"],
                metadata=json.loads(row["metadata"]),
                created=row["created"],
                metadata_updated=row["metadata_updated"],
                segments_updated=row["segments_updated"],
                tags=tags[row["id"]],
                flow_collection=[item for _, item in sorted(items[row["id"]], key=operator.itemgetter(0))],
                collected_by=sorted(collected_by[row["id"]]),
            )
            for row in rows
        ]

    def _flow_row(self, t: _Tx, flow_id: str, hidden_too: bool = False) -> dict[str, Any] | None:
        """The flow's row; None when there is none, or when it is soft-deleted (unless `hidden_too`)."""
        table = t["flows"]
        rows = _select(table, table["id"] == flow_id, row_ids=True)
        if not rows or (not hidden_too and self._hidden(t, [flow_id])):
            return None
        return rows[0]

    def get_flow(self, flow_id: str) -> Flow | None:
        with self._read() as t:
            row = self._flow_row(t, flow_id)
            return self._flows_from_rows(t, [row])[0] if row else None

    def list_flows(self, query: FlowQuery) -> Page[Flow]:
        with self._read() as t:
            table = t["flows"]
            conditions = []
            for column in (
                "source_id",
                "format",
                "codec",
                "profile_id",
                "label",
                "status",
                "frame_width",
                "frame_height",
            ):
                value = getattr(query, column)
                if value is not None:
                    if not bindable(value):
                        raise BadRequest(f"{column} is outside the 64-bit integer range the service stores")
                    conditions.append(table[column] == value)
            if query.init_segments is not None:
                conditions.append(table["init_segments"] == int(query.init_segments))
            if query.timerange is not None:
                if query.timerange.is_empty:
                    conditions.append(table["seg_start_ns"].isnull())  # an empty range selects flows with no content
                else:
                    conditions.append(table["seg_start_ns"] <= query.timerange.end)
                    conditions.append(table["seg_end_ns"] >= query.timerange.start)
            rows = _select(table, _all(*conditions), ["id", "label", "created_ns", "metadata_updated_ns"])
            match = self._tag_match(t, "flow", query.tags)
            rows = [row for row in rows if match(row["id"])]
            hidden = self._hidden(t, [row["id"] for row in rows])
            rows = [row for row in rows if row["id"] not in hidden]
            if query.collected_by_ids is not None:
                rows = self._collected_by_filter(t, rows, query.collected_by_ids)
            key, descending = _sort(query.sort_by, query.page.reverse)
            page_rows, next_key = _page(rows, key, descending, query.page)
            full = {row["id"]: row for row in _select_in(table, "id", [row["id"] for row in page_rows])}
            items = self._flows_from_rows(t, [full[row["id"]] for row in page_rows])
        return Page(items, next_key, query.page.limit)

    def _collected_by_filter(
        self, t: _Tx, rows: list[dict[str, Any]], collector_ids: list[str]
    ) -> list[dict[str, Any]]:
        """Flows collected by one of `collector_ids`; with none given, flows no flow collects (soft-deleted
        collectors collect nothing)."""
        collections = t["flow_collections"]
        if collector_ids:
            found = _select_in(collections, "collector_id", collector_ids, None, ["collector_id", "member_id"])
        else:
            found = _select_in(
                collections, "member_id", [row["id"] for row in rows], None, ["collector_id", "member_id"]
            )
        hidden = self._hidden(t, {row["collector_id"] for row in found})
        members = {row["member_id"] for row in found if row["collector_id"] not in hidden}
        return [row for row in rows if (row["id"] in members) == bool(collector_ids)]

    def _writable_flow(self, t: _Tx, flow_id: str) -> dict[str, Any]:
        row = self._flow_row(t, flow_id)
        if row is None:
            raise NotFound(f"flow {flow_id} does not exist")
        if row["read_only"]:
            raise Forbidden(f"flow {flow_id} is read-only")
        return row

    def _check_collection(self, t: _Tx, flow_id: str, collection: list[dict[str, Any]]) -> None:
        existing = {
            row["id"] for row in _select_in(t["flows"], "id", [item["id"] for item in collection], None, ["id"])
        }
        existing -= self._hidden(t, existing)
        for item in collection:
            if item["id"] == flow_id:
                raise BadRequest("a flow cannot collect itself")
            if item["id"] not in existing:
                raise BadRequest(f"flow_collection names flow {item['id']}, which does not exist")

    @staticmethod
    def _write_collection(t: _Tx, flow_id: str, collection: list[dict[str, Any]]) -> None:
        table = t["flow_collections"]
        _delete(table, _select(table, table["collector_id"] == flow_id, ["position"], row_ids=True))
        rows = [
            {"collector_id": flow_id, "position": position, "member_id": item["id"], "item": json.dumps(item)}
            for position, item in enumerate(collection)
        ]
        _insert(table, "flow_collections", rows)

    def _touch_metadata(self, t: _Tx, row: dict[str, Any], metadata: dict[str, Any], updated_by: str | None) -> None:
        """Store changed metadata with a new metadata_version, metadata_updated and updated_by."""
        stamp = now()
        sign(metadata, updated_by, metadata)
        metadata["metadata_version"] = str(uuid.uuid4())
        columns = flow_columns(metadata["format"], metadata)
        row.update(columns, metadata=json.dumps(metadata), metadata_updated=stamp.text, metadata_updated_ns=stamp.ns)
        _update(t["flows"], "flows", [row], [*columns, "metadata", "metadata_updated", "metadata_updated_ns"])
        if self._listening(t):
            flow = self._flows_from_rows(t, [row])[0]
            self._emit(t, "flows/updated", {"flow": flow.to_json()}, flow_id=row["id"])

    @_retried_on_conflict
    def put_flow(self, flow: FlowWrite) -> tuple[Flow, bool]:
        stamp = now()
        metadata = dict(flow.metadata)
        metadata["format"] = flow.format
        with self._write() as t:
            _guard(t, f"flow {flow.id}", f"source {flow.source_id}")  # the flow and its source may be created
            # A soft-deleted flow of that id is purged now: to clients it is deleted, and a PUT creates the flow anew.
            hidden = self._flow_row(t, flow.id, hidden_too=True)
            if hidden is not None and self._hidden(t, [flow.id]):
                self._drop_flow(t, hidden)
            existing = self._flow_row(t, flow.id)
            if existing is not None and existing["read_only"]:
                raise Forbidden(f"flow {flow.id} is read-only")
            self._check_collection(t, flow.id, flow.flow_collection)
            new_source = self._ensure_source(t, flow, stamp)
            previous = json.loads(existing["metadata"]) if existing else None
            sign(metadata, flow.author, previous)
            # A client may set metadata_version (e.g. carried over from another store); otherwise a change
            # of metadata gets a new one.
            previous_version = previous.get("metadata_version") if previous else None
            if metadata.get("metadata_version") in (None, previous_version):
                metadata["metadata_version"] = str(uuid.uuid4())
            values = {
                "source_id": flow.source_id,
                **flow_columns(flow.format, metadata),
                "metadata": json.dumps(metadata),
                "metadata_updated": stamp.text,
                "metadata_updated_ns": stamp.ns,
            }
            if existing is None:
                row = {"id": flow.id, **values, "created": stamp.text, "created_ns": stamp.ns, "max_segment_ns": 0}
                _insert(t["flows"], "flows", [row])
            else:
                row = {**existing, **values}
                _update(t["flows"], "flows", [row], list(values))
                if existing["source_id"] != flow.source_id:
                    self._source_left(t, existing["source_id"])
            self._replace_tags(t, "flow", flow.id, flow.tags)
            self._write_collection(t, flow.id, flow.flow_collection)
            stored = self._flows_from_rows(t, [{**TABLE_DEFAULTS["flows"], **row}])[0]
            if self._listening(t):
                if new_source:
                    self._emit_source(t, "sources/created", flow.source_id)
                event_type = "flows/created" if existing is None else "flows/updated"
                self._emit(t, event_type, {"flow": stored.to_json()}, flow_id=flow.id)
        return stored, existing is None

    def _ensure_source(self, t: _Tx, flow: FlowWrite, stamp: Instant) -> bool:
        """Sources come into being with their first flow (True when this one did); a flow must match its
        source's format."""
        rows = self._source_rows(t, flow.source_id)
        if not rows:
            row = {
                "id": flow.source_id,
                "format": flow.format,
                "label": flow.metadata.get("label"),
                "description": flow.metadata.get("description"),
                "created_by": flow.author,
                "updated_by": flow.author,
                "created": stamp.text,
                "created_ns": stamp.ns,
                "updated": stamp.text,
                "updated_ns": stamp.ns,
            }
            _insert(t["sources"], "sources", [row])
            return True
        # A source whose flows are all soft-deleted is hidden: it comes back with this flow.
        reappears = not self._visible_sources(t, [flow.source_id])
        source = rows[0]
        if source["format"] != flow.format:
            flows = t["flows"]
            others = _select(flows, _all(flows["source_id"] == flow.source_id, flows["id"] != flow.id), ["id"])
            if others:
                raise BadRequest(
                    f"flow format {flow.format} conflicts with format {source['format']} of source {flow.source_id}"
                )
            for row in rows:
                row["format"] = flow.format
            _update(t["sources"], "sources", rows, ["format"])
        return reappears

    def _source_left(self, t: _Tx, source_id: str, announce: bool = True) -> None:
        """A flow left the source: without flows that are not soft-deleted it is gone for clients (announced
        unless it was gone already), and without any flow it is forgotten."""
        if self._visible_sources(t, [source_id]):
            return
        if announce:
            self._emit_source(t, "sources/deleted", source_id)
        flows = t["flows"]
        if not _select(flows, flows["source_id"] == source_id, ["id"], limit=1):
            _delete(t["sources"], self._source_rows(t, source_id))
            self._delete_all_tags(t, "source", source_id)

    @staticmethod
    def _pending_flow_delete(t: _Tx, flow_id: str) -> DeleteRequest | None:
        requests = t["delete_requests"]
        pending = _select(
            requests,
            _all(requests["flow_id"] == flow_id, _eq(requests, "delete_flow", True), requests["status"].isin(_ACTIVE)),
        )
        return delete_request_from_row([pending[0][c] for c in REQUEST_COLUMNS]) if pending else None

    @_retried_on_conflict
    def delete_flow(self, flow_id: str, sync_limit: int, created_by: str | None) -> Deletion:
        """Delete the flow now when it has at most `sync_limit` segments, else leave it to a delete request."""
        with self._write() as t:
            return self._delete_flow(t, self._writable_flow(t, flow_id), sync_limit, created_by)

    def _delete_flow(self, t: _Tx, row: dict[str, Any], sync_limit: int, created_by: str | None) -> Deletion:
        pending = self._pending_flow_delete(t, row["id"])
        if pending is not None:
            return Deletion(deferred=pending)
        if self._more_covered_than(t, row["id"], tr.EVERYTHING, sync_limit):
            return Deletion(deferred=self._create_delete_request(t, row["id"], "_", True, created_by))
        return Deletion(released=self._drop_flow(t, row))

    # -- soft delete (extension) ------------------------------------------------------------------------------

    @_retried_on_conflict
    def soft_delete_flow(self, flow_id: str, deleted_by: str) -> Deletion:
        """Hide the flow (and what only it holds: its segments, and its source when no other flow names it)
        from the spec's endpoints, keeping every row for a restore; to clients it is deleted."""
        stamp = now()
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            pending = self._pending_flow_delete(t, flow_id)
            if pending is not None:
                return Deletion(deferred=pending)
            if self._listening(t):
                self._emit(t, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
            # Writing the flow's row makes a concurrent write of the flow conflict (first writer wins).
            _update(t["flows"], "flows", [row], ["metadata"])
            deleted = {"flow_id": flow_id, "deleted_at": stamp.text, "deleted_ns": stamp.ns, "deleted_by": deleted_by}
            _insert(t["deleted_flows"], "deleted_flows", [deleted])
            self._source_left(t, row["source_id"])
        return Deletion()

    @_retried_on_conflict
    def restore_flow(self, flow_id: str) -> None:
        with self._write() as t:
            table = t["deleted_flows"]
            deleted = _select(table, table["flow_id"] == flow_id, ["flow_id"], row_ids=True)
            row = self._flow_row(t, flow_id, hidden_too=True)
            if not deleted or row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            if self._pending_flow_delete(t, flow_id) is not None:
                raise BadRequest(f"flow {flow_id} is being purged; it can no longer be restored")
            source_reappears = not self._visible_sources(t, [row["source_id"]])
            _update(t["flows"], "flows", [row], ["metadata"])  # conflicts with a concurrent purge or restore
            _delete(table, deleted)
            if self._listening(t):
                if source_reappears:
                    self._emit_source(t, "sources/created", row["source_id"])
                flow = self._flows_from_rows(t, [row])[0]
                self._emit(t, "flows/created", {"flow": flow.to_json()}, flow_id=flow_id)

    def list_deleted_flows(self, page: PageRequest) -> Page[DeletedFlow]:
        """Oldest deletion first: the order the worker purges them in."""
        with self._read() as t:
            deleted = _select(t["deleted_flows"])
            page_rows, next_key = _page(deleted, lambda row: (row["deleted_ns"], row["flow_id"]), False, page)
            flows = {
                row["id"]: row
                for row in _select_in(
                    t["flows"], "id", [row["flow_id"] for row in page_rows], None, ["id", "source_id", "label"]
                )
            }
        items = [
            DeletedFlow(
                row["flow_id"],
                flows[row["flow_id"]]["source_id"],
                flows[row["flow_id"]]["label"],
                row["deleted_at"],
                row["deleted_ns"],
                row["deleted_by"],
            )
            for row in page_rows
        ]
        return Page(items, next_key, page.limit)

    def deleted_flows_due(self, deleted_before_ns: int, limit: int) -> list[str]:
        """Soft-deleted flows whose retention has passed and whose purge has not begun, oldest first."""
        with self._read() as t:
            table = t["deleted_flows"]
            due = _select(table, table["deleted_ns"] < deleted_before_ns, ["flow_id", "deleted_ns"])
            requests = t["delete_requests"]
            purging = {
                row["flow_id"]
                for row in _select_in(
                    requests,
                    "flow_id",
                    [row["flow_id"] for row in due],
                    _all(_eq(requests, "delete_flow", True), requests["status"].isin(_ACTIVE)),
                    ["flow_id"],
                )
            }
        due.sort(key=lambda row: (row["deleted_ns"], row["flow_id"]))
        return [row["flow_id"] for row in due if row["flow_id"] not in purging][:limit]

    @_retried_on_conflict
    def purge_flow(self, flow_id: str, sync_limit: int) -> Deletion:
        """Delete a soft-deleted flow for good, as DELETE /flows/{id} would have (a delete request when large)."""
        with self._write() as t:
            table = t["deleted_flows"]
            deleted = _select(table, table["flow_id"] == flow_id, ["deleted_by"])
            row = self._flow_row(t, flow_id, hidden_too=True)
            if not deleted or row is None:
                raise NotFound(f"flow {flow_id} is not soft-deleted")
            return self._delete_flow(t, row, sync_limit, deleted[0]["deleted_by"])

    def _drop_flow(self, t: _Tx, flow: dict[str, Any]) -> list[ReleasedMedia]:
        flow_id = flow["id"]
        if self._listening(t):
            self._emit(t, "flows/deleted", {"flow_id": flow_id}, flow_id=flow_id)
        # A soft-deleted flow was announced deleted already, and so was its source if the flow held it.
        deleted_flows = t["deleted_flows"]
        hidden = _delete(
            deleted_flows, _select(deleted_flows, deleted_flows["flow_id"] == flow_id, ["flow_id"], row_ids=True)
        )
        segments = t["segments"]
        rows = _select(segments, segments["flow_id"] == flow_id, ["object_id"], row_ids=True)
        _delete(segments, rows)
        released = self._release_unreferenced(t, sorted({row["object_id"] for row in rows}))
        # Objects allocated for this flow but never registered can no longer be used, unless they are init
        # objects that objects of other flows still use.
        objects = t["objects"]
        unused = {
            row["id"]
            for row in _select(
                objects, _all(objects["allocated_for"] == flow_id, _eq(objects, "registered", False)), ["id"]
            )
        }
        unused -= self._init_objects_in_use(t, unused)
        released += self._release(t, sorted(unused))
        _delete(t["flows"], [flow])
        collections = t["flow_collections"]
        for column in ("collector_id", "member_id"):  # no OR across columns in VAST predicates
            _delete(collections, _select(collections, collections[column] == flow_id, ["position"], row_ids=True))
        self._delete_all_tags(t, "flow", flow_id)
        self._source_left(t, flow["source_id"], announce=not hidden)
        return released

    @staticmethod
    def _init_objects_in_use(t: _Tx, object_ids: Iterable[str]) -> set[str]:
        """Those of `object_ids` that some object uses as its init object."""
        return {
            row["init_object_id"]
            for row in _select_in(t["objects"], "init_object_id", object_ids, None, ["init_object_id"])
        }

    @_retried_on_conflict
    def set_flow_property(self, flow_id: str, name: str, value: Any | None, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            metadata = json.loads(row["metadata"])
            if name == "avg_bit_rate" and metadata.get("profile_id"):
                raise BadRequest(
                    f"avg_bit_rate comes from profile {metadata['profile_id']}: "
                    "unlink the flow first by setting profile_id to '' in a PUT of the flow"
                )
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
            self._touch_metadata(t, row, metadata, updated_by)

    @_retried_on_conflict
    def set_flow_read_only(self, flow_id: str, read_only: bool, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._flow_row(t, flow_id)
            if row is None:
                raise NotFound(f"flow {flow_id} does not exist")
            metadata = json.loads(row["metadata"])
            metadata["read_only"] = read_only
            self._touch_metadata(t, row, metadata, updated_by)

    @_retried_on_conflict
    def set_flow_tag(self, flow_id: str, name: str, value: TagValue | None, updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            if value is not None:
                self._put_tag(t, "flow", flow_id, name, value)
            elif not self._delete_tag(t, "flow", flow_id, name):
                raise NotFound(f"flow {flow_id} has no tag {name!r}")
            self._touch_metadata(t, row, json.loads(row["metadata"]), updated_by)

    @_retried_on_conflict
    def set_flow_collection(self, flow_id: str, collection: list[dict[str, Any]], updated_by: str | None) -> None:
        with self._write() as t:
            row = self._writable_flow(t, flow_id)
            self._check_collection(t, flow_id, collection)
            self._write_collection(t, flow_id, collection)
            self._touch_metadata(t, row, json.loads(row["metadata"]), updated_by)

    # -- segments ---------------------------------------------------------------------------------------------

    @staticmethod
    def _scan(
        t: _Tx,
        flow: dict[str, Any],
        lo: int,
        hi: int,
        want: int | None,
        reverse: bool = False,
        keep: Callable[[dict[str, Any]], bool] = lambda row: True,
        object_id: str | None = None,
        columns: Sequence[str] | None = None,
        row_ids: bool = False,
    ) -> list[dict[str, Any]]:
        """Up to `want` (None: all) segments of a flow with lo <= start_ns <= hi that `keep` accepts, by start
        (latest first when `reverse`). Fetched in slices from the near end, each twice as wide as the last, so
        a page near one end of a long flow reads about a page of rows."""
        if flow["seg_start_ns"] is None:
            return []
        lo, hi = max(lo, flow["seg_start_ns"]), min(hi, flow["seg_end_ns"])
        segments = t["segments"]

        def fetched(start: int, end: int, limit: int = 0) -> list[dict[str, Any]]:
            where = _all(
                segments["flow_id"] == flow["id"],
                segments["start_ns"].between(start, end),
                None if object_id is None else segments["object_id"] == object_id,
            )
            return _select(segments, where, columns, row_ids, limit)

        def kept(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(filter(keep, rows), key=operator.itemgetter("start_ns"), reverse=reverse)

        if object_id is not None and want is not None and lo <= hi:
            # An object has few segments in a flow: one select (its projection, segments_by_object) finds them all,
            # where slices would take a select per doubling until one reaches them. Only fewer than `limit_rows`
            # rows are surely all of them (with as many, they are an arbitrary subset): else slice as below.
            rows = fetched(lo, hi, want)
            if len(rows) < want:
                return kept(rows)
        width = max(flow["max_segment_ns"] or 0, 1) * ((want or 0) + 1)
        found: list[dict[str, Any]] = []
        while lo <= hi and (want is None or len(found) < want):
            if want is None:
                start, end = lo, hi
            elif reverse:
                start, end = max(lo, hi - width + 1), hi
            else:
                start, end = lo, min(hi, lo + width - 1)
            found += kept(fetched(start, end))
            if reverse:
                hi = start - 1
            else:
                lo = end + 1
            width *= 2
        return found if want is None else found[:want]

    def _window(self, t: _Tx, flow: dict[str, Any], within: tr.Bounds) -> tuple[int, int]:
        """Start bounds of the segments that can overlap `within`."""
        return max(tr.INT64_MIN, within.start - (flow["max_segment_ns"] or 0)), within.end

    def flow_timerange(self, flow_id: str, within: tr.Bounds) -> str:
        with self._read() as t:
            flow = self._flow_row(t, flow_id)
            if flow is None:
                raise NotFound(f"flow {flow_id} does not exist")
            if within.is_empty:
                return "()"
            lo, hi = self._window(t, flow, within)
            columns = ["start_ns", "end_ns", "timerange"]

            def overlapping(row: dict[str, Any]) -> bool:
                return row["end_ns"] >= within.start

            first = self._scan(t, flow, lo, hi, 1, False, overlapping, columns=columns)
            last = self._scan(t, flow, lo, hi, 1, True, overlapping, columns=columns)
        return tr.span(first[0]["timerange"], last[0]["timerange"]) if first else "()"

    @_retried_on_conflict
    def add_segments(self, flow_id: str, segments: list[NewSegment]) -> list[SegmentFailure]:
        failures: list[SegmentFailure] = []
        stamp = now()
        with self._write() as t:
            flow = self._writable_flow(t, flow_id)
            if not json.loads(flow["metadata"]).get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before registering segments")
            batch = _SegmentBatch(self, t, flow, segments)
            for segment in segments:
                problem = batch.register(segment)
                if problem is not None:
                    failures.append(SegmentFailure(segment.object_id, segment.timerange, problem))
            if batch.added:
                batch.write(stamp)
                if self._listening(t):
                    self._emit_segments_added(t, flow_id, batch)
        return failures

    def _emit_segments_added(self, t: _Tx, flow_id: str, batch: _SegmentBatch) -> None:
        records = [
            segment_record(
                Segment(
                    timerange=segment.timerange,
                    object=_stored_object(batch.objects[segment.object_id]),
                    ts_offset=segment.ts_offset,
                    last_duration=segment.last_duration,
                    sample_offset=segment.sample_offset,
                    sample_count=segment.sample_count,
                )
            )
            for segment in batch.added
        ]
        self._emit(t, "flows/segments_added", {"flow_id": flow_id, "segments": records}, flow_id=flow_id)

    def list_segments(self, flow_id: str, query: SegmentQuery) -> SegmentPage:
        window = query.window
        if window.is_empty:
            return SegmentPage(Page([], None, query.page.limit), None)
        with self._read() as t:
            flow = self._flow_row(t, flow_id)
            if flow is None:
                return SegmentPage(Page([], None, query.page.limit), None)
            lo, hi = self._window(t, flow, window)
            if query.page.key is not None:
                after = decode_segment_key(query.page.key)
                if query.page.reverse:
                    hi = min(hi, after - 1)
                else:
                    lo = max(lo, after + 1)
            rows = self._scan(
                t,
                flow,
                lo,
                hi,
                query.page.limit + 1,
                query.page.reverse,
                lambda row: row["end_ns"] >= window.start,
                query.object_id,
            )
            page_rows = rows[: query.page.limit]
            objects = {
                row["id"]: row for row in _select_in(t["objects"], "id", [row["object_id"] for row in page_rows])
            }
        segments = [
            Segment(
                timerange=row["timerange"],
                ts_offset=row["ts_offset"],
                last_duration=row["last_duration"],
                sample_offset=row["sample_offset"],
                sample_count=row["sample_count"],
                object=_stored_object(objects[row["object_id"]]),
            )
            for row in page_rows
        ]
        next_key = encode_key([rows[query.page.limit - 1]["start_ns"]]) if len(rows) > query.page.limit else None
        span = None
        if segments:
            earliest, latest = (segments[-1], segments[0]) if query.page.reverse else (segments[0], segments[-1])
            span = tr.span(earliest.timerange, latest.timerange)
        return SegmentPage(Page(segments, next_key, query.page.limit), span)

    @_retried_on_conflict
    def delete_segments(
        self, flow_id: str, timerange: str, object_id: str | None, sync_limit: int, created_by: str | None
    ) -> Deletion:
        """Delete the segments `timerange` covers now when they are at most `sync_limit`, else leave them to a
        delete request (which cannot carry an object_id filter, so such deletes always happen now)."""
        within = tr.parse_bounds(timerange)
        with self._write() as t:
            flow = self._writable_flow(t, flow_id)
            if within.is_empty:
                return Deletion()
            if object_id is None and self._more_covered_than(t, flow_id, within, sync_limit):
                return Deletion(deferred=self._create_delete_request(t, flow_id, timerange, False, created_by))
            return Deletion(released=self._delete_covered(t, flow, within, object_id, None)[0])

    @staticmethod
    def _more_covered_than(t: _Tx, flow_id: str, within: tr.Bounds, limit: int) -> bool:
        segments = t["segments"]
        where = _all(
            segments["flow_id"] == flow_id,
            segments["start_ns"].between(within.start, within.end),
            segments["end_ns"] <= within.end,
        )
        # `limit_rows` is an arbitrary subset: enough to tell "more than `limit`".
        return len(_select(segments, where, ["start_ns"], limit=limit + 1)) > limit

    def _delete_covered(
        self, t: _Tx, flow: dict[str, Any], within: tr.Bounds, object_id: str | None, limit: int | None
    ) -> tuple[list[ReleasedMedia], int | None]:
        """Delete the first `limit` (or all) covered segments; the released objects and the start of the last
        segment deleted (None when there was none)."""
        rows = self._scan(
            t,
            flow,
            within.start,
            within.end,
            limit,
            keep=lambda row: row["end_ns"] <= within.end,
            object_id=object_id,
            columns=["start_ns", "end_ns", "timerange", "object_id"],
            row_ids=True,
        )
        if not rows:
            return [], None
        _delete(t["segments"], rows)
        first = self._scan(t, flow, tr.INT64_MIN, tr.INT64_MAX, 1, columns=["start_ns", "end_ns"])
        last = self._scan(t, flow, tr.INT64_MIN, tr.INT64_MAX, 1, reverse=True, columns=["start_ns", "end_ns"])
        flow.update(
            segments_updated=now().text,
            seg_start_ns=first[0]["start_ns"] if first else None,
            seg_end_ns=last[0]["end_ns"] if last else None,
        )
        _update(t["flows"], "flows", [flow], ["segments_updated", "seg_start_ns", "seg_end_ns"])
        if self._listening(t):
            deleted = {"flow_id": flow["id"], "timerange": tr.span(rows[0]["timerange"], rows[-1]["timerange"])}
            self._emit(t, "flows/segments_deleted", deleted, flow_id=flow["id"])
        released = self._release_unreferenced(t, sorted({row["object_id"] for row in rows}))
        return released, rows[-1]["start_ns"]

    def _release_unreferenced(self, t: _Tx, object_ids: list[str]) -> list[ReleasedMedia]:
        """Release objects no segment references any more, and init objects no object uses any more."""
        referenced = {
            row["object_id"] for row in _select_in(t["segments"], "object_id", object_ids, None, ["object_id"])
        }
        unreferenced = [object_id for object_id in object_ids if object_id not in referenced]
        objects = t["objects"]
        init_object_ids = {
            row["init_object_id"]
            for row in _select_in(objects, "id", unreferenced, None, ["init_object_id"])
            if row["init_object_id"] is not None
        }
        released = self._release(t, unreferenced)
        still_used = self._init_objects_in_use(t, init_object_ids)
        unregistered = {
            row["id"] for row in _select_in(objects, "id", init_object_ids, _eq(objects, "registered", False), ["id"])
        }
        unused_inits = sorted((init_object_ids - still_used) & unregistered)
        return released + self._release(t, unused_inits)

    @staticmethod
    def _release(t: _Tx, object_ids: list[str]) -> list[ReleasedMedia]:
        """Forget objects and queue their media for deletion, in the caller's transaction."""
        objects = t["objects"]
        rows = _select_in(objects, "id", object_ids, None, ["id", "storage_ids"], row_ids=True)
        _delete(objects, rows)
        # Uncontrolled URLs only: no bytes of ours to delete.
        released = [
            ReleasedMedia(row["id"], storage_id)
            for row in rows
            for storage_id in storage_ids_from_column(row["storage_ids"])
        ]
        return VastMetadataStore._queue_release(t, released)

    @staticmethod
    def _queue_release(t: _Tx, released: list[ReleasedMedia]) -> list[ReleasedMedia]:
        """Queue bytes of object instances for deletion, in the caller's transaction (each once)."""
        queued = t["released_objects"]
        already = {
            (row["id"], row["storage_id"])
            for row in _select_in(queued, "id", {item.object_id for item in released}, None, ["id", "storage_id"])
        }
        new = [item for item in released if (item.object_id, item.storage_id) not in already]
        _insert(queued, "released_objects", [{"id": item.object_id, "storage_id": item.storage_id} for item in new])
        return released

    # -- objects ----------------------------------------------------------------------------------------------

    @_retried_on_conflict
    def allocate_objects(self, flow_id: str, storage_id: str, content_type: str, object_ids: list[str]) -> None:
        stamp = now()
        with self._write() as t:
            flow = self._writable_flow(t, flow_id)
            if not json.loads(flow["metadata"]).get("container"):
                raise BadRequest(f"flow {flow_id} has no 'container': set it before allocating storage")
            _guard(t, *(f"object {object_id}" for object_id in object_ids))
            taken = _select_in(t["objects"], "id", object_ids, None, ["id"])
            if taken:
                raise BadRequest(f"object_id {taken[0]['id']} is already in use")
            if len(set(object_ids)) != len(object_ids):
                raise BadRequest("object_ids must not repeat")
            rows = [
                {
                    "id": object_id,
                    "storage_ids": storage_ids_column([storage_id]),
                    "content_type": content_type,
                    "allocated_for": flow_id,
                    "allocated_ns": stamp.ns,
                    "registered": False,
                }
                for object_id in object_ids
            ]
            _insert(t["objects"], "objects", rows)

    def _object_in_use(self, t: _Tx, object_id: str) -> dict[str, Any] | None:
        """An object clients can see: one a segment of a flow that is not soft-deleted uses, as its media object
        or as its init object."""
        return self._object_and_users(t, object_id)[0]

    def _object_and_users(self, t: _Tx, object_id: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The object's row (None unless in use) and the flows that use it."""
        objects = t["objects"]
        rows = _select(objects, objects["id"] == object_id, row_ids=True)
        users = self._flows_using(t, object_id) if rows else []
        return (rows[0] if users else None), users

    def _flows_using(self, t: _Tx, object_id: str) -> list[str]:
        """Flows that are not soft-deleted whose segments use the object, as their media or init object."""
        objects = t["objects"]
        users = [object_id, *(u["id"] for u in _select(objects, objects["init_object_id"] == object_id, ["id"]))]
        segments = t["segments"]
        flow_ids = {s["flow_id"] for s in _select_in(segments, "object_id", users, None, ["flow_id"])}
        existing = {f["id"] for f in _select_in(t["flows"], "id", flow_ids, None, ["id"])}
        return sorted(existing - self._hidden(t, existing))

    def get_object(self, object_id: str, flows: PageRequest, flow_tags: TagFilter) -> ObjectUsage | None:
        with self._read() as t:
            row, existing = self._object_and_users(t, object_id)
            if row is None:
                return None
            match = self._tag_match(t, "flow", flow_tags)
            candidates = [{"id": flow_id} for flow_id in existing if match(flow_id)]
        items, next_key = _page(candidates, lambda r: (r["id"],), flows.reverse, flows)
        return ObjectUsage(
            object=_stored_object(row),
            first_referenced_by_flow=row["first_flow_id"],
            referenced_by_flows=Page([item["id"] for item in items], next_key, flows.limit),
        )

    def find_objects(self, object_ids: list[str]) -> dict[str, StoredObject]:
        with self._read() as t:
            return {row["id"]: _stored_object(row) for row in _select_in(t["objects"], "id", object_ids)}

    def _object_instances(self, t: _Tx, object_id: str) -> tuple[dict[str, Any], list[str], list[dict[str, str]]]:
        row = self._object_in_use(t, object_id)
        if row is None:
            raise NotFound(f"object {object_id} does not exist or is not referenced by any segment")
        urls = json.loads(row["uncontrolled_urls"]) if row["uncontrolled_urls"] else []
        return row, storage_ids_from_column(row["storage_ids"]), urls

    @staticmethod
    def _set_object(t: _Tx, row: dict[str, Any], **values: Any) -> None:
        row.update(values)
        _update(t["objects"], "objects", [row], list(values))

    @_retried_on_conflict
    def add_uncontrolled_url(self, object_id: str, url: str, label: str) -> None:
        with self._write() as t:
            row, _, urls = self._object_instances(t, object_id)
            if any(existing["label"] == label for existing in urls):
                raise BadRequest(f"object {object_id} already has a URL labelled {label!r}")
            self._set_object(t, row, uncontrolled_urls=json.dumps([*urls, {"url": url, "label": label}]))

    @_retried_on_conflict
    def add_controlled_instance(self, object_id: str, storage_id: str) -> None:
        """Advertise a copy of the object's bytes on another storage backend (the caller made it)."""
        with self._write() as t:
            row, storage_ids, _ = self._object_instances(t, object_id)
            if storage_id in storage_ids:
                raise BadRequest(f"object {object_id} already has an instance on storage backend {storage_id}")
            self._set_object(t, row, storage_ids=storage_ids_column([*storage_ids, storage_id]))

    @_retried_on_conflict
    def remove_instance(self, object_id: str, storage_id: str | None, label: str | None) -> list[ReleasedMedia]:
        """Remove the controlled instance on `storage_id` (queueing its bytes for deletion, which the caller
        carries out), or the uncontrolled URL labelled `label`. The last instance of an object stays."""
        with self._write() as t:
            row, storage_ids, urls = self._object_instances(t, object_id)
            storage_ids, urls = instances_left(object_id, storage_ids, urls, storage_id, label)
            if storage_id is None:
                self._set_object(t, row, uncontrolled_urls=json.dumps(urls) if urls else None)
                return []
            self._set_object(t, row, storage_ids=storage_ids_column(storage_ids))
            return self._queue_release(t, [ReleasedMedia(object_id, storage_id)])

    # -- webhooks and the outbox ------------------------------------------------------------------------------

    @staticmethod
    def _listening(t: _Tx) -> bool:
        """Whether any webhook wants events: without one, changes write no outbox rows at all."""
        if t.listening is None:
            webhooks = t["webhooks"]
            t.listening = bool(_select(webhooks, webhooks["status"].isin(_ACTIVE), ["id"], limit=1))
        return t.listening

    @staticmethod
    def _counter(t: _Tx) -> list[dict[str, Any]]:
        counters = t["counters"]
        return _select(counters, counters["name"] == "events", row_ids=True)

    def _last_event(self, t: _Tx) -> int:
        return max((row["value"] for row in self._counter(t)), default=0)

    def _next_seq(self, t: _Tx) -> int:
        """The next event sequence number; updating the counter row makes concurrent event writers conflict."""
        rows = self._counter(t)
        seq = max((row["value"] for row in rows), default=0) + 1
        if rows:
            for row in rows:
                row["value"] = seq
            _update(t["counters"], "counters", rows, ["value"])
        else:
            _guard(t, "counter events")
            _insert(t["counters"], "counters", [{"name": "events", "value": seq}])
        return seq

    def _emit(
        self,
        t: _Tx,
        event_type: str,
        payload: dict[str, Any],
        flow_id: str | None = None,
        source_id: str | None = None,
    ) -> None:
        """Write an event to the outbox, in the transaction of the change it reports, with what webhook
        filters look at: the flow's source and the collections of the flow and of its source."""
        flow_collected_by: list[str] = []
        if flow_id is not None:
            if self._hidden(t, [flow_id]):
                return  # clients were told the flow was deleted: its purge is no news to them
            source_id = self._flow_sources(t, [flow_id])[flow_id]
            collections = t["flow_collections"]
            found = _select(collections, collections["member_id"] == flow_id, ["collector_id"])
            flow_collected_by = sorted({row["collector_id"] for row in found})
        source_collected_by = self._source_links(t, [source_id])[source_id][1] if source_id else []
        row = {
            "seq": self._next_seq(t),
            "type": event_type,
            "timestamp": now().text,
            "flow_id": flow_id,
            "source_id": source_id,
            "flow_collected_by": _json(flow_collected_by),
            "source_collected_by": _json(source_collected_by),
            "payload": _json(payload),
        }
        _insert(t["events"], "events", [row])

    def _emit_source(self, t: _Tx, event_type: str, source_id: str) -> None:
        if not self._listening(t):
            return
        if event_type == "sources/deleted":
            payload: dict[str, Any] = {"source_id": source_id}
        else:
            payload = {"source": self._sources_from_rows(t, self._source_rows(t, source_id))[0].to_json()}
        self._emit(t, event_type, payload, source_id=source_id)

    def _webhooks_from_rows(self, t: _Tx, rows: list[dict[str, Any]]) -> list[Webhook]:
        tags = self._load_tags(t, "webhook", [row["id"] for row in rows])
        webhooks = []
        for row in rows:
            details = json.loads(row["document"])
            webhooks.append(
                Webhook(
                    id=row["id"],
                    url=row["url"],
                    events=details["events"],
                    status=row["status"],
                    api_key_name=details.get("api_key_name"),
                    api_key_value=details.get("api_key_value"),
                    options=details["options"],
                    tags=tags[row["id"]],
                    error=json.loads(row["error"]) if row["error"] else None,
                    owner=row["owner"],
                    cursor=row["cursor"],
                )
            )
        return webhooks

    @staticmethod
    def _webhook_rows(t: _Tx, webhook_id: str) -> list[dict[str, Any]]:
        webhooks = t["webhooks"]
        return _select(webhooks, webhooks["id"] == webhook_id, row_ids=True)

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        with self._read() as t:
            found = self._webhooks_from_rows(t, self._webhook_rows(t, webhook_id))
        return found[0] if found else None

    def list_webhooks(self, query: WebhookQuery) -> Page[Webhook]:
        with self._read() as t:
            match = self._tag_match(t, "webhook", query.tags)
            rows = [row for row in _select(t["webhooks"]) if match(row["id"])]
            page_rows, next_key = _page(rows, lambda row: (row["url"], row["id"]), query.page.reverse, query.page)
            items = self._webhooks_from_rows(t, page_rows)
        return Page(items, next_key, query.page.limit)

    def active_webhooks(self) -> list[Webhook]:
        with self._read() as t:
            webhooks = t["webhooks"]
            return self._webhooks_from_rows(t, _select(webhooks, webhooks["status"].isin(_ACTIVE)))

    @_retried_on_conflict
    def save_webhook(self, webhook: Webhook, change: Callable[[Webhook | None], Webhook]) -> Webhook:
        """Create or replace a webhook with what `change` makes of the stored one (None when new), in one
        transaction. A webhook that starts listening receives the events from now on."""
        with self._write() as t:
            _guard(t, f"webhook {webhook.id}")
            rows = self._webhook_rows(t, webhook.id)
            found = self._webhooks_from_rows(t, rows)
            stored = found[0] if found else None
            updated = change(stored)
            if updated.active and (stored is None or not stored.active):
                updated.cursor = self._last_event(t)
            document = {
                "events": updated.events,
                "api_key_name": updated.api_key_name,
                "api_key_value": updated.api_key_value,
                "options": updated.options,
            }
            row = {
                "id": updated.id,
                "url": updated.url,
                "status": updated.status,
                "owner": updated.owner,
                "document": json.dumps(document),
                "error": json.dumps(updated.error) if updated.error else None,
                "cursor": updated.cursor,
            }
            _delete(t["webhooks"], rows)
            _insert(t["webhooks"], "webhooks", [row])
            self._replace_tags(t, "webhook", updated.id, updated.tags)
            return updated

    @_retried_on_conflict
    def delete_webhook(self, webhook_id: str) -> None:
        with self._write() as t:
            if not _delete(t["webhooks"], self._webhook_rows(t, webhook_id)):
                raise NotFound(f"webhook {webhook_id} does not exist")
            self._delete_all_tags(t, "webhook", webhook_id)

    @_retried_on_conflict
    def set_webhook_status(self, webhook_id: str, status: str, error: dict[str, str] | None = None) -> None:
        """The worker's transitions (created -> started, started -> error), unless a client changed it meanwhile."""
        with self._write() as t:
            rows = [row for row in self._webhook_rows(t, webhook_id) if row["status"] in _ACTIVE]
            for row in rows:
                row.update(status=status, error=json.dumps(error) if error else None)
            _update(t["webhooks"], "webhooks", rows, ["status", "error"])

    @_retried_on_conflict
    def advance_webhook(self, webhook_id: str, cursor: int) -> None:
        with self._write() as t:
            rows = [row for row in self._webhook_rows(t, webhook_id) if row["cursor"] < cursor]
            for row in rows:
                row["cursor"] = cursor
            _update(t["webhooks"], "webhooks", rows, ["cursor"])

    def events_after(self, seq: int, limit: int) -> list[Event]:
        with self._read() as t:
            events = t["events"]
            # Sequence numbers have no gaps after a webhook's cursor: the next `limit` lie in (seq, seq + limit].
            rows = _select(events, events["seq"].between(seq + 1, seq + limit))
            if len(rows) < limit:  # a gap (pruned below a cursor): look further, unbounded but rare
                rows = _select(events, events["seq"] > seq)
        rows = sorted(rows, key=operator.itemgetter("seq"))[:limit]
        return [
            Event(
                seq=row["seq"],
                type=row["type"],
                timestamp=row["timestamp"],
                payload=json.loads(row["payload"]),
                flow_id=row["flow_id"],
                source_id=row["source_id"],
                flow_collected_by=json.loads(row["flow_collected_by"]),
                source_collected_by=json.loads(row["source_collected_by"]),
            )
            for row in rows
        ]

    @_retried_on_conflict
    def prune_events(self) -> int:
        """Drop events every listening webhook has had; all of them when none listens."""
        with self._write() as t:
            cursors = self._listening_cursors(t)
            events = t["events"]
            where = None if not cursors else events["seq"] <= min(cursors)
            return _delete(events, _select(events, where, ["seq"], row_ids=True))

    def undelivered_events(self) -> int:
        with self._read() as t:
            cursors = self._listening_cursors(t)
            # Sequence numbers have no gaps (see `_next_seq`): the backlog is a difference.
            return max(0, self._last_event(t) - min(cursors)) if cursors else 0

    @staticmethod
    def _listening_cursors(t: _Tx) -> list[int]:
        webhooks = t["webhooks"]
        return [row["cursor"] for row in _select(webhooks, webhooks["status"].isin(_ACTIVE), ["cursor"])]

    # -- flow delete requests ---------------------------------------------------------------------------------

    @staticmethod
    def _request_rows(t: _Tx, request_id: str) -> list[dict[str, Any]]:
        requests = t["delete_requests"]
        return _select(requests, requests["id"] == request_id, row_ids=True)

    @staticmethod
    def _request(row: dict[str, Any]) -> DeleteRequest:
        return delete_request_from_row([row[column] for column in REQUEST_COLUMNS])

    def _create_delete_request(
        self, t: _Tx, flow_id: str, timerange: str, delete_flow: bool, created_by: str | None
    ) -> DeleteRequest:
        _guard(t, f"flow {flow_id}")  # against a second request for the same deletion
        stamp = now()
        row = {
            "id": str(uuid.uuid4()),
            "flow_id": flow_id,
            "to_delete": timerange,
            "remaining": tr.format_bounds(tr.parse_bounds(timerange)),
            "delete_flow": delete_flow,
            "status": "created",
            "created": stamp.text,
            "created_ns": stamp.ns,
            "created_by": created_by,
            "updated": stamp.text,
        }
        _insert(t["delete_requests"], "delete_requests", [row])
        return self._request({**TABLE_DEFAULTS["delete_requests"], **row})

    def get_delete_request(self, request_id: str) -> DeleteRequest | None:
        with self._read() as t:
            rows = self._request_rows(t, request_id)
        return self._request(rows[0]) if rows else None

    def list_delete_requests(self, query: DeleteRequestQuery) -> Page[DeleteRequest]:
        with self._read() as t:
            rows = _select(t["delete_requests"])
        if query.sort_by == "expiry":
            # Most recent expiry first; requests without one (not finished) after those with one, by id.
            def key(row: dict[str, Any]) -> tuple:
                return (int(row["expiry_ns"] is not None), row["expiry_ns"] or 0, row["id"])

            descending = not query.page.reverse
        else:
            key, descending = _sort("created", query.page.reverse)
        page_rows, next_key = _page(rows, key, descending, query.page)
        return Page([self._request(row) for row in page_rows], next_key, query.page.limit)

    def pending_delete_requests(self) -> list[str]:
        with self._read() as t:
            requests = t["delete_requests"]
            rows = _select(requests, requests["status"].isin(_ACTIVE), ["id", "created_ns"])
        return [row["id"] for row in sorted(rows, key=lambda row: (row["created_ns"], row["id"]))]

    @_retried_on_conflict
    def continue_delete_request(
        self, request_id: str, chunk: int, retention_seconds: int
    ) -> tuple[DeleteRequest, list[ReleasedMedia]]:
        """One step of a delete request, in one transaction: delete up to `chunk` more segments, or, when none
        are left, the flow (if asked) and mark the request done. A crash between steps loses nothing."""
        with self._write() as t:
            rows = self._request_rows(t, request_id)
            if not rows:
                raise NotFound(f"flow delete request {request_id} does not exist")
            row = rows[0]
            request = self._request(row)
            if request.status not in _ACTIVE:
                return request, []
            stamp = now()
            flow = self._flow_row(t, request.flow_id, hidden_too=True)  # a purge works on a soft-deleted flow
            released: list[ReleasedMedia] = []
            changes: dict[str, Any] = {"updated": stamp.text}
            if flow is not None and flow["read_only"]:
                error = error_json("Forbidden", f"flow {request.flow_id} is read-only", stamp.text)
                changes.update(status="error", error=json.dumps(error))
            else:
                remaining = tr.parse_bounds(request.timerange_remaining)
                last_start = None
                if flow is not None and not remaining.is_empty:
                    released, last_start = self._delete_covered(t, flow, remaining, None, chunk)
                if last_start is not None:
                    changes.update(
                        status="started", remaining=tr.format_bounds(tr.Bounds(last_start + 1, remaining.end))
                    )
                else:
                    if flow is not None and request.delete_flow:
                        released += self._drop_flow(t, flow)
                    expiry = stamp.ns + retention_seconds * 1_000_000_000
                    changes.update(status="done", remaining="()", expiry=instant_text(expiry), expiry_ns=expiry)
            row.update(changes)
            _update(t["delete_requests"], "delete_requests", [row], list(changes))
            return self._request(row), released

    @_retried_on_conflict
    def forget_expired_delete_requests(self, before_ns: int) -> int:
        with self._write() as t:
            requests = t["delete_requests"]
            where = _all(requests["status"].isin(["done", "error"]), requests["expiry_ns"] <= before_ns)
            return _delete(requests, _select(requests, where, ["id"], row_ids=True))

    # -- media to delete --------------------------------------------------------------------------------------

    def released_objects(self, limit: int) -> list[ReleasedMedia]:
        with self._read() as t:
            rows = _select(t["released_objects"], limit=limit) if limit > 0 else []
        return [ReleasedMedia(row["id"], row["storage_id"]) for row in rows]

    @_retried_on_conflict
    def forget_released(self, released: list[ReleasedMedia]) -> None:
        forgotten = {(item.object_id, item.storage_id) for item in released}
        with self._write() as t:
            queued = t["released_objects"]
            rows = _select_in(queued, "id", {object_id for object_id, _ in forgotten}, None, row_ids=True)
            _delete(queued, [row for row in rows if (row["id"], row["storage_id"]) in forgotten])

    @_retried_on_conflict
    def release_expired_allocations(self, allocated_before_ns: int) -> int:
        """Release objects allocated before the cut-off that no segment registered (nor uses as init object)."""
        with self._write() as t:
            objects = t["objects"]
            where = _all(_eq(objects, "registered", False), objects["allocated_ns"] < allocated_before_ns)
            expired = {row["id"] for row in _select(objects, where, ["id"], limit=10000)}
            expired -= self._init_objects_in_use(t, expired)
            return len(self._release(t, sorted(expired)))

    # -- analytics (extension): Arrow compute over column-projected selects, flows that are not soft-deleted -----

    @staticmethod
    def _live_flows(t: _Tx, columns: Sequence[str]) -> pa.Table:
        flows = _arrow(t["flows"], columns=columns)
        hidden = _arrow(t["deleted_flows"], columns=["flow_id"])["flow_id"]
        return flows.filter(pc.invert(pc.is_in(flows["id"], value_set=hidden)))

    def flow_usage(self, limit: int) -> list[FlowUsage]:
        """The `limit` flows with the most segments (then the longest duration, then by id)."""
        with self._read() as t:
            usage = _grouped(t, "segments", ["flow_id", "start_ns", "end_ns"], ["flow_id"], "duration", _with_duration)
            flows = self._live_flows(t, ["id", "label", "format"])
        joined = flows.join(usage, keys="id", right_keys="flow_id", join_type="left outer")
        table = pa.table(
            {
                "id": joined["id"],
                "label": joined["label"],
                "format": joined["format"],
                "segment_count": pc.fill_null(joined["duration_count"], 0),
                "duration_ns": pc.fill_null(joined["duration_sum"], 0),
            }
        )
        order = pc.sort_indices(
            table, [("segment_count", "descending"), ("duration_ns", "descending"), ("id", "ascending")]
        )
        return [FlowUsage(*row.values()) for row in table.take(order[:limit]).to_pylist()]

    def format_distribution(self) -> FormatDistribution:
        with self._read() as t:
            flows = self._live_flows(t, ["id", "format", "codec", "metadata"])
        # The container is in the flow's metadata JSON only: a top-level string, the first "container" key.
        containers = pc.struct_field(pc.extract_regex(flows["metadata"], _CONTAINER_IN_JSON), "container")
        counted = {}
        for name, values in (("format", flows["format"]), ("codec", flows["codec"]), ("container", containers)):
            groups = pa.table({"value": values}).group_by("value").aggregate([([], "count_all")])
            counted[name] = format_counts(
                zip(groups["value"].to_pylist(), groups["count_all"].to_pylist(), strict=True)
            )
        return FormatDistribution(flows.num_rows, counted["format"], counted["codec"], counted["container"])

    def storage_usage(self) -> StorageUsage:
        with self._read() as t:
            objects = _grouped(t, "objects", ["id", "storage_ids", "registered"], ["storage_ids", "registered"], "id")
            awaiting = sum(batch.num_rows for batch in t["released_objects"].select(columns=["id"]))
        groups = objects.to_pylist()  # one row per distinct (storage_ids, registered): a handful
        return StorageUsage(
            instances_by_storage_id((group["storage_ids"], group["id_count"]) for group in groups),
            sum(group["id_count"] for group in groups if group["registered"]),
            sum(group["id_count"] for group in groups if not group["registered"]),
            sum(group["id_count"] for group in groups if group["registered"] and group["storage_ids"] is None),
            awaiting,
        )

    def timerange_analysis(self, owner: str, owner_id: str, max_gaps: int) -> TimerangeAnalysis:
        """Coverage of the segments of a flow, or of every flow of a source together ("flow" or "source")."""
        with self._read() as t:
            flows = t["flows"]
            found = _select(flows, flows["id" if owner == "flow" else "source_id"] == owner_id, ["id"])
            flow_ids = sorted({row["id"] for row in found} - self._hidden(t, [row["id"] for row in found]))
            if not flow_ids:
                raise NotFound(f"{owner} {owner_id} does not exist")
            segments = t["segments"]
            chunks = [
                _arrow(segments, segments["flow_id"].isin(flow_ids[start : start + _CHUNK]), ["start_ns", "end_ns"])
                for start in range(0, len(flow_ids), _CHUNK)
            ]
        table = _with_duration(pa.concat_tables(chunks))
        if table.num_rows == 0:
            return timerange_analysis(flow_ids, (0, None, None, None), None, None, [], (0, 0))
        table = table.take(pc.sort_indices(table, [("start_ns", "ascending"), ("end_ns", "ascending")]))
        starts, ends = table["start_ns"], table["end_ns"]
        # A gap opens before a segment starting after everything earlier has ended (segments of several flows
        # may overlap: `reach` is the latest end so far).
        reach = pc.cumulative_max(ends)
        gap_starts = pc.add(reach.slice(0, table.num_rows - 1), 1)
        gap_ends = pc.subtract(starts.slice(1), 1)
        opens = pc.greater_equal(gap_ends, gap_starts)
        gap_starts, gap_ends = pc.filter(gap_starts, opens), pc.filter(gap_ends, opens)
        extremes = pc.min_max(table["duration"])
        return timerange_analysis(
            flow_ids,
            (table.num_rows, extremes["min"].as_py(), extremes["max"].as_py(), pc.mean(table["duration"]).as_py()),
            pc.min(starts).as_py(),
            pc.max(ends).as_py(),
            list(zip(gap_starts[:max_gaps].to_pylist(), gap_ends[:max_gaps].to_pylist(), strict=True)),
            (len(gap_starts), pc.sum(pc.add(pc.subtract(gap_ends, gap_starts), 1)).as_py() or 0),
        )

    # -- the worker's lease -----------------------------------------------------------------------------------

    @staticmethod
    def _lease_rows(t: _Tx, name: str) -> list[dict[str, Any]]:
        leases = t["leases"]
        return _select(leases, leases["name"] == name, row_ids=True)

    @_retried_on_conflict
    def claim_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease is current."""
        stamp = time.time_ns()
        with self._write() as t:
            _guard(t, f"lease {name}")
            rows = self._lease_rows(t, name)
            if any(row["holder"] != holder and row["expires_ns"] > stamp for row in rows):
                return False
            _delete(t["leases"], rows)
            _insert(t["leases"], "leases", [{"name": name, "holder": holder, "expires_ns": stamp + int(seconds * 1e9)}])
            return True

    @_retried_on_conflict
    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as t:
            _delete(t["leases"], [row for row in self._lease_rows(t, name) if row["holder"] == holder])


# Rows as a select returns them: every column, NULL where not given.
TABLE_DEFAULTS: dict[str, dict[str, Any]] = {name: dict.fromkeys(schema.names) for name, schema in TABLES.items()}


def _stored_object(row: dict[str, Any]) -> StoredObject:
    return StoredObject(
        id=row["id"],
        storage_ids=storage_ids_from_column(row["storage_ids"]),
        timerange=row["timerange"],
        key_frame_count=row["key_frame_count"],
        init_object_id=row["init_object_id"],
        uncontrolled_urls=json.loads(row["uncontrolled_urls"]) if row["uncontrolled_urls"] else [],
    )


class _SegmentBatch:
    """The segments of one POST, checked against what is stored and against each other, written together.

    Objects the batch names are read once; each segment's overlap check reads the flow's segments that can
    reach its range (start within the longest segment duration before it) plus the batch's own."""

    def __init__(self, store: VastMetadataStore, t: _Tx, flow: dict[str, Any], segments: list[NewSegment]) -> None:
        self.store = store
        self.t = t
        self.flow = flow
        self.added: list[NewSegment] = []
        ids = {s.object_id for s in segments} | {s.init_object_id for s in segments if s.init_object_id}
        self.objects: dict[str, dict[str, Any]] = {
            row["id"]: row for row in _select_in(t["objects"], "id", ids, None, row_ids=True)
        }
        self.init_in_use = store._init_objects_in_use(t, {s.object_id for s in segments})
        self.new_objects: list[str] = []
        self.registered: list[str] = []

    def register(self, segment: NewSegment) -> str | None:
        """Check one segment and keep it for writing; the reason it was refused otherwise."""
        bounds = segment.bounds
        overlap = self._overlapping(bounds)
        if overlap is not None:
            return f"segment {segment.timerange} overlaps the existing segment {overlap}"
        problem = self._role_problem(segment)
        if problem is not None:
            return problem
        flow_id = self.flow["id"]
        row = self.objects.get(segment.object_id)
        if row is None:
            if not segment.get_urls:
                return (
                    f"object {segment.object_id} is unknown: allocate it with POST /flows/{flow_id}/storage, "
                    "or give get_urls for an object held elsewhere"
                )
            self.objects[segment.object_id] = {
                **TABLE_DEFAULTS["objects"],
                "id": segment.object_id,
                "registered": True,
                **self._registration(segment, json.dumps(segment.get_urls)),
            }
            self.new_objects.append(segment.object_id)
        elif not row["registered"]:
            if row["allocated_for"] != flow_id:
                return f"object {segment.object_id} was allocated for flow {row['allocated_for']}, not for this flow"
            urls = json.dumps(segment.get_urls) if segment.get_urls else None
            row.update(registered=True, **self._registration(segment, urls))
            self.registered.append(segment.object_id)
        else:
            problem = reuse_problem(
                segment,
                stored_timerange=row["timerange"],
                key_frame_count=row["key_frame_count"],
                init_object_id=row["init_object_id"],
            )
            if problem is not None:
                return problem
        if segment.init_object_id is not None:
            self.init_in_use.add(segment.init_object_id)
        self.added.append(segment)
        self.flow["max_segment_ns"] = min(
            tr.INT64_MAX, max(self.flow["max_segment_ns"] or 0, bounds.end - bounds.start)
        )
        return None

    def _registration(self, segment: NewSegment, urls: str | None) -> dict[str, Any]:
        return {
            "first_flow_id": self.flow["id"],
            "timerange": segment.object_timerange,
            "key_frame_count": segment.key_frame_count,
            "init_object_id": segment.init_object_id,
            "uncontrolled_urls": urls,
        }

    def _overlapping(self, bounds: tr.Bounds) -> str | None:
        """The timerange of a stored or batch segment that overlaps `bounds`, if any."""
        for segment in self.added:
            if segment.bounds.overlaps(bounds):
                return segment.timerange
        stored = self.flow
        if stored["seg_start_ns"] is None or bounds.end < stored["seg_start_ns"] or bounds.start > stored["seg_end_ns"]:
            return None
        lo = max(tr.INT64_MIN, bounds.start - (stored["max_segment_ns"] or 0))
        found = self.store._scan(
            self.t,
            stored,
            lo,
            bounds.end,
            1,
            True,
            lambda row: row["end_ns"] >= bounds.start,
            columns=["start_ns", "end_ns", "timerange"],
        )
        return found[0]["timerange"] if found else None

    def _role_problem(self, segment: NewSegment) -> str | None:
        """Media objects and init objects keep their roles, and an init object must be known here."""
        if segment.object_id in self.init_in_use:
            return f"object {segment.object_id} is an init object; it cannot be the media object of a segment"
        if segment.init_object_id is None:
            return None
        init = self.objects.get(segment.init_object_id)
        if init is None:
            return (
                f"init object {segment.init_object_id} is unknown: allocate it with POST "
                f"/flows/{self.flow['id']}/storage"
            )
        if init["registered"]:
            return f"object {segment.init_object_id} is the media object of a segment; it cannot be an init object"
        return None

    def write(self, stamp: Instant) -> None:
        """Objects, segments and the flow's segment bounds. Updating the flow row makes two batches for one flow
        conflict, so that the overlap checks of one see the other's segments (after a retry)."""
        t, flow = self.t, self.flow
        if self.new_objects:
            _guard(t, *(f"object {object_id}" for object_id in self.new_objects))
        _insert(t["objects"], "objects", [self.objects[object_id] for object_id in self.new_objects])
        registered = [self.objects[object_id] for object_id in self.registered]
        _update(t["objects"], "objects", registered, ["registered", *self._registration(self.added[0], None)])
        rows = [
            {
                "flow_id": flow["id"],
                "start_ns": segment.bounds.start,
                "end_ns": segment.bounds.end,
                "timerange": segment.timerange,
                "object_id": segment.object_id,
                "ts_offset": segment.ts_offset,
                "last_duration": segment.last_duration,
                "sample_offset": segment.sample_offset,
                "sample_count": segment.sample_count,
            }
            for segment in self.added
        ]
        _insert(t["segments"], "segments", rows)
        lowest = min(segment.bounds.start for segment in self.added)
        highest = max(segment.bounds.end for segment in self.added)
        flow.update(
            segments_updated=stamp.text,
            seg_start_ns=lowest if flow["seg_start_ns"] is None else min(flow["seg_start_ns"], lowest),
            seg_end_ns=highest if flow["seg_end_ns"] is None else max(flow["seg_end_ns"], highest),
        )
        _update(t["flows"], "flows", [flow], ["segments_updated", "seg_start_ns", "seg_end_ns", "max_segment_ns"])
