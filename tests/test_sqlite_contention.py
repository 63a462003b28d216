"""The embedded store under contention and over a long life: a writer that cannot begin is told to retry (503,
never 500), a large bulk holds the writer one chunk at a time, and database connections stay few however many
threads come and go."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import Tams, make_settings, new_id, stored_flow, video_flow
from spec import assert_valid
from tams_api.app import create_app
from tams_api.domain.segments import BULK_CHUNK
from tams_api.errors import Unavailable
from tams_api.stores.sqlite import SqliteMetadataStore, connection
from tams_api.stores.sqlite.connection import READERS


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(connection, "BUSY_TIMEOUT", 0.2)  # how long a writer waits before 503, for a quick test
    with TestClient(create_app(make_settings(tmp_path))) as test_client:
        yield test_client


def test_a_write_behind_another_process_holding_the_file_is_503(client: TestClient, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "tams.sqlite", isolation_level=None)  # another process's writer
    other.execute("BEGIN IMMEDIATE")
    try:
        flow_id = new_id()
        refused = client.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id()))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        assert_valid(refused.json(), "error.json")
        assert "busy" in refused.json()["summary"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id, new_id())).status_code == 201  # nothing left half


def test_a_large_bulk_holds_the_writer_one_chunk_at_a_time(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    store: SqliteMetadataStore = app.state.services.store
    inserts_per_transaction: list[int] = []

    def note(statement: str) -> None:
        if statement.startswith("BEGIN"):
            inserts_per_transaction.append(0)
        elif statement.startswith("INSERT INTO segments"):
            inserts_per_transaction[-1] += 1

    with TestClient(app) as client:
        tams = Tams(client)
        flow_id = tams.put_flow()
        count = BULK_CHUNK * 2 + 500
        objects = [item["object_id"] for _ in range(3) for item in tams.allocate(flow_id, limit=1000)][:count]
        bulk = [{"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"} for n, object_id in enumerate(objects)]
        store._writer.set_trace_callback(note)
        assert tams.post_segments(flow_id, bulk).status_code == 201
        store._writer.set_trace_callback(None)
        assert max(inserts_per_transaction) == BULK_CHUNK
        assert sum(inserts_per_transaction) == count
        assert len(tams.pages(f"/flows/{flow_id}/segments", {"limit": 1000})) == 3


def test_a_flow_made_read_only_between_chunks_fails_the_rest_and_keeps_the_first(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    store: SqliteMetadataStore = app.state.services.store
    other = sqlite3.connect(tmp_path / "tams.sqlite", isolation_level=None, check_same_thread=False)
    begun = 0

    def lock_the_flow_before_the_second_chunk(statement: str) -> None:
        nonlocal begun
        if statement.startswith("BEGIN"):
            begun += 1
            if begun == 2:  # the first chunk is committed and the writer not yet taken again
                other.execute("UPDATE flows SET read_only = 1")

    with TestClient(app) as client:
        tams = Tams(client)
        flow_id = tams.put_flow()
        objects = [item["object_id"] for _ in range(2) for item in tams.allocate(flow_id, limit=1000)]
        bulk = [{"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"} for n, object_id in enumerate(objects)]
        store._writer.set_trace_callback(lock_the_flow_before_the_second_chunk)
        answer = tams.post_segments(flow_id, bulk)
        store._writer.set_trace_callback(None)
        other.close()
        assert answer.status_code == 200
        failed = answer.json()["failed_segments"]
        assert [failure["object_id"] for failure in failed] == objects[BULK_CHUNK:]
        assert all("read-only" in failure["error"]["summary"] for failure in failed)
        stored = [
            segment for page in tams.pages(f"/flows/{flow_id}/segments", {"limit": 1000}) for segment in page.json()
        ]
        assert [segment["object_id"] for segment in stored] == objects[:BULK_CHUNK]


def open_database_files(path: Path) -> int:
    """Open descriptors of this process on the database file: one per connection."""
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


def test_connections_stay_few_as_threads_come_and_go(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "tams.sqlite")
    try:
        for _ in range(3 * READERS):  # a server's worker threads retire when idle and new ones start
            reader = threading.Thread(target=stored_flow, args=(store, new_id()))
            reader.start()
            reader.join()
        assert open_database_files(tmp_path / "tams.sqlite") <= READERS + 1
        together = [threading.Thread(target=stored_flow, args=(store, new_id())) for _ in range(4 * READERS)]
        for reader in together:
            reader.start()
        for reader in together:
            reader.join()
        assert open_database_files(tmp_path / "tams.sqlite") <= READERS + 1
    finally:
        store.close()


def counted_connections() -> tuple[list[object], Callable[[], object]]:
    """What a reader pool opens, and the stand-in connections it opens them with."""
    opened: list[object] = []

    def connect() -> object:
        opened.append(object())
        return opened[-1]

    return opened, connect


def test_a_reader_finding_every_connection_taken_waits_for_one_given_back() -> None:
    opened, connect = counted_connections()
    readers = connection._Readers(connect)  # type: ignore[arg-type]
    taken = [readers.take() for _ in range(READERS)]
    assert len(opened) == READERS
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(readers.take()))
    waiter.start()
    for _ in range(10_000):  # until it waits (bounded: it waits at once unless broken)
        if readers._waiting or not waiter.is_alive():
            break
        time.sleep(0.001)
    assert readers._waiting == 1 and not got
    readers.give(taken[0])
    waiter.join(timeout=10)
    assert got == [taken[0]] and len(opened) == READERS


def test_a_reader_waiting_past_the_busy_timeout_is_told_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "BUSY_TIMEOUT", 0.05)
    readers = connection._Readers(counted_connections()[1])  # type: ignore[arg-type]
    for _ in range(READERS):
        readers.take()
    with pytest.raises(Unavailable, match="every metadata store reader was busy"):
        readers.take()
    assert readers._waiting == 0
