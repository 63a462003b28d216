"""Several API replicas on one PostgreSQL store, for real: store instances (each its own pool, as each replica
has) and API processes racing on the same flow, segments, objects, lease and outbox. Serializable transactions
retried when they lose (stores/postgres/connection.py) leave exactly one winner wherever the rules allow one."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import errors as pg_errors

from background import api_process, concurrently
from helpers import new_id, video_flow
from postgres_server import PostgresServer
from tams_api.domain import flows, profiles, webhooks
from tams_api.domain.objects import allocate
from tams_api.domain.segments import register
from tams_api.errors import BadRequest, Unavailable
from tams_api.model import Profile, Webhook
from tams_api.stores.postgres import PostgresMetadataStore, connection
from test_vast_store import flow, held_elsewhere

CLIENTS = 8
ROUNDS = 10


@pytest.fixture
def schema(postgres_server: PostgresServer) -> str:
    return postgres_server.new_schema()


@pytest.fixture
def replicas(postgres_server: PostgresServer, schema: str) -> Iterator[list[PostgresMetadataStore]]:
    """Two stores on one schema, as two replicas are."""
    stores = [PostgresMetadataStore(postgres_server.url, schema, pool_size=CLIENTS) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def rows(store: PostgresMetadataStore, sql: str) -> list[tuple]:
    return store._query(sql)


def test_replicas_creating_one_flow_create_it_once(replicas: list[PostgresMetadataStore]) -> None:
    for round_ in range(ROUNDS):
        new_flow = flow(f"f{round_}")
        outcomes = concurrently(*(lambda s=replicas[n % 2], f=new_flow: flows.put(s, f) for n in range(CLIENTS)))
        assert sorted(created for _, created in outcomes) == [False] * (CLIENTS - 1) + [True], outcomes
    assert rows(replicas[0], "SELECT COUNT(*) FROM flows") == [(ROUNDS,)]
    assert rows(replicas[0], "SELECT id FROM sources") == [("source",)]


def test_replicas_racing_overlapping_segments_store_one_per_range(replicas: list[PostgresMetadataStore]) -> None:
    """N clients on two replicas register segments that all overlap: one wins each round, the others are told
    which segment they overlap, and no segment is stored twice."""
    flows.put(replicas[0], flow("f"))
    for round_ in range(ROUNDS):
        base = round_ * 10
        segments = [
            replace(segment, object_id=f"round-{round_}-{segment.object_id}")
            for segment in held_elsewhere([f"[{base}:{n}_{base + 5}:{n})" for n in range(CLIENTS)])
        ]
        outcomes = concurrently(
            *(lambda n=n, segment=segments[n]: register(replicas[n % 2], "f", [segment]) for n in range(CLIENTS)),
        )
        assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
        assert sorted(len(failures) for failures in outcomes) == [0] + [1] * (CLIENTS - 1)
        assert all("overlaps the existing segment" in failure.summary for failures in outcomes for failure in failures)
    stored = rows(replicas[0], "SELECT start_ns, end_ns FROM segments ORDER BY start_ns")
    assert len(stored) == ROUNDS
    assert all(end < next_start for (_, end), (next_start, _) in itertools.pairwise(stored))


def test_replicas_allocating_one_object_id_have_one_winner(replicas: list[PostgresMetadataStore]) -> None:
    flows.put(replicas[0], flow("f"))

    def allocate_o(store: PostgresMetadataStore) -> None:
        allocate(store, "f", "storage", "video/mp2t", ["o"])

    outcomes = concurrently(*(lambda store=replicas[n % 2]: allocate_o(store) for n in range(CLIENTS)))
    assert outcomes.count(None) == 1, outcomes
    losers = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(loser, BadRequest) and "already in use" in loser.summary for loser in losers)
    assert rows(replicas[0], "SELECT id FROM objects") == [("o",)]


def test_replicas_creating_one_profile_have_one_winner(replicas: list[PostgresMetadataStore]) -> None:
    profile = Profile("p", {"format": "urn:x-nmos:format:video", "codec": "video/h264"}, "0:0")
    outcomes = concurrently(*(lambda store=replicas[n % 2]: profiles.create(store, profile) for n in range(CLIENTS)))
    assert outcomes.count(None) == 1, outcomes
    assert rows(replicas[0], "SELECT id FROM profiles") == [("p",)]


def test_workers_claiming_the_lease_leave_one_holder(replicas: list[PostgresMetadataStore]) -> None:
    claims = [lambda n=n: replicas[n % 2].claim_lease("worker", f"worker-{n}", 60) for n in range(CLIENTS)]
    outcomes = concurrently(*claims)
    assert sorted(outcomes) == [False] * (CLIENTS - 1) + [True]
    (holder,) = rows(replicas[0], "SELECT holder FROM leases")
    assert outcomes[int(holder[0].removeprefix("worker-"))] is True
    assert replicas[1].claim_lease("worker", holder[0], 60), "the holder renews it"


def test_events_of_concurrent_writers_are_numbered_in_commit_order_without_gaps(
    replicas: list[PostgresMetadataStore],
) -> None:
    """A webhook's cursor moves past every event it was given: an event numbered below one already read but
    committed after it would never be delivered."""
    hook = Webhook(id=new_id(), url="http://receiver.test/", events=["flows/created"], status="created")
    webhooks.register(replicas[0], hook)
    outcomes = concurrently(*(lambda n=n: flows.put(replicas[n % 2], flow(f"f{n}")) for n in range(CLIENTS)))
    assert all(created for _, created in outcomes)
    events = replicas[1].events_after(0, 100)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    created = sorted(event.flow_id for event in events if event.type == "flows/created")
    assert created == sorted(f"f{n}" for n in range(CLIENTS))
    assert replicas[0].undelivered_events() == len(events)


def test_a_write_that_keeps_losing_answers_503_and_changes_nothing(
    replicas: list[PostgresMetadataStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "BACKOFF_S", 0.0)
    attempts = []

    def losing(db: Any) -> None:
        attempts.append(db.execute("INSERT INTO leases VALUES ('x', 'y', 0)").rowcount)
        raise pg_errors.SerializationFailure("lost")

    with pytest.raises(Unavailable, match=f"write lost to concurrent writers {connection.WRITE_ATTEMPTS} times"):
        replicas[0].write(losing)
    assert len(attempts) == connection.WRITE_ATTEMPTS
    assert rows(replicas[0], "SELECT * FROM leases") == []


def register_segments(base_url: str, flow_id: str, timeranges: list[str]) -> list[int]:
    """Allocate and register one segment per timerange, a request each; the registrations' status codes."""
    statuses = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for timerange in timeranges:
            allocated = client.post(f"/flows/{flow_id}/storage", json={"limit": 1})
            assert allocated.status_code == 201, allocated.text
            object_id = allocated.json()["media_objects"][0]["object_id"]
            segment = {"object_id": object_id, "timerange": timerange}
            statuses.append(client.post(f"/flows/{flow_id}/segments", json=segment).status_code)
    return statuses


@pytest.mark.parametrize("processes", [2, 1])
def test_clients_of_api_processes_racing_overlapping_segments_leave_one_winner_per_range(
    postgres_server: PostgresServer, schema: str, tmp_path: Path, processes: int
) -> None:
    """CLIENTS clients, spread over the API processes, each register the same ranges (shifted by a nanosecond
    per client, so they all overlap): each range has one winner (201), the others 400, nothing is stored twice."""
    env = {
        "TAMS_METADATA_BACKEND": "postgres",
        "TAMS_POSTGRES_URL": postgres_server.url,
        "TAMS_POSTGRES_SCHEMA": schema,
        "TAMS_URL_SIGNING_KEY": "shared-by-the-replicas",
    }
    ranges = 10
    with ExitStack() as stack:
        urls = [stack.enter_context(api_process(tmp_path / "data", **env)) for _ in range(processes)]
        flow_id = new_id()
        assert httpx.put(f"{urls[0]}/flows/{flow_id}", json=video_flow(flow_id, new_id())).status_code == 201
        per_client = [[f"[{r}:{client}_{r}:900000000)" for r in range(ranges)] for client in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            targets = [urls[n % processes] for n in range(CLIENTS)]
            statuses = list(pool.map(register_segments, targets, [flow_id] * CLIENTS, per_client))
        for r in range(ranges):
            assert sorted(client[r] for client in statuses) == [201] + [400] * (CLIENTS - 1), statuses
        stored = httpx.get(f"{urls[-1]}/flows/{flow_id}/segments", params={"limit": 1000}).json()
        assert len(stored) == ranges and len({segment["object_id"] for segment in stored}) == ranges
