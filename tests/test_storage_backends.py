"""Several storage backends at once: a default one plus an "archive" (TAMS_EXTRA_STORAGE_BACKENDS).

Runs on two filesystem directories, and on filesystem and S3 (a real SeaweedFS) mixed both ways, over both
metadata stores. Where bytes are is checked on the backends themselves (the directory, the bucket), not only
through the API; responses are checked against the spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from helpers import CONTAINER, STORAGE_ID, STORAGE_LABEL, Tams, backend_settings, make_settings, new_id
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from spec import check_response
from tams_api.__main__ import main
from tams_api.app import create_app, open_media
from tams_api.config import MediaBackendSpec, Settings
from tams_api.domain import deletes
from tams_api.errors import ConfigurationError
from tams_api.model import ReleasedMedia
from tams_api.provision import provision_s3
from tams_api.worker import Worker

ARCHIVE = "archive"  # the extra backend's label; sorts before STORAGE_LABEL
# (metadata+media of the default backend, kind of the archive backend)
LAYOUTS = {
    "sqlite:filesystem+filesystem": ("sqlite+filesystem", "filesystem"),
    "sqlite:filesystem+s3": ("sqlite+filesystem", "s3"),
    "vast:s3+filesystem": ("vast+s3", "filesystem"),
    "vast:filesystem+s3": ("vast+filesystem", "s3"),
}

# Bytes of an object as they lie on a backend (None: not there), by storage id and object id.
Look = Callable[[str, str], bytes | None]


def s3_archive(server: S3Server, bucket: str, prefix: str = "") -> MediaBackendSpec:
    return MediaBackendSpec(
        label=ARCHIVE,
        backend="s3",
        bucket=bucket,
        endpoint_url=server.endpoint_url,
        prefix=prefix,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )


def archive_spec(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> MediaBackendSpec:
    if kind == "filesystem":
        return MediaBackendSpec(label=ARCHIVE, backend="filesystem", media_dir=tmp_path / "archive")
    bucket = request.getfixturevalue("s3_bucket")
    return s3_archive(request.getfixturevalue("s3_server"), bucket, prefix=f"{tmp_path.name}-archive/")


@pytest.fixture(params=list(LAYOUTS))
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    stores, archive_kind = LAYOUTS[request.param]
    extra = [archive_spec(request, tmp_path, archive_kind)]
    return backend_settings(request, tmp_path, stores, extra_storage_backends=extra)


@pytest.fixture
def archive(settings: Settings) -> str:
    """The archive backend's storage id (derived from where it keeps media)."""
    return settings.extra_storage_backends[0].storage_id


@pytest.fixture
def look(request: pytest.FixtureRequest, settings: Settings) -> Look:
    specs = {spec.storage_id: spec for spec in settings.media_backends}

    def on_backend(storage_id: str, object_id: str) -> bytes | None:
        spec = specs[storage_id]
        if spec.backend == "filesystem":
            assert spec.media_dir is not None
            found = list(spec.media_dir.rglob(hashlib.sha256(object_id.encode()).hexdigest()))
            return found[0].read_bytes() if found else None
        s3_server: S3Server = request.getfixturevalue("s3_server")
        try:
            stored = s3_server.client().get_object(Bucket=spec.bucket, Key=f"{spec.prefix}{object_id}")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "NoSuchKey"
            return None
        return stored["Body"].read()

    return on_backend


def get_urls(client: TestClient, object_id: str) -> list[dict[str, object]]:
    response = client.get(f"/objects/{object_id}", params={"verbose_storage": "true"})
    return check_response(response, "/objects/{objectId}")["get_urls"]


def copy_to(client: TestClient, object_id: str, storage_id: str) -> int:
    """`POST /objects/{id}/instances` asking for a controlled copy; its status."""
    response = client.post(f"/objects/{object_id}/instances", json={"storage_id": storage_id})
    check_response(response, "/objects/{objectId}/instances")
    return response.status_code


def test_every_backend_is_listed_and_one_is_the_default(tams: Tams, archive: str) -> None:
    backends = check_response(tams.client.get("/service/storage-backends"), "/service/storage-backends")
    assert [backend["label"] for backend in backends] == [ARCHIVE, STORAGE_LABEL]  # alphabetical by label
    assert {backend["id"] for backend in backends} == {STORAGE_ID, archive}
    assert [backend["id"] for backend in backends if backend.get("default_storage")] == [STORAGE_ID]


def test_allocation_puts_bytes_on_the_backend_asked_for(tams: Tams, flow_id: str, archive: str, look: Look) -> None:
    client = tams.client
    response = client.post(f"/flows/{flow_id}/storage", json={"limit": 1, "storage_id": archive})
    archived = check_response(response, "/flows/{flowId}/storage")["media_objects"][0]
    tams.upload(archived, b"archived bytes")
    assert look(archive, archived["object_id"]) == b"archived bytes"
    assert look(STORAGE_ID, archived["object_id"]) is None

    default = tams.allocate(flow_id)[0]  # no storage_id: the default backend
    tams.upload(default, b"default bytes")
    assert look(STORAGE_ID, default["object_id"]) == b"default bytes"
    assert look(archive, default["object_id"]) is None

    tams.register(flow_id, archived["object_id"], "[0:0_1:0)")
    tams.register(flow_id, default["object_id"], "[1:0_2:0)")
    segments = check_response(
        client.get(f"/flows/{flow_id}/segments", params={"verbose_storage": "true"}), "/flows/{flowId}/segments"
    )
    assert [[(url["label"], url["storage_id"]) for url in segment["get_urls"]] for segment in segments] == [
        [(ARCHIVE, archive)],
        [(STORAGE_LABEL, STORAGE_ID)],
    ]
    assert client.get(segments[0]["get_urls"][0]["url"]).content == b"archived bytes"
    assert client.get(segments[1]["get_urls"][0]["url"]).content == b"default bytes"


def test_allocation_on_an_unknown_backend_is_400(tams: Tams, flow_id: str) -> None:
    response = tams.client.post(f"/flows/{flow_id}/storage", json={"limit": 1, "storage_id": new_id()})
    assert response.status_code == 400
    assert "does not exist" in check_response(response, "/flows/{flowId}/storage")["summary"]


def test_a_controlled_copy_on_another_backend(tams: Tams, flow_id: str, archive: str, look: Look) -> None:
    client = tams.client
    object_id = tams.add_segment(flow_id, "[0:0_1:0)", data=b"copied bytes")
    assert copy_to(client, object_id, archive) == 201
    assert look(archive, object_id) == b"copied bytes"

    urls = get_urls(client, object_id)
    assert [(url["storage_id"], url["label"], url["controlled"]) for url in urls] == [
        (STORAGE_ID, STORAGE_LABEL, True),
        (archive, ARCHIVE, True),
    ]
    for url in urls:  # each from its own backend, with the content type the object was uploaded with
        fetched = client.get(str(url["url"]))
        assert (fetched.content, fetched.headers["content-type"]) == (b"copied bytes", CONTAINER)

    def listed(**params: str) -> list[str]:
        response = client.get(f"/flows/{flow_id}/segments", params=params)
        return [url["label"] for url in check_response(response, "/flows/{flowId}/segments")[0]["get_urls"]]

    assert listed() == [STORAGE_LABEL, ARCHIVE]
    assert listed(accept_storage_ids=archive) == [ARCHIVE]
    assert listed(accept_storage_ids=STORAGE_ID) == [STORAGE_LABEL]
    assert listed(accept_storage_ids=f"{archive},{STORAGE_ID}") == [STORAGE_LABEL, ARCHIVE]
    assert listed(accept_get_urls=ARCHIVE) == [ARCHIVE]
    assert listed(presigned="false") == []
    assert copy_to(client, object_id, archive) == 400, "the object is there already"


def test_objects_on_the_same_backends_each_get_their_own_urls(tams: Tams, flow_id: str, archive: str) -> None:
    """A listing whose objects all have instances on the same two backends (their URLs made a store at a time and
    zipped), then one on a single backend among them (made object by object): each URL serves its own object."""
    client = tams.client
    contents = [b"first", b"second", b"third"]
    object_ids = [tams.add_segment(flow_id, f"[{n}:0_{n + 1}:0)", data=data) for n, data in enumerate(contents)]

    def listed() -> list[list[tuple[str, bytes]]]:
        segments = check_response(client.get(f"/flows/{flow_id}/segments"), "/flows/{flowId}/segments")
        return [[(url["label"], client.get(url["url"]).content) for url in segment["get_urls"]] for segment in segments]

    for object_id in object_ids:
        assert copy_to(client, object_id, archive) == 201
    assert listed() == [[(STORAGE_LABEL, data), (ARCHIVE, data)] for data in contents]
    assert client.delete(f"/objects/{object_ids[1]}/instances", params={"storage_id": archive}).status_code == 204
    assert listed() == [
        [(STORAGE_LABEL, b"first"), (ARCHIVE, b"first")],
        [(STORAGE_LABEL, b"second")],
        [(STORAGE_LABEL, b"third"), (ARCHIVE, b"third")],
    ]


def test_copies_that_cannot_be_made(tams: Tams, flow_id: str, archive: str, look: Look) -> None:
    client = tams.client
    allocated = tams.allocate(flow_id)[0]["object_id"]
    assert copy_to(client, allocated, archive) == 404, "allocated, not yet registered"

    object_id = tams.add_segment(flow_id, "[0:0_1:0)")
    assert copy_to(client, object_id, new_id()) == 400, "no such backend"

    never_uploaded = tams.allocate(flow_id)[0]["object_id"]
    tams.register(flow_id, never_uploaded, "[1:0_2:0)")
    assert copy_to(client, never_uploaded, archive) == 400
    assert look(archive, never_uploaded) is None
    assert [url["label"] for url in get_urls(client, never_uploaded)] == [STORAGE_LABEL]

    elsewhere = new_id()
    tams.register(flow_id, elsewhere, "[2:0_3:0)", get_urls=[{"url": "https://elsewhere.example/x", "label": "x"}])
    assert copy_to(client, elsewhere, archive) == 400, "only uncontrolled instances: the service fetches no URLs"


def test_deleting_one_instance_deletes_only_its_bytes(
    app: FastAPI, tams: Tams, flow_id: str, archive: str, look: Look
) -> None:
    client = tams.client
    object_id = tams.add_segment(flow_id, "[0:0_1:0)", data=b"twice")
    assert copy_to(client, object_id, archive) == 201

    response = client.delete(f"/objects/{object_id}/instances", params={"storage_id": STORAGE_ID})
    assert response.status_code == 204
    check_response(response, "/objects/{objectId}/instances")
    assert look(STORAGE_ID, object_id) is None
    assert look(archive, object_id) == b"twice"
    assert [url["storage_id"] for url in get_urls(client, object_id)] == [archive]

    # The archive's instance is the last one (named here by its backend's label): it stays.
    response = client.delete(f"/objects/{object_id}/instances", params={"label": ARCHIVE})
    assert response.status_code == 400
    check_response(response, "/objects/{objectId}/instances")
    assert look(archive, object_id) == b"twice"

    # Deleting the segment releases the object, and with it the bytes on the backend that held them.
    assert client.delete(f"/flows/{flow_id}/segments").status_code == 204
    assert look(archive, object_id) is None
    assert app.state.services.store.released_objects(10) == []


def test_the_worker_deletes_released_media_from_each_backend(
    app: FastAPI, tams: Tams, flow_id: str, archive: str, look: Look
) -> None:
    services = app.state.services
    object_id = tams.add_segment(flow_id, "[0:0_1:0)", data=b"both")
    assert copy_to(tams.client, object_id, archive) == 201
    # The store releases the object, both instances queued; the process "dies" before deleting the media.
    deletes.delete_segments(services.store, flow_id, "_", None, 1000, None)
    queued = {ReleasedMedia(object_id, STORAGE_ID), ReleasedMedia(object_id, archive)}
    assert set(services.store.released_objects(10)) == queued
    assert look(STORAGE_ID, object_id) == look(archive, object_id) == b"both"

    Worker(services.store, services.media, services.settings).collect_garbage()
    assert look(STORAGE_ID, object_id) is None
    assert look(archive, object_id) is None
    assert services.store.released_objects(10) == []


def test_an_init_object_is_served_from_its_own_backend(tams: Tams, flow_id: str, archive: str) -> None:
    client = tams.client
    init_object = tams.allocate(flow_id, limit=1, storage_id=archive, content_type="video/mp4")[0]
    tams.upload(init_object, b"init")
    tams.add_segment(flow_id, "[0:0_1:0)", init_object_id=init_object["object_id"])
    [segment] = check_response(
        client.get(f"/flows/{flow_id}/segments", params={"verbose_storage": "true"}), "/flows/{flowId}/segments"
    )
    assert [url["label"] for url in segment["get_urls"]] == [STORAGE_LABEL]
    [init_url] = segment["init_object"]["get_urls"]
    assert (init_url["label"], init_url["storage_id"]) == (ARCHIVE, archive)
    assert client.get(init_url["url"]).content == b"init"


# -- configuration ---------------------------------------------------------------------------------------------


def extra(**fields: object) -> dict[str, object]:
    return {"label": ARCHIVE, "backend": "filesystem", "media_dir": "/srv/archive", **fields}


SETTING = "TAMS_EXTRA_STORAGE_BACKENDS"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", f"{SETTING}: not JSON"),
        ('{"label": "archive"}', f"{SETTING}: give a JSON list of backend objects"),
        (json.dumps([extra(backend="s3", media_dir=None)]), f"{SETTING}: entry 0: backend s3 needs a bucket"),
        (json.dumps([extra(media_dir=None)]), f"{SETTING}: entry 0: backend filesystem needs a media_dir"),
        (json.dumps([extra(backend="tape")]), f"{SETTING}: entry 0 (backend): Input should be"),
        (json.dumps([extra(bukcet="x")]), f"{SETTING}: entry 0 (bukcet): Extra inputs are not permitted"),
        (json.dumps([extra(id="not-a-uuid")]), f"{SETTING}: entry 0 (id): Input should be a valid UUID"),
        (json.dumps([{"backend": "filesystem", "media_dir": "/a"}]), f"{SETTING}: entry 0 (label):"),
        (json.dumps([extra(), extra()]), f"{SETTING}: label 'archive' names two storage backends"),
        (json.dumps([extra(label=STORAGE_LABEL)]), f"{SETTING}: label '{STORAGE_LABEL}' names two"),
        (json.dumps([extra(id=STORAGE_ID)]), f"{SETTING}: backend 'archive' has the id {STORAGE_ID}"),
        (
            json.dumps([extra(), extra(label="again")]),  # the same directory twice: the same derived id
            f"{SETTING}: backend 'again' has the id",
        ),
    ],
)
def test_bad_extra_backends_stop_the_service_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("TAMS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TAMS_STORAGE_ID", STORAGE_ID)
    monkeypatch.setenv("TAMS_STORAGE_LABEL", STORAGE_LABEL)
    monkeypatch.setenv("TAMS_EXTRA_STORAGE_BACKENDS", value)
    with pytest.raises(SystemExit) as exit_:
        main(["serve"])
    line = str(exit_.value)
    assert line.startswith(f"tams-api: bad configuration: {message}"), line
    assert "\n" not in line


def test_an_unreachable_extra_bucket_is_named(tmp_path: Path, s3_server: S3Server) -> None:
    settings = make_settings(tmp_path, extra_storage_backends=[s3_archive(s3_server, "tams-no-such-archive")])
    with pytest.raises(ConfigurationError) as error:
        open_media(settings)
    assert str(error.value).startswith(
        "TAMS_EXTRA_STORAGE_BACKENDS (backend 'archive') bucket: bucket 'tams-no-such-archive' does not exist"
    )


def test_provisioning_creates_the_bucket_of_each_s3_backend(tmp_path: Path, s3_server: S3Server) -> None:
    spec = s3_archive(s3_server, "tams-provisioned-archive")
    settings = make_settings(tmp_path, extra_storage_backends=[spec])  # the default backend: a directory
    first = provision_s3(settings)
    assert first.startswith("bucket 'tams-provisioned-archive' at ") and first.endswith("created, writable")
    assert "exists, writable" in provision_s3(settings)
    assert open_media(settings).get(spec.storage_id) is not None  # the service now starts


def test_a_filesystem_url_works_on_its_own_backend_only(tmp_path: Path) -> None:
    second = MediaBackendSpec(label=ARCHIVE, backend="filesystem", media_dir=tmp_path / "archive")
    app = create_app(make_settings(tmp_path, extra_storage_backends=[second]))
    put = app.state.services.media.get(second.storage_id).put_request("object-1", CONTAINER)
    elsewhere = put.url.replace(f"/media/{second.storage_id}/", f"/media/{STORAGE_ID}/")
    headers = {"Content-Type": CONTAINER}
    with TestClient(app) as client:
        assert client.put(elsewhere, content=b"x", headers=headers).status_code == 403, "signed for its backend"
        assert client.put(put.url, content=b"x", headers=headers).status_code == 200
