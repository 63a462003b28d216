"""One contract for every media store: what clients do with the URLs a store hands out.

Runs on the filesystem store (served by this API) and on the s3 store against a real S3 server (SeaweedFS),
which checks signatures, expiry and content type as S3 does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from helpers import StoppedClock, make_settings
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tams_api.app import create_app, open_media, open_services
from tams_api.stores.filesystem import FilesystemMediaStore
from tams_api.stores.media import MediaStore
from tams_api.stores.s3 import S3MediaStore

BACKENDS = ["filesystem", "s3"]


@dataclass
class MediaUnderTest:
    store: MediaStore
    http: httpx.Client  # fetches the store's URLs as a client would
    url_lifetime: int  # seconds (TAMS_PRESIGNED_URL_TIMEOUT)

    def put(self, object_id: str, data: bytes, content_type: str = "video/mp2t") -> httpx.Response:
        request = self.store.put_request(object_id, content_type)
        return self.http.put(request.url, content=data, headers={"Content-Type": request.content_type})


def s3_settings(tmp_path: Path, server: S3Server, **changes: Any) -> Any:
    return make_settings(
        tmp_path,
        media_backend="s3",
        s3_endpoint_url=server.endpoint_url,
        s3_bucket=server.new_bucket(),
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        **changes,
    )


@pytest.fixture(params=BACKENDS)
def media(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MediaUnderTest]:
    if request.param == "filesystem":
        services = open_services(make_settings(tmp_path))
        with TestClient(create_app(services=services)) as client:  # the API serves the filesystem store's URLs
            yield MediaUnderTest(services.media.default, client, services.settings.presigned_url_timeout)
    else:
        settings = s3_settings(tmp_path, request.getfixturevalue("s3_server"))
        with httpx.Client(timeout=60) as client:
            yield MediaUnderTest(open_media(settings).default, client, settings.presigned_url_timeout)


def tampered(url: str) -> str:
    """The URL with the last character of its signature changed."""
    return url[:-1] + ("0" if url[-1] != "0" else "1")


def test_round_trip_keeps_bytes_and_content_type(media: MediaUnderTest) -> None:
    assert media.put("object-1", b"media bytes").status_code == 200
    response = media.http.get(media.store.get_urls(["object-1"])[0])
    assert response.status_code == 200
    assert response.content == b"media bytes"
    assert response.headers["content-type"] == "video/mp2t"


def test_object_ids_with_any_characters(media: MediaUnderTest) -> None:
    object_id = "my/object ä+1~"
    assert media.put(object_id, b"x").status_code == 200
    assert media.http.get(media.store.get_urls([object_id])[0]).content == b"x"


def test_upload_with_another_content_type_is_refused(media: MediaUnderTest) -> None:
    request = media.store.put_request("object-1", "video/mp2t")
    response = media.http.put(request.url, content=b"x", headers={"Content-Type": "text/html"})
    assert response.status_code == 403


def test_tampered_urls_are_refused(media: MediaUnderTest) -> None:
    assert media.put("object-1", b"secret").status_code == 200
    url = media.store.get_urls(["object-1"])[0]
    assert media.http.get(tampered(url)).status_code == 403
    other = media.store.get_urls(["object-2"])[0]
    assert media.http.get(url.replace("object-1", "object-2")).status_code == 403, "a URL names one object"
    assert media.http.put(other, content=b"x").status_code == 403, "a GET URL does not allow a PUT"


def test_expired_urls_are_refused(media: MediaUnderTest, clock: StoppedClock) -> None:
    assert media.put("object-0", b"fresh").status_code == 200
    # Handed out a lifetime ago, then back to now: SeaweedFS judges expiry by its own clock, the API by the service's.
    clock.advance(-media.url_lifetime - 1)
    put, get = media.store.put_request("object-1", "video/mp2t"), media.store.get_urls(["object-0"])[0]
    clock.advance(media.url_lifetime + 1)
    assert media.http.put(put.url, content=b"x", headers={"Content-Type": "video/mp2t"}).status_code == 403
    assert media.http.get(get).status_code == 403


def test_a_get_url_is_reused_while_more_than_half_its_lifetime_remains(
    media: MediaUnderTest, clock: StoppedClock
) -> None:
    """A window listed again and again (players at the live edge) is not signed again each time."""
    assert media.put("object-1", b"bytes").status_code == 200
    first = media.store.get_urls(["object-1"])[0]
    clock.advance(media.url_lifetime / 2 - 1)
    assert media.store.get_urls(["object-1"])[0] == first
    clock.advance(2)
    renewed = media.store.get_urls(["object-1"])[0]
    assert renewed != first
    assert media.http.get(renewed).content == b"bytes"
    clock.advance(1)
    media.store.delete(["object-1"])
    assert media.store.get_urls(["object-1"])[0] != renewed, "a deleted object's URL is not kept"


def test_the_urls_of_several_objects_come_one_each_in_their_order(media: MediaUnderTest) -> None:
    """A listing asks for all its objects' URLs at once: kept ones and newly signed ones, in the order asked."""
    for n in range(3):
        assert media.put(f"object-{n}", f"bytes {n}".encode()).status_code == 200
    kept = media.store.get_urls(["object-1"])[0]
    urls = media.store.get_urls(["object-2", "object-1", "object-0"])
    assert urls[1] == kept and len(set(urls)) == 3
    assert [media.http.get(url).content for url in urls] == [b"bytes 2", b"bytes 1", b"bytes 0"]
    assert media.store.get_urls([]) == []


def test_deleted_objects_are_gone_and_unknown_ones_are_no_error(media: MediaUnderTest) -> None:
    assert media.put("object-1", b"x").status_code == 200
    media.store.delete(["object-1", "never-uploaded"])
    assert media.http.get(media.store.get_urls(["object-1"])[0]).status_code == 404


def test_a_100_mb_object_round_trips(media: MediaUnderTest) -> None:
    data = os.urandom(100 * 1024 * 1024)
    assert media.put("big", data).status_code == 200
    digest = hashlib.sha256()
    with media.http.stream("GET", media.store.get_urls(["big"])[0]) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_probe_passes_while_the_store_is_reachable_and_raises_once_it_is_not(media: MediaUnderTest) -> None:
    media.store.probe()
    if isinstance(media.store, FilesystemMediaStore):
        shutil.rmtree(media.store.root)
    else:
        assert isinstance(media.store, S3MediaStore)
        media.store.client.delete_bucket(Bucket=media.store.bucket)  # the new bucket of this test, still empty
    with pytest.raises((OSError, ClientError)):
        media.store.probe()
