"""Media in an S3 bucket: clients PUT and GET object bytes on presigned URLs, straight to S3.

boto3 does the bucket operations (checks, deletes, provisioning); URLs are presigned by `sigv4.Presigner`,
a few µs each instead of botocore's few hundred, and reused while most of their lifetime remains, so that
listings of hundreds of segments stay fast (bench/s3_listing.py measures both).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from ..errors import ConfigurationError
from .media import MediaMissing, PutRequest, ReusedUrls, StorageBackend, StoredMedia
from .sigv4 import Credentials, Presigner

# The settings (one or more) that hold a backend's named fields, e.g. ("bucket",) -> "TAMS_S3_BUCKET".
SettingNames = Callable[..., str]

DELETE_BATCH = 1000  # the most DeleteObjects takes
CREDENTIALS_RECHECK_S = 5.0


@functools.cache
def s3_session(
    endpoint_url: str | None, region: str, access_key: str | None, secret_key: str | None, path_style: bool
) -> tuple[Any, Any | None]:
    """A boto3 S3 client and the credentials it signs with (given keys, or boto3's usual chain; None when there
    are none). Shared per configuration: making a client loads botocore's service model, about half a second."""
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region)
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "virtual"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    return client, session.get_credentials()


def explain(error: Exception, bucket: str, endpoint: str, setting: SettingNames) -> str:
    """One line naming the setting to fix, for an error reaching the bucket."""
    if isinstance(error, EndpointConnectionError):
        return f"{setting('endpoint_url')}: cannot connect to {endpoint}"
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            missing = f"bucket {bucket!r} does not exist at {endpoint}"
            return f"{setting('bucket')}: {missing} (create it: tams-api provision s3)"
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
            return f"{setting('access_key_id', 'secret_access_key')}: access to bucket {bucket!r} denied ({code})"
        return f"{setting('bucket')}: bucket {bucket!r} at {endpoint} answered {code}: {error}"
    return f"{setting('endpoint_url')}: {endpoint}: {error}"


class S3MediaStore:
    def __init__(
        self,
        client: Any,
        credentials: Any,
        bucket: str,
        prefix: str,
        presigner: Presigner,
        url_timeout: int,
        backend: StorageBackend,
        url_cache_size: int = 0,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.presigner = presigner
        self.url_timeout = url_timeout
        self.backend = backend
        self._credentials = credentials  # boto3's: static, or refreshing (e.g. web identity in a pod)
        self._signing: tuple[Credentials, float] | None = None
        self._get_urls = ReusedUrls(url_cache_size, url_timeout)

    def check(self, setting: SettingNames) -> None:
        """Fail fast, with the setting to fix, when the bucket cannot be reached."""
        try:
            self.probe()
        except (ClientError, BotoCoreError) as error:
            raise ConfigurationError(explain(error, self.bucket, self.client.meta.endpoint_url, setting)) from None

    def probe(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def key(self, object_id: str) -> str:
        return f"{self.prefix}{object_id}"

    def _signing_credentials(self) -> Credentials:
        """boto3's current credentials, looked at every few seconds (refreshing ones renew well before expiry)."""
        now = time.monotonic()
        if self._signing is None or now - self._signing[1] > CREDENTIALS_RECHECK_S:
            frozen = self._credentials.get_frozen_credentials()
            current = self._signing[0] if self._signing else None
            if current is None or (current.access_key, current.secret_key, current.token) != tuple(frozen):
                current = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
            self._signing = (current, now)
        return self._signing[0]

    def put_request(self, object_id: str, content_type: str) -> PutRequest:
        url = self.presigner.url(
            "PUT", self.key(object_id), self._signing_credentials(), self.url_timeout, content_type=content_type
        )
        return PutRequest(url, content_type)

    def get_urls(self, object_ids: Sequence[str]) -> list[str]:
        return self._get_urls.get(object_ids, self._presigned_get)

    def _presigned_get(self, object_id: str, now: float) -> str:
        return self.presigner.url("GET", self.key(object_id), self._signing_credentials(), self.url_timeout, now=now)

    @contextmanager
    def reader(self, object_id: str) -> Iterator[StoredMedia]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(object_id))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey"):
                raise
            raise MediaMissing(object_id, self.backend) from None
        body = response["Body"]
        with body:
            yield StoredMedia(response.get("ContentType", "application/octet-stream"), body)

    def write(self, object_id: str, content_type: str, source: BinaryIO) -> None:
        # upload_fileobj streams in parts, so objects of any size pass through in bounded memory.
        self.client.upload_fileobj(source, self.bucket, self.key(object_id), ExtraArgs={"ContentType": content_type})

    def delete(self, object_ids: list[str]) -> None:
        self._get_urls.forget(object_ids)
        delete_keys(self.client, self.bucket, [self.key(object_id) for object_id in object_ids])


def delete_keys(client: Any, bucket: str, keys: list[str]) -> None:
    """Delete objects by key, DELETE_BATCH per request; refusals raise."""
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(f"S3 refused to delete {len(errors)} objects, e.g. {first['Key']}: {first['Message']}")
