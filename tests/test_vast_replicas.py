"""Several API replicas on one VAST store: VAST has no unique keys, so the store makes transactions that create
the same key conflict (`write_guards`) and retries the loser from a fresh snapshot; here two store instances
over one fake cluster stand in for two replicas, their transactions begun together so that neither sees the
other's writes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import vastdb
from fastapi.testclient import TestClient

from background import concurrently
from helpers import VAST_SETTINGS, fake_vast_store, make_settings, new_fake_vast, video_flow
from real_vast import NO_REAL_VAST, real_vast_settings
from tams_api.app import create_app, open_services
from tams_api.domain import flows, profiles
from tams_api.domain.objects import allocate
from tams_api.domain.segments import register
from tams_api.errors import BadRequest, Unavailable
from tams_api.model import Profile
from tams_api.stores.vast import session as vast_session
from tams_api.stores.vast.schema import ROW_ID
from tams_api.stores.vast.store import VastMetadataStore
from test_vast_store import flow, held_elsewhere
from vast_fake import FakeVast


@pytest.fixture
def fake() -> FakeVast:
    return new_fake_vast()


def committed(fake: FakeVast, table: str) -> list[dict[str, Any]]:
    return fake.read_committed("tams", "tams", table).to_pylist()


def test_a_write_that_lost_to_a_concurrent_writer_is_retried_and_succeeds(fake: FakeVast) -> None:
    store = fake_vast_store(fake)
    fake.conflict_next_commits(1)
    _, created = flows.put(store, flow("f"))
    assert created and fake._commits_to_fail == 0, "the first commit failed, the retry made it"
    assert [row["id"] for row in committed(fake, "flows")] == ["f"]


def test_a_write_that_keeps_losing_answers_503_and_changes_nothing(
    fake: FakeVast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vast_session, "CONFLICT_BACKOFF_S", 0.0)
    store = fake_vast_store(fake)
    fake.conflict_next_commits(vast_session.CONFLICT_ATTEMPTS)
    with pytest.raises(Unavailable, match="concurrent writers changed the same data 6 times"):
        flows.put(store, flow("f"))
    assert committed(fake, "flows") == []

    fake.conflict_next_commits(vast_session.CONFLICT_ATTEMPTS)
    settings = make_settings(tmp_path, **VAST_SETTINGS)
    with TestClient(create_app(services=open_services(settings, fake_vast_store(fake)))) as client:
        flow_id, source_id = str(uuid.uuid4()), str(uuid.uuid4())
        response = client.put(f"/flows/{flow_id}", json=video_flow(flow_id, source_id))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["type"] == "Unavailable"


def together(fake: FakeVast, *calls: Callable[[], Any]) -> list[Any]:
    """Run each call in a thread of its own, their first transactions begun together; what each returned or
    raised."""
    fake.begin_together(len(calls))
    return concurrently(*calls)


@pytest.fixture
def replicas(fake: FakeVast, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[VastMetadataStore, VastMetadataStore]]:
    # Enough tries for the loser to outlast the winner's transaction however threads are scheduled.
    monkeypatch.setattr(vast_session, "CONFLICT_ATTEMPTS", 50)
    yield fake_vast_store(fake), fake_vast_store(fake)


def test_two_replicas_creating_one_flow_create_it_once(
    fake: FakeVast, replicas: tuple[VastMetadataStore, VastMetadataStore]
) -> None:
    a, b = replicas
    outcomes = together(fake, lambda: flows.put(a, flow("f")), lambda: flows.put(b, flow("f")))
    assert sorted(created for _, created in outcomes) == [False, True], "one created it, the other updated it"
    assert [row["id"] for row in committed(fake, "flows")] == ["f"]
    assert [row["id"] for row in committed(fake, "sources")] == ["source"]


def test_two_replicas_creating_one_profile_have_one_winner(
    fake: FakeVast, replicas: tuple[VastMetadataStore, VastMetadataStore]
) -> None:
    a, b = replicas
    profile = Profile("p", {"format": "urn:x-nmos:format:video", "codec": "video/h264"}, "0:0")
    outcomes = together(fake, lambda: profiles.create(a, profile), lambda: profiles.create(b, profile))
    assert outcomes.count(None) == 1
    (loser,) = [outcome for outcome in outcomes if outcome is not None]
    assert isinstance(loser, BadRequest) and "exists already" in loser.summary
    assert [row["id"] for row in committed(fake, "profiles")] == ["p"]


def test_two_replicas_adding_overlapping_segments_store_one(
    fake: FakeVast, replicas: tuple[VastMetadataStore, VastMetadataStore]
) -> None:
    a, b = replicas
    flows.put(a, flow("f"))
    first, second = held_elsewhere(["[0:0_2:0)", "[1:0_3:0)"])
    outcomes = together(fake, lambda: register(a, "f", [first]), lambda: register(b, "f", [second]))
    assert sorted(len(failures) for failures in outcomes) == [0, 1]
    (failure,) = [failure for failures in outcomes for failure in failures]
    assert "overlaps the existing segment" in failure.summary
    assert len(committed(fake, "segments")) == 1


def test_two_replicas_allocating_one_object_id_have_one_winner(
    fake: FakeVast, replicas: tuple[VastMetadataStore, VastMetadataStore]
) -> None:
    a, b = replicas
    flows.put(a, flow("f"))

    def allocate_o(store: VastMetadataStore) -> None:
        allocate(store, "f", "storage", "video/mp2t", ["o"])

    outcomes = together(fake, lambda: allocate_o(a), lambda: allocate_o(b))
    assert outcomes.count(None) == 1
    assert any(isinstance(outcome, BadRequest) and "already in use" in outcome.summary for outcome in outcomes)
    assert [row["id"] for row in committed(fake, "objects")] == ["o"]


def test_two_workers_claiming_the_lease_leave_one_holder(
    fake: FakeVast, replicas: tuple[VastMetadataStore, VastMetadataStore]
) -> None:
    a, b = replicas
    outcomes = together(fake, lambda: a.claim_lease("worker", "a", 60), lambda: b.claim_lease("worker", "b", 60))
    assert sorted(outcomes) == [False, True]
    assert len(committed(fake, "leases")) == 1


@pytest.mark.skipif(real_vast_settings(os.environ) is None, reason=NO_REAL_VAST)
def test_a_real_cluster_lets_only_one_of_two_transactions_write_a_row() -> None:
    """What the store's uniqueness across replicas rests on, probed on the cluster the VASTDB_* variables name:
    two open transactions updating one row do not both commit (`errors.Conflict` on the write or the commit)."""
    cluster = real_vast_settings(os.environ) or {}
    session = vastdb.connect(
        access=cluster["vast_access_key"], secret=cluster["vast_secret_key"], endpoint=cluster["vast_endpoint"]
    )
    name = f"tams_probe_{uuid.uuid4().hex[:12]}"
    with session.transaction() as tx:
        tx.bucket(cluster["vast_bucket"]).create_schema(name).create_table("t", pa.schema([("n", pa.int64())])).insert(
            pa.table({"n": [0]})
        )

    def increment(tx: Any) -> None:
        table = tx.bucket(cluster["vast_bucket"]).schema(name).table("t")
        rows = table.select(internal_row_id=True).read_all()
        table.update(pa.table({ROW_ID: rows[ROW_ID], "n": pa.array([1], pa.int64())}), columns=["n"])

    try:
        with pytest.raises(vastdb.errors.Conflict):  # noqa: SIM117 - the second must begin before the first commits
            with session.transaction() as first, session.transaction() as second:
                increment(first)
                increment(second)
    finally:
        with session.transaction() as tx:
            schema = tx.bucket(cluster["vast_bucket"]).schema(name)
            schema.table("t").drop()
            schema.drop()
