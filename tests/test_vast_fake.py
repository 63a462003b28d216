"""The VAST SDK fake (`vast_fake`): SDK-faithful validation, SQL-like filtering, shuffling, snapshots, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import duckdb
import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from ibis import _
from vastdb import _internal, errors
from vastdb.transaction import TransactionNotActiveError

from vast_fake import ROW_ID, FakeSession, FakeTable, FakeVast

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64()), ("name", pa.string()), ("x", pa.float64())])
ROWS = pa.table(
    {
        "id": [f"r{i:02}" for i in range(12)],
        "n": [INT64_MIN, -5, 0, 1, 2, 3, 5, 8, None, None, 100, INT64_MAX],
        "name": ["alpha", "alphabet", "beta", "gamma", None, "delta", "al", "", "Alpha", "épsilon", "zeta", None],
        "x": [0.5, 1.5, None, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5],
    },
    schema=SCHEMA,
)


@pytest.fixture
def fake() -> FakeVast:
    return FakeVast(buckets=["bucket"], access_key="AK", secret_key="SK", seed=1)


@pytest.fixture
def session(fake: FakeVast) -> FakeSession:
    return fake.connect(access="AK", secret="SK", endpoint="http://vast")


@pytest.fixture
def filled(session: FakeSession) -> FakeSession:
    """A session whose bucket has schema "s" and table "t" holding ROWS."""
    with session.transaction() as tx:
        tx.bucket("bucket").create_schema("s").create_table("t", SCHEMA).insert(ROWS)
    return session


@pytest.fixture
def table(filled: FakeSession) -> Iterator[FakeTable]:
    with filled.transaction() as tx:
        yield tx.bucket("bucket").schema("s").table("t")


def ids(reader: pa.RecordBatchReader) -> list[str]:
    return reader.read_all().column("id").to_pylist()


def sql_ids(where: str) -> list[str]:
    """What a SQL engine (DuckDB) returns for the same filter."""
    con = duckdb.connect()
    con.register("data", ROWS)
    return [row[0] for row in con.execute(f"SELECT id FROM data WHERE {where}").fetchall()]


# ---------------------------------------------------------------------------------------------------------------
# catalog


def test_create_is_idempotent_and_listed(session: FakeSession) -> None:
    with session.transaction() as tx:
        bucket = tx.bucket("bucket")
        schema = bucket.create_schema("s")
        assert bucket.create_schema("s", fail_if_exists=False) == schema
        with pytest.raises(errors.SchemaExists):
            bucket.create_schema("s")
        table = schema.create_table("t", SCHEMA)
        assert schema.create_table("t", pa.schema([("other", pa.int8())]), fail_if_exists=False) == table
        with pytest.raises(errors.TableExists):
            schema.create_table("t", SCHEMA)
        table.create_projection("by_n", ["n"], ["id"])
        assert [p.name for p in table.projections()] == ["by_n"]
        with pytest.raises(errors.Conflict):
            table.create_projection("by_n", ["n"], ["id"])
    with session.transaction() as tx:
        schema = tx.bucket("bucket").schema("s")
        assert [s.name for s in tx.bucket("bucket").schemas()] == ["s"]
        assert schema.tablenames() == ["t"]
        table = schema.table("t")
        assert table.arrow_schema == SCHEMA == table.columns()
        assert table.projection("by_n").columns() == pa.schema([SCHEMA.field("n"), SCHEMA.field("id")])


def test_missing_objects_raise_sdk_errors(session: FakeSession) -> None:
    with session.transaction() as tx:
        with pytest.raises(errors.MissingBucket) as bucket_error:
            tx.bucket("nope")
        assert bucket_error.value.bucket == "nope"
        bucket = tx.bucket("bucket")
        with pytest.raises(errors.MissingSchema) as schema_error:
            bucket.schema("s")
        assert (schema_error.value.bucket, schema_error.value.schema) == ("bucket", "s")
        assert bucket.schema("s", fail_if_missing=False) is None
        schema = bucket.create_schema("s")
        with pytest.raises(errors.MissingTable) as table_error:
            schema.table("t")
        assert (table_error.value.schema, table_error.value.table) == ("s", "t")
        assert schema.table("t", fail_if_missing=False) is None
        table = schema.create_table("t", SCHEMA)
        with pytest.raises(errors.MissingProjection):
            table.projection("p")


def test_drop_non_empty_schema_conflicts_then_drops(session: FakeSession) -> None:
    with session.transaction() as tx:
        schema = tx.bucket("bucket").create_schema("s")
        table = schema.create_table("t", SCHEMA)
        with pytest.raises(errors.Conflict):
            schema.drop()
        table.drop()
        schema.drop()
        assert tx.bucket("bucket").schemas() == []


@pytest.mark.parametrize(
    ("arrow_type", "error"),
    [
        (pa.binary(4), errors.NotSupportedSchema),  # ibis rejects it in the SDK
        (pa.null(), errors.NotSupportedSchema),  # the server rejects it (SDK test_unsupported_types)
        (pa.dictionary(pa.int32(), pa.string()), errors.NotSupportedSchema),
        (pa.large_string(), errors.NotSupportedSchema),  # the SDK could never query it
    ],
)
def test_unsupported_column_types_are_rejected(session: FakeSession, arrow_type: pa.DataType, error: type) -> None:
    with session.transaction() as tx:
        schema = tx.bucket("bucket").create_schema("s")
        with pytest.raises(error):
            schema.create_table("t", pa.schema([("u", arrow_type)]))
        table = schema.create_table("t", pa.schema([("a", pa.int64())]))
        with pytest.raises(error):
            table.add_column(pa.schema([("u", arrow_type)]))


def test_duplicate_fields_fail_like_the_sdk(session: FakeSession) -> None:
    with session.transaction() as tx:
        schema = tx.bucket("bucket").create_schema("s")
        with pytest.raises(ValueError, match="duplicate field names"):
            schema.create_table("t", pa.schema([("a", pa.int64()), ("a", pa.int64())]))


def test_columns_can_be_added_renamed_and_dropped(filled: FakeSession) -> None:
    with filled.transaction() as tx:
        table = tx.bucket("bucket").schema("s").table("t")
        table.add_column(pa.schema([("extra", pa.int32())]))
        table.rename_column("extra", "more")
        assert table.select(columns=["more"]).read_all().column("more").null_count == ROWS.num_rows
        table.drop_column(pa.schema([("more", pa.int32())]))
        assert table.arrow_schema == SCHEMA


# ---------------------------------------------------------------------------------------------------------------
# select


PREDICATES: list[tuple[Callable[[Any], Any], str]] = [
    (lambda t: t["n"] == 3, "n = 3"),
    (lambda t: t["n"] != 3, "n <> 3"),
    (lambda t: t["n"] < 2, "n < 2"),
    (lambda t: t["n"] <= 2, "n <= 2"),
    (lambda t: t["n"] > 2, "n > 2"),
    (lambda t: t["n"] >= 2, "n >= 2"),
    (lambda t: t["n"] >= INT64_MAX, f"n >= {INT64_MAX}"),
    (lambda t: t["n"] <= INT64_MIN, f"n <= {INT64_MIN}"),
    (lambda t: t["n"].between(INT64_MIN, 0), f"n BETWEEN {INT64_MIN} AND 0"),
    (lambda t: t["n"].isin([1, 5, 100]), "n IN (1, 5, 100)"),
    (lambda t: t["n"].isnull(), "n IS NULL"),
    (lambda t: ~t["n"].isnull(), "n IS NOT NULL"),
    (lambda t: t["name"] == "alpha", "name = 'alpha'"),
    (lambda t: t["name"] > "alpha", "name > 'alpha'"),
    (lambda t: t["name"] < "b", "name < 'b'"),
    (lambda t: t["name"].startswith("al"), "starts_with(name, 'al')"),
    (lambda t: t["name"].startswith(""), "name IS NOT NULL"),
    (lambda t: t["name"].contains("ph"), "contains(name, 'ph')"),
    (lambda t: t["x"] > 2.5, "x > 2.5"),
    (lambda t: (t["n"] > 0) & (t["x"] < 6), "n > 0 AND x < 6"),
    (lambda t: (t["n"] == 1) | (t["n"] == 8) | t["n"].isnull(), "n = 1 OR n = 8 OR n IS NULL"),
    (lambda t: ((t["n"] < 0) | (t["n"] > 5)) & ~t["name"].isnull(), "(n < 0 OR n > 5) AND name IS NOT NULL"),
    (lambda t: t["name"].startswith("al") | (t["name"] == "beta"), "starts_with(name, 'al') OR name = 'beta'"),
]


@pytest.mark.parametrize(("build", "where"), PREDICATES, ids=[where for _, where in PREDICATES])
def test_select_filters_like_sql(table: FakeTable, build: Callable[[Any], Any], where: str) -> None:
    expected = sorted(sql_ids(where))
    assert sorted(ids(table.select(predicate=build(table)))) == expected
    assert sorted(ids(table.select(predicate=build(_)))) == expected  # ibis `_`, resolved as the SDK does


def test_select_columns_row_ids_and_boolean_predicates(table: FakeTable) -> None:
    result = table.select(columns=["name", "id"], internal_row_id=True).read_all()
    assert result.schema == pa.schema([SCHEMA.field("name"), SCHEMA.field("id"), pa.field(ROW_ID, pa.uint64())])
    assert sorted(result.column(ROW_ID).to_pylist()) == list(range(ROWS.num_rows))
    assert table.select(predicate=True).read_all().num_rows == ROWS.num_rows
    assert table.select(predicate=False).read_all().num_rows == 0


def test_literals_are_coerced_like_the_serializer(table: FakeTable) -> None:
    # The SDK sends int(1.5) for an int64 column, so a cluster matches n == 1.
    assert ids(table.select(predicate=table["n"] == 1.5)) == ["r03"]
    # ibis turns a comparison with an out-of-range literal into plain False: no rows, no request.
    assert (table["n"] == 2**63) is False
    assert ids(table.select(predicate=table["n"] == 2**63)) == []


def test_decimal_literals_go_through_float_like_the_serializer(session: FakeSession) -> None:
    # `build_literal_impl` sends int(float(v) * 10**scale): 0.29 becomes 0.28 on the wire.
    with session.transaction() as tx:
        table = tx.bucket("bucket").create_schema("s").create_table("d", pa.schema([("d", pa.decimal128(10, 2))]))
        table.insert(pa.table({"d": pa.array([Decimal("0.28"), Decimal("0.29")], pa.decimal128(10, 2))}))
        assert table.select(predicate=table["d"] == 0.29).read_all().column("d").to_pylist() == [Decimal("0.28")]


def test_sdk_appends_row_id_to_the_callers_column_list(table: FakeTable) -> None:
    columns = ["id"]
    table.select(columns=columns, internal_row_id=True).read_all()
    assert columns == ["id", ROW_ID]


UNSUPPORTED: list[Callable[[Any], Any]] = [
    lambda t: (t["n"] == 1) | (t["name"] == "alpha"),  # OR across two columns
    lambda t: t["n"].notnull(),
    lambda t: ~(t["n"] == 1),
    lambda t: t["n"].isin([]),
    lambda t: t["name"].endswith("a"),
    lambda t: t["n"] == t["x"],
]


@pytest.mark.parametrize(
    "build", UNSUPPORTED, ids=["or-two-columns", "notnull", "not-eq", "isin-empty", "endswith", "col-col"]
)
def test_fake_rejects_what_the_sdk_rejects(table: FakeTable, build: Callable[[Any], Any]) -> None:
    predicate = build(table)
    with pytest.raises(Exception) as direct:
        _internal.build_query_data_request(schema=table.arrow_schema, predicate=predicate, field_names=SCHEMA.names)
    with pytest.raises(Exception) as faked:
        table.select(predicate=predicate)
    assert type(faked.value) is type(direct.value) is NotImplementedError
    assert str(faked.value) == str(direct.value)


def test_oversized_isin_is_too_large_like_the_sdk(table: FakeTable) -> None:
    with pytest.raises(errors.TooLargeRequest):
        table.select(predicate=table["name"].isin([f"{i}" * 1_000_000 for i in range(5)]))


def select_order(seed: int, max_batch_rows: int = 100) -> tuple[list[str], int]:
    """Row order and batch count of a full select on a fresh fake with this seed."""
    fake = FakeVast(buckets=["bucket"], seed=seed, max_batch_rows=max_batch_rows)
    session = fake.connect(access="a", secret="s", endpoint="http://vast")
    with session.transaction() as tx:
        table = tx.bucket("bucket").create_schema("s").create_table("t", SCHEMA)
        table.insert(ROWS)
        batches = list(table.select())
    return [row for batch in batches for row in batch.column(0).to_pylist()], len(batches)


def test_results_are_shuffled_per_seed() -> None:
    (first, _), (again, _), (other, _) = select_order(1), select_order(1), select_order(2)
    assert sorted(first) == sorted(other) == ROWS.column("id").to_pylist()
    assert first == again  # reproducible for a seed
    assert first != other
    assert first != sorted(first)


def test_results_come_in_several_batches() -> None:
    rows, batches = select_order(1, max_batch_rows=3)
    assert len(rows) == ROWS.num_rows and batches >= ROWS.num_rows // 3


def test_limit_rows_is_an_arbitrary_subset(table: FakeTable) -> None:
    matching = set(sql_ids("n IS NOT NULL"))
    subsets = {tuple(sorted(ids(table.select(predicate=~table["n"].isnull(), limit_rows=3)))) for _ in range(10)}
    assert all(len(subset) == 3 and set(subset) <= matching for subset in subsets)
    assert len(subsets) > 1  # not always the same (first) rows
    assert len(ids(table.select(limit_rows=0))) == ROWS.num_rows  # the SDK treats 0 as "no limit"
    with pytest.raises(ValueError, match="non-negative"):
        table.select(limit_rows=-1)


def test_reader_must_be_consumed_inside_the_transaction(filled: FakeSession) -> None:
    with filled.transaction() as tx:
        reader = tx.bucket("bucket").schema("s").table("t").select()
    with pytest.raises(errors.MissingTransaction):
        reader.read_all()


# ---------------------------------------------------------------------------------------------------------------
# writes


def test_insert_returns_sequential_row_ids(session: FakeSession) -> None:
    with session.transaction() as tx:
        table = tx.bucket("bucket").create_schema("s").create_table("t", SCHEMA)
        first = table.insert(ROWS.slice(0, 2))
        second = table.insert(ROWS.slice(2, 3).to_batches()[0])
        empty = table.insert(ROWS.slice(0, 0))
    assert isinstance(first, pa.ChunkedArray) and first.type == pa.uint64()
    assert (first.to_pylist(), second.to_pylist(), empty.to_pylist()) == ([0, 1], [2, 3, 4], [])


def test_insert_rejects_unknown_columns_and_other_types(session: FakeSession) -> None:
    with session.transaction() as tx:
        table = tx.bucket("bucket").create_schema("s").create_table("t", SCHEMA)
        with pytest.raises(errors.BadRequest):
            table.insert(pa.table({"nope": [1]}))
        with pytest.raises(errors.BadRequest):
            table.insert(pa.table({"n": pa.array([1], pa.int32())}))
        table.insert(pa.table({"id": ["only-id"]}))  # missing columns are NULL
        assert table.select().read_all().to_pylist() == [{"id": "only-id", "n": None, "name": None, "x": None}]


def test_update_and_delete_by_row_id(table: FakeTable) -> None:
    rows = table.select(columns=["n"], predicate=table["n"] > 50, internal_row_id=True).read_all()
    table.update(rows.set_column(0, "n", pa.array([7] * rows.num_rows, pa.int64())))
    assert sorted(ids(table.select(predicate=table["n"] == 7))) == ["r10", "r11"]
    doomed = table.select(columns=[], predicate=table["n"].isnull(), internal_row_id=True).read_all()
    table.delete(doomed)
    assert sorted(ids(table.select())) == sorted(set(ROWS.column("id").to_pylist()) - {"r08", "r09"})
    with pytest.raises(errors.BadRequest):
        table.delete(doomed)  # those rows are gone
    with pytest.raises(errors.MissingRowIdColumn):
        table.update(pa.table({"n": [1]}))
    with pytest.raises(errors.MissingRowIdColumn):
        table.delete(pa.table({"id": ["r01"]}))


def test_update_a_subset_of_columns(table: FakeTable) -> None:
    rows = table.select(columns=["id", "name"], predicate=table["id"] == "r03", internal_row_id=True).read_all()
    table.update(rows.set_column(1, "name", pa.array(["renamed"])), columns=["name"])
    assert table.select(predicate=table["id"] == "r03").read_all().to_pylist() == [
        {"id": "r03", "n": 1, "name": "renamed", "x": 2.5}
    ]


# ---------------------------------------------------------------------------------------------------------------
# transactions


def test_exception_rolls_back(filled: FakeSession, fake: FakeVast) -> None:
    with pytest.raises(ZeroDivisionError), filled.transaction() as tx:
        table = tx.bucket("bucket").schema("s").table("t")
        table.insert(ROWS.slice(0, 1))
        table.drop()
        1 / 0  # noqa: B018
    assert fake.read_committed("bucket", "s", "t").num_rows == ROWS.num_rows


def test_transactions_see_a_snapshot(filled: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with filled.transaction() as reader:
        table = reader.bucket("bucket").schema("s").table("t")
        with other.transaction() as writer:
            writer.bucket("bucket").schema("s").table("t").insert(pa.table({"id": ["new"]}))
            writer.bucket("bucket").create_schema("later")
            assert "new" in ids(writer.bucket("bucket").schema("s").table("t").select())  # its own writes
        assert "new" not in ids(table.select())
        assert reader.bucket("bucket").schema("later", fail_if_missing=False) is None
    with filled.transaction() as tx:
        assert "new" in ids(tx.bucket("bucket").schema("s").table("t").select())


def test_concurrent_update_of_a_row_conflicts(filled: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with filled.transaction() as first:
        t1 = first.bucket("bucket").schema("s").table("t")
        row = t1.select(columns=["n"], predicate=t1["id"] == "r03", internal_row_id=True).read_all()
        t1.update(row.set_column(0, "n", pa.array([10], pa.int64())))
        with pytest.raises(errors.Conflict), other.transaction() as second:
            t2 = second.bucket("bucket").schema("s").table("t")
            t2.insert(pa.table({"id": ["lost"]}))
            with pytest.raises(errors.Conflict):
                t2.update(row.set_column(0, "n", pa.array([20], pa.int64())))
            # the transaction is doomed: leaving it normally still fails with Conflict
    committed = fake.read_committed("bucket", "s", "t")
    assert "lost" not in committed.column("id").to_pylist()
    assert committed.filter(pc.equal(committed["id"], "r03")).column("n").to_pylist() == [10]


def test_write_after_a_newer_commit_conflicts(filled: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with pytest.raises(errors.Conflict), filled.transaction() as stale:
        table = stale.bucket("bucket").schema("s").table("t")
        rows = table.select(columns=[], predicate=table["id"] == "r00", internal_row_id=True).read_all()
        with other.transaction() as fresh:
            fresh.bucket("bucket").schema("s").table("t").delete(rows)
        table.delete(rows)


def test_concurrent_inserts_both_commit(filled: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with filled.transaction() as first, other.transaction() as second:
        first.bucket("bucket").schema("s").table("t").insert(pa.table({"id": ["one"]}))
        second.bucket("bucket").schema("s").table("t").insert(pa.table({"id": ["two"]}))
    assert {"one", "two"} <= set(fake.read_committed("bucket", "s", "t").column("id").to_pylist())


def test_concurrent_creation_of_a_schema_conflicts(session: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with session.transaction() as first, pytest.raises(errors.Conflict), other.transaction() as second:
        first.bucket("bucket").create_schema("s", fail_if_exists=False)
        second.bucket("bucket").create_schema("s", fail_if_exists=False)


def test_insert_into_a_table_dropped_meanwhile_fails_at_commit(filled: FakeSession, fake: FakeVast) -> None:
    other = fake.connect(access="AK", secret="SK", endpoint="http://vast")
    with pytest.raises(errors.Conflict), filled.transaction() as tx:
        tx.bucket("bucket").schema("s").table("t").insert(pa.table({"id": ["orphan"]}))
        with other.transaction() as dropper:
            dropper.bucket("bucket").schema("s").table("t").drop()
    with pytest.raises(errors.MissingTable):
        fake.read_committed("bucket", "s", "t")


def test_objects_are_unusable_outside_their_transaction(filled: FakeSession) -> None:
    with filled.transaction() as tx:
        table = tx.bucket("bucket").schema("s").table("t")
    with pytest.raises(TransactionNotActiveError):
        table.select()
    with pytest.raises(TransactionNotActiveError):
        tx.bucket("bucket")


# ---------------------------------------------------------------------------------------------------------------
# connecting


def test_wrong_keys_are_forbidden(fake: FakeVast) -> None:
    with pytest.raises(errors.Forbidden) as wrong_access:
        fake.connect(access="BAD", secret="SK", endpoint="http://vast")
    assert wrong_access.value.status == 403
    with pytest.raises(errors.Forbidden):
        fake.connect(access="AK", secret="BAD", endpoint="http://vast")


def test_endpoint_is_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVast(endpoint="http://vast")
    monkeypatch.delenv("AWS_S3_ENDPOINT_URL", raising=False)
    with pytest.raises(ValueError, match="endpoint"):
        fake.connect(access="a", secret="s")
    with pytest.raises(errors.ConnectionError):
        fake.connect(access="a", secret="s", endpoint="http://elsewhere")
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "http://vast")
    assert fake.connect(access="a", secret="s").endpoint == "http://vast"


def test_predicates_built_from_ibis_tables_elsewhere_work(table: FakeTable) -> None:
    # The serializer only looks at column names, so a predicate from an equivalent ibis table is fine.
    other = ibis.table(ibis.Schema.from_pyarrow(SCHEMA), "elsewhere")
    assert ids(table.select(predicate=other["n"] == 3)) == ["r05"]
