"""What is particular to the VAST metadata store: provisioning, fail-fast start-up, SDK limits it designs around.

Its behaviour as a TAMS store is tested by the API suite, which runs on it too (`STORE_BACKENDS`, "vast+s3").
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import vastdb
from vastdb import _internal

from helpers import VAST_SETTINGS, fake_vast_store, make_settings, new_fake_vast, stored_flow
from real_vast import empty_store, real_vast_settings, session_schema
from tams_api.__main__ import main
from tams_api.app import open_services
from tams_api.config import Settings
from tams_api.domain import deletes, flows
from tams_api.domain.segments import register
from tams_api.errors import ConfigurationError
from tams_api.model import FlowWrite, NewSegment, PageRequest, SegmentQuery, ServiceInfo
from tams_api.provision import deprovision_vast, provision_vast
from tams_api.stores.vast.schema import PROJECTIONS, TABLES
from tams_api.timerange import EVERYTHING, parse_bounds
from vast_fake import FakeVast


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeVast:
    """A fake cluster, which provisioning, the CLI and start-up find as in production: through `vastdb.connect`."""
    cluster = new_fake_vast()
    monkeypatch.setattr(vastdb, "connect", cluster.connect)
    return cluster


def vast_settings(tmp_path: Path, **changes: object) -> Settings:
    return make_settings(tmp_path, **{**VAST_SETTINGS, **changes})


def test_provisioning_creates_schema_tables_and_projections_once(fake: FakeVast, tmp_path: Path) -> None:
    first = provision_vast(vast_settings(tmp_path))
    assert "created schema tams" in first
    assert all(f"table {name}" in first for name in TABLES)
    assert provision_vast(vast_settings(tmp_path)).endswith("everything exists")

    session = fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test")
    with session.transaction() as tx:
        schema = tx.bucket("tams").schema("tams")
        assert sorted(schema.tablenames()) == sorted(TABLES)
        for table_name, name, sorted_columns, unsorted_columns in PROJECTIONS:
            projection = schema.table(table_name).projection(name)
            assert projection.columns().names == [*sorted_columns, *unsorted_columns]
        segments = schema.table("segments").projection("segments_by_flow_start").columns().names
        assert segments[:2] == ["flow_id", "start_ns"]


def test_a_schema_made_before_soft_delete_gains_its_table_and_keeps_its_data(
    fake: FakeVast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as before_soft_delete:
        before_soft_delete.delitem(TABLES, "deleted_flows")
        provision_vast(vast_settings(tmp_path))
        fake_vast_store(fake).update_service_info("kept", None)
    assert provision_vast(vast_settings(tmp_path)).endswith(": created table deleted_flows")
    store = fake_vast_store(fake)
    assert store.get_service_info(ServiceInfo("default", "")).name == "kept"
    flows.put(store, flow("f"))
    deletes.soft_delete(store, "f", "ops")
    assert stored_flow(store, "f") is None
    assert [flow.flow_id for flow in store.list_deleted_flows(PageRequest(limit=10)).items] == ["f"]


def test_deprovisioning_drops_tables_then_schema_once(fake: FakeVast, tmp_path: Path) -> None:
    settings = vast_settings(tmp_path)
    store = fake_vast_store(fake)
    flows.put(store, flow("f"))
    dropped = deprovision_vast(settings)
    assert all(f"table {name}" in dropped for name in TABLES) and dropped.endswith("schema tams")
    assert deprovision_vast(settings).endswith("nothing to drop")
    with fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test").transaction() as tx:
        assert tx.bucket("tams").schemas() == []
    assert "created schema tams" in provision_vast(settings)
    assert stored_flow(fake_vast_store(fake), "f") is None


def test_deprovisioning_keeps_what_the_store_did_not_create(fake: FakeVast, tmp_path: Path) -> None:
    settings = vast_settings(tmp_path)
    provision_vast(settings)
    session = fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test")
    with session.transaction() as tx:
        tx.bucket("tams").schema("tams").create_table("someone_elses", pa.schema([("x", pa.int64())]))
    assert deprovision_vast(settings).endswith("; kept table someone_elses (not the store's)")
    with session.transaction() as tx:
        assert tx.bucket("tams").schema("tams").tablenames() == ["someone_elses"]


def test_deprovisioning_a_missing_bucket_is_done(fake: FakeVast, tmp_path: Path) -> None:
    assert deprovision_vast(vast_settings(tmp_path, vast_bucket="missing")).endswith("nothing to drop")


def test_deprovisioning_maps_a_concurrent_change_to_a_clear_error(fake: FakeVast, tmp_path: Path) -> None:
    settings = vast_settings(tmp_path)
    provision_vast(settings)
    session = fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test")
    with session.transaction() as tx:  # an open transaction that changes a table of the store
        tx.bucket("tams").schema("tams").table("flows").create_projection("another", ["id"], [])
        with pytest.raises(ConfigurationError, match=r"^VAST tams/tams: a concurrent transaction changed it"):
            deprovision_vast(settings)
    assert "dropped table" in deprovision_vast(settings)


def test_the_cli_provisions_vast(
    fake: FakeVast, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in VAST_SETTINGS.items():
        monkeypatch.setenv(f"TAMS_{name.upper()}", value)
    main(["provision", "vast"])
    main(["provision", "vast"])
    first, second = capsys.readouterr().out.strip().splitlines()
    assert "created" in first and second.endswith("everything exists")


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"vast_bucket": "missing"}, "TAMS_VAST_BUCKET"),
        ({"vast_access_key": "wrong"}, "TAMS_VAST_ACCESS_KEY"),
        ({"vast_secret_key": "wrong"}, "TAMS_VAST_SECRET_KEY"),
        ({"vast_endpoint": "http://elsewhere.test"}, "TAMS_VAST_ENDPOINT"),
    ],
)
def test_bad_settings_fail_at_start_up_naming_the_setting(
    fake: FakeVast, tmp_path: Path, changes: dict[str, str], setting: str
) -> None:
    settings = vast_settings(tmp_path, **changes)
    for start in (open_services, provision_vast):
        with pytest.raises(ConfigurationError) as error:
            start(settings)
        assert setting in str(error.value) and "\n" not in str(error.value)


def test_the_cli_reports_a_missing_bucket_in_one_line(fake: FakeVast, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**VAST_SETTINGS, "vast_bucket": "missing"}.items():
        monkeypatch.setenv(f"TAMS_{name.upper()}", value)
    with pytest.raises(SystemExit) as exit_:
        main(["provision", "vast"])
    assert str(exit_.value).startswith("tams-api: bad configuration: TAMS_VAST_BUCKET: bucket 'missing'")


@pytest.mark.parametrize("missing", ["vast_endpoint", "vast_access_key", "vast_secret_key", "vast_bucket"])
def test_vast_backend_needs_its_settings(tmp_path: Path, missing: str) -> None:
    with pytest.raises(ValueError, match=f"TAMS_{missing.upper()}"):
        Settings(data_dir=tmp_path, **{**VAST_SETTINGS, missing: None})


def test_the_fake_rejects_an_or_across_columns_as_vast_does(fake: FakeVast) -> None:
    """Why the store deletes a flow's collection rows in two selects (as collector, as member), not one."""
    store = fake_vast_store(fake)
    with store._read() as t:
        table = t["flow_collections"]
        predicate = (table["collector_id"] == "f") | (table["member_id"] == "f")
        with pytest.raises(NotImplementedError):
            table.select(predicate=predicate).read_all()
        with pytest.raises(NotImplementedError):
            _internal.build_query_data_request(
                schema=table.arrow_schema, predicate=predicate, field_names=table.arrow_schema.names
            )
        per_column = (table["collector_id"] == "f") & table["member_id"].isin(["a", "b"])
        assert table.select(predicate=per_column).read_all().num_rows == 0


def flow(flow_id: str) -> FlowWrite:
    metadata = {"codec": "video/h264", "container": "video/mp2t"}
    return FlowWrite(flow_id, "source", "urn:x-nmos:format:video", metadata, {}, [], None)


def held_elsewhere(timeranges: list[str]) -> list[NewSegment]:
    """Segments of objects known by URL only (no allocation needed)."""
    return [
        NewSegment(f"o{n}", tr, parse_bounds(tr), tr, parse_bounds(tr), get_urls=[{"url": "http://x/", "label": "x"}])
        for n, tr in enumerate(timeranges)
    ]


def test_segment_pages_do_not_depend_on_the_order_vast_returns_rows(fake: FakeVast) -> None:
    """Rows come back shuffled (differently per session); sorting and keyset paging are the store's."""
    store = fake_vast_store(fake)
    flows.put(store, flow("f"))
    segments = held_elsewhere([f"[{n}:0_{n + 1}:0)" for n in range(40)])
    assert register(store, "f", segments) == []

    def pages(reverse: bool) -> list[str]:
        seen, key = [], None
        while True:
            page = store.list_segments("f", SegmentQuery(PageRequest(7, key, reverse), EVERYTHING)).page
            seen += [segment.timerange for segment in page.items]
            if page.next_key is None:
                return seen
            key = page.next_key

    expected = [segment.timerange for segment in segments]
    for seed in range(3):
        store.session.rng.seed(seed)
        assert pages(reverse=False) == expected
        assert pages(reverse=True) == expected[::-1]


def test_the_real_cluster_run_is_set_up_from_vastdb_variables(
    fake: FakeVast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `vast-real+s3` does around each test, run here on the fake standing in for the cluster the VASTDB_*
    variables name: settings from them, a fresh schema per session, emptied per test, dropped at the end."""
    environ = {
        "VASTDB_ENDPOINT": "http://vast.test",
        "VASTDB_ACCESS_KEY": "vast-access",
        "VASTDB_SECRET_KEY": "vast-secret",
        "VASTDB_BUCKET": "tams",
    }
    assert real_vast_settings({**environ, "VASTDB_BUCKET": ""}) is None
    cluster = real_vast_settings(environ)
    assert cluster == {**VAST_SETTINGS}
    with session_schema(make_settings(tmp_path, **cluster)) as changes:
        schema = changes["vast_schema"]
        assert schema.startswith("tams_test_")
        settings = make_settings(tmp_path, **cluster, **changes)
        store = fake_vast_store(fake, schema)
        flows.put(store, flow("f"))
        assert register(store, "f", held_elsewhere(["[0:0_1:0)"])) == []
        empty_store(settings)
        kept = ["write_guards", "schema_version"]
        assert [name for name in TABLES if fake.read_committed("tams", schema, name).num_rows] == kept
        assert stored_flow(store, "f") is None
    with fake.connect(access="vast-access", secret="vast-secret", endpoint="http://vast.test").transaction() as tx:
        assert tx.bucket("tams").schema(schema, fail_if_missing=False) is None, "dropped at the end"
