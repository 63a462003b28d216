"""Provisioning of the stores a TamsStore needs, idempotent, for the operator and for `tams-api provision`."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import MediaBackendSpec, Settings
from .errors import ConfigurationError
from .stores.s3 import explain, s3_session
from .stores.vast import ensure_tables, open_session


def s3_connection(spec: MediaBackendSpec) -> tuple[Any, Any]:
    """The boto3 client and credentials of an S3 media backend."""
    client, credentials = s3_session(
        spec.endpoint_url, spec.region, spec.access_key_id, spec.secret_access_key, spec.resolved_path_style
    )
    if credentials is None:
        raise ConfigurationError(
            f"{spec.setting('access_key_id', 'secret_access_key')}: no S3 credentials (set them, or give the "
            "process AWS credentials another way boto3 finds)"
        )
    return client, credentials


def provision_s3(settings: Settings) -> str:
    """Create the bucket of each S3 media backend unless it exists, then prove write and delete access with a
    probe object."""
    s3_backends = [spec for spec in settings.media_backends if spec.backend == "s3"]
    # Without S3 media backends, the bucket TAMS_S3_* name (to prepare a switch to TAMS_MEDIA_BACKEND=s3).
    return "; ".join(_provision_bucket(spec) for spec in s3_backends or [settings.default_media_backend])


def _provision_bucket(spec: MediaBackendSpec) -> str:
    if not spec.bucket:
        raise ConfigurationError(f"{spec.setting('bucket')}: set the bucket to provision")
    bucket = spec.bucket
    client, _ = s3_connection(spec)
    endpoint = client.meta.endpoint_url
    try:
        created = _ensure_bucket(client, bucket, spec.region)
        probe = f"{spec.prefix}.tams-provision-probe-{uuid.uuid4().hex}"
        client.put_object(Bucket=bucket, Key=probe, Body=b"")
        client.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as error:
        raise ConfigurationError(explain(error, bucket, endpoint, spec.setting)) from None
    return f"bucket {bucket!r} at {endpoint}: {'created' if created else 'exists'}, writable"


def _ensure_bucket(client: Any, bucket: str, region: str) -> bool:
    """True when the bucket was created now."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
            raise
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        client.create_bucket(Bucket=bucket, **options)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        return False
    return True


def provision_vast(settings: Settings, connect: Any = None) -> str:
    """Create the schema, tables and projections of the VAST metadata store that are missing. The bucket must
    exist: the SDK cannot create one (it is a VMS view with the DATABASE protocol)."""
    for name in ("vast_endpoint", "vast_access_key", "vast_secret_key", "vast_bucket"):
        if not getattr(settings, name):
            raise ConfigurationError(f"TAMS_{name.upper()}: set it to provision the VAST metadata store")
    endpoint = settings.vast_endpoint or ""
    session = open_session(
        endpoint, settings.vast_access_key or "", settings.vast_secret_key or "", connect, settings.vast_timeout
    )
    created = ensure_tables(session, settings.vast_bucket or "", settings.vast_schema)
    where = f"{settings.vast_bucket}/{settings.vast_schema} at {endpoint}"
    return f"VAST {where}: {'created ' + ', '.join(created) if created else 'everything exists'}"
