"""Provisioning of the stores a TamsStore needs, idempotent, for the operator and for `tams-api provision`."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import Settings
from .errors import ConfigurationError
from .stores.s3 import explain, s3_session
from .stores.vast import ensure_tables, open_session


def s3_connection(settings: Settings) -> tuple[Any, Any]:
    """The boto3 client and credentials the TAMS_S3_* settings describe."""
    return s3_session(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.resolved_s3_path_style,
    )


def provision_s3(settings: Settings) -> str:
    """Create the S3 bucket unless it exists, then prove write and delete access with a probe object."""
    if not settings.s3_bucket:
        raise ConfigurationError("TAMS_S3_BUCKET: set the bucket to provision")
    bucket = settings.s3_bucket
    client, _ = s3_connection(settings)
    endpoint = client.meta.endpoint_url
    try:
        created = _ensure_bucket(client, bucket, settings.s3_region)
        probe = f"{settings.s3_prefix}.tams-provision-probe-{uuid.uuid4().hex}"
        client.put_object(Bucket=bucket, Key=probe, Body=b"")
        client.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as error:
        raise ConfigurationError(explain(error, bucket, endpoint)) from None
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
