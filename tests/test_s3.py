"""The s3 media store beyond the media contract: its SigV4 signer, URL reuse, provisioning, and failing fast
on bad configuration."""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from helpers import StoppedClock, make_settings
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tams_api.app import open_media
from tams_api.errors import ConfigurationError
from tams_api.provision import deprovision_s3, provision_s3
from tams_api.stores.sigv4 import Credentials, Presigner

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize("token", [None, "session/token+="])
@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("get_object", {"Key": "plain-key"}),
        ("get_object", {"Key": "a/key with ä, spaces~and+plus"}),
        ("put_object", {"Key": "k", "ContentType": "video/mp2t"}),
    ],
)
def test_urls_are_those_botocore_signs(style: str, token: str | None, operation: str, params: dict[str, str]) -> None:
    endpoint = "http://127.0.0.1:9000" if style == "path" else "https://s3.eu-west-2.amazonaws.com"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-2",
        aws_access_key_id="AKID",
        aws_secret_access_key="SECRET",
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )
    expected = client.generate_presigned_url(operation, Params={"Bucket": "the-bucket", **params}, ExpiresIn=900)
    signed_at = calendar.timegm(time.strptime(parse_qs(urlsplit(expected).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    presigner = Presigner(endpoint, "eu-west-2", "the-bucket", virtual_hosted=style == "virtual")
    method = "GET" if operation == "get_object" else "PUT"
    ours = presigner.url(
        method, params["Key"], Credentials("AKID", "SECRET", token), 900, params.get("ContentType"), now=signed_at
    )
    # Same URL up to the order of query parameters (botocore puts the token after SignedHeaders).
    assert urlsplit(ours)[:3] == urlsplit(expected)[:3]
    assert parse_qs(urlsplit(ours).query) == parse_qs(urlsplit(expected).query)


def s3_settings(tmp_path: Path, server: S3Server, bucket: str, **changes: object) -> object:
    return make_settings(
        tmp_path,
        media_backend="s3",
        s3_endpoint_url=server.endpoint_url,
        s3_bucket=bucket,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        **changes,
    )


def test_get_urls_are_reused_while_most_of_their_lifetime_remains(
    tmp_path: Path, s3_server: S3Server, clock: StoppedClock
) -> None:
    store = open_media(s3_settings(tmp_path, s3_server, s3_server.new_bucket())).default
    first = store.get_urls(["object-1"])[0]
    assert store.get_urls(["object-1"])[0] == first
    store.delete(["object-1"])
    clock.advance(1)  # a new URL has another X-Amz-Date
    assert store.get_urls(["object-1"])[0] != first, "deleting an object forgets its URL"


def test_provisioning_creates_the_bucket_once(tmp_path: Path, s3_server: S3Server) -> None:
    settings = s3_settings(tmp_path, s3_server, "tams-provisioned")
    with pytest.raises(ConfigurationError, match="TAMS_S3_BUCKET: bucket 'tams-provisioned' does not exist"):
        provision_s3(settings, create=())
    assert "created, writable" in provision_s3(settings, create=[settings.default_media_backend.label])
    assert "exists, writable" in provision_s3(settings, create=())
    assert "exists, writable" in provision_s3(settings)
    open_media(settings)  # the store now starts


def test_deprovisioning_deletes_the_prefix_then_the_bucket_once_empty(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    for key in ("store-a/1", "store-a/2", "store-b/1"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    store_a = s3_settings(tmp_path, s3_server, bucket, s3_prefix="store-a/")
    assert deprovision_s3(store_a).endswith("deleted 2 objects under 'store-a/'; kept the bucket (other objects)")
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["store-b/1"]
    assert "deleted 0 objects" in deprovision_s3(store_a), "idempotent"

    store_b = s3_settings(tmp_path, s3_server, bucket, s3_prefix="store-b/")
    assert deprovision_s3(store_b).endswith("deleted 1 objects under 'store-b/', and the bucket")
    assert bucket not in [found["Name"] for found in client.list_buckets()["Buckets"]]
    assert deprovision_s3(store_b).endswith("does not exist (deleted already)")


def test_deprovisioning_undoes_provisioning(tmp_path: Path, s3_server: S3Server) -> None:
    settings = s3_settings(tmp_path, s3_server, "tams-reclaimed")
    provision_s3(settings)
    open_media(settings).default.client.put_object(Bucket="tams-reclaimed", Key="an-object", Body=b"x")
    assert deprovision_s3(settings).endswith("deleted 1 objects under '', and the bucket")
    assert "created, writable" in provision_s3(settings)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"s3_secret_access_key": "wrong"}, "TAMS_S3_ACCESS_KEY_ID / TAMS_S3_SECRET_ACCESS_KEY: access"),
        ({"s3_endpoint_url": "http://127.0.0.1:9"}, "TAMS_S3_ENDPOINT_URL: cannot connect to http://127.0.0.1:9"),
        ({"media_backend": "filesystem", "s3_bucket": None}, "TAMS_S3_BUCKET: set the store's bucket"),
    ],
)
def test_deprovisioning_errors_name_the_setting(
    tmp_path: Path, s3_server: S3Server, changes: dict[str, str], named: str
) -> None:
    settings = s3_settings(tmp_path, s3_server, s3_server.new_bucket()).model_copy(update=changes)
    with pytest.raises(ConfigurationError, match="^" + named.replace("(", r"\(")):
        deprovision_s3(settings)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"s3_bucket": "tams-no-such-bucket"}, "TAMS_S3_BUCKET: bucket 'tams-no-such-bucket' does not exist"),
        ({"s3_secret_access_key": "wrong"}, "TAMS_S3_ACCESS_KEY_ID / TAMS_S3_SECRET_ACCESS_KEY: access"),
        ({"s3_endpoint_url": "http://127.0.0.1:9"}, "TAMS_S3_ENDPOINT_URL: cannot connect to http://127.0.0.1:9"),
    ],
)
def test_bad_configuration_fails_fast_naming_the_setting(
    tmp_path: Path, s3_server: S3Server, changes: dict[str, str], named: str
) -> None:
    settings = s3_settings(tmp_path, s3_server, s3_server.new_bucket()).model_copy(update=changes)
    with pytest.raises(ConfigurationError, match="^" + named.replace("(", r"\(")):
        open_media(settings)


def test_the_service_exits_with_one_line_on_a_missing_bucket(tmp_path: Path, s3_server: S3Server) -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("TAMS_")},
        "TAMS_DATA_DIR": str(tmp_path),
        "TAMS_MEDIA_BACKEND": "s3",
        "TAMS_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "TAMS_S3_BUCKET": "tams-missing",
        "TAMS_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "TAMS_S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    command = [sys.executable, "-m", "tams_api", "serve", "--port", "9"]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"tams-api: bad configuration: TAMS_S3_BUCKET: bucket 'tams-missing' does not exist at "
        f"{s3_server.endpoint_url} (create it: tams-api provision s3)"
    ]
    assert "Traceback" not in result.stderr
