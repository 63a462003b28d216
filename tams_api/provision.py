"""Provisioning of the stores a TamsStore needs, idempotent, for the operator and for `tams-api provision`; and
deprovisioning, for the operator's `reclaimPolicy: Delete` only (no CLI: one mistyped setting would delete a store)."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import Settings
from .errors import ConfigurationError
from .stores.s3 import delete_keys, explain, s3_session
from .stores.vast import drop_tables, ensure_tables, open_session
from .stores.vms import BucketCreator, VmsBucketCreator


def s3_connection(settings: Settings) -> tuple[Any, Any]:
    """The boto3 client and credentials the TAMS_S3_* settings describe."""
    return s3_session(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.resolved_s3_path_style,
    )


def provision_s3(settings: Settings, create: bool = True) -> str:
    """Create the S3 bucket unless it exists (or, with `create` off, require it), then prove write and delete
    access with a probe object."""
    bucket = _s3_bucket(settings)
    client, _ = s3_connection(settings)
    endpoint = client.meta.endpoint_url
    try:
        created = _ensure_bucket(client, bucket, settings.s3_region, create)
        probe = f"{settings.s3_prefix}.tams-provision-probe-{uuid.uuid4().hex}"
        client.put_object(Bucket=bucket, Key=probe, Body=b"")
        client.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as error:
        raise ConfigurationError(explain(error, bucket, endpoint)) from None
    return f"bucket {bucket!r} at {endpoint}: {'created' if created else 'exists'}, writable"


def deprovision_s3(settings: Settings) -> str:
    """Delete every object under the store's prefix (current versions only: a versioned bucket keeps the older
    ones), then the bucket if nothing is left in it. A missing bucket is deprovisioned already. With no prefix the
    whole bucket is the store's."""
    bucket = _s3_bucket(settings)
    client, _ = s3_connection(settings)
    endpoint = client.meta.endpoint_url
    where = f"bucket {bucket!r} at {endpoint}"
    deleted = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=settings.s3_prefix):
            keys = [item["Key"] for item in page.get("Contents", [])]
            delete_keys(client, bucket, keys)
            deleted += len(keys)
        if client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0):
            return f"{where}: deleted {deleted} objects under {settings.s3_prefix!r}; kept the bucket (other objects)"
        client.delete_bucket(Bucket=bucket)
    except ClientError as error:
        code = _error_code(error)
        if code in _MISSING_BUCKET:
            return f"{where}: does not exist (deleted already)"
        if code == "BucketNotEmpty":  # older versions or delete markers of a versioned bucket
            return f"{where}: deleted {deleted} objects under {settings.s3_prefix!r}; kept the bucket (versions)"
        raise ConfigurationError(explain(error, bucket, endpoint)) from None
    except BotoCoreError as error:
        raise ConfigurationError(explain(error, bucket, endpoint)) from None
    except RuntimeError as error:  # DeleteObjects refused some keys
        raise ConfigurationError(f"TAMS_S3_BUCKET: {where}: {error}") from None
    return f"{where}: deleted {deleted} objects under {settings.s3_prefix!r}, and the bucket"


_MISSING_BUCKET = ("404", "NoSuchBucket")


def _s3_bucket(settings: Settings) -> str:
    if not settings.s3_bucket:
        raise ConfigurationError("TAMS_S3_BUCKET: set the store's bucket")
    return settings.s3_bucket


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _ensure_bucket(client: Any, bucket: str, region: str, create: bool) -> bool:
    """True when the bucket was created now."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if _error_code(error) not in _MISSING_BUCKET:
            raise
    if not create:
        raise ConfigurationError(f"TAMS_S3_BUCKET: bucket {bucket!r} does not exist at {client.meta.endpoint_url}")
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        client.create_bucket(Bucket=bucket, **options)
    except ClientError as error:
        if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        return False
    return True


def provision_vast(settings: Settings, connect: Any = None, buckets: BucketCreator | None = None) -> str:
    """Create what the VAST metadata store needs and is missing: the bucket (through VMS, when the
    TAMS_VAST_MANAGEMENT_* settings are given or `buckets` is), then the schema, tables and projections."""
    session = _vast_session(settings, connect)
    bucket = settings.vast_bucket or ""
    buckets = buckets or vms_bucket_creator(settings)
    created = [f"bucket {bucket} (VMS view)"] if buckets is not None and buckets.ensure_bucket(bucket) else []
    created += ensure_tables(session, bucket, settings.vast_schema)
    return f"{_vast_where(settings)}: {'created ' + ', '.join(created) if created else 'everything exists'}"


def vms_bucket_creator(settings: Settings) -> VmsBucketCreator | None:
    """The VMS client the TAMS_VAST_MANAGEMENT_* settings describe; None without them."""
    if not settings.vast_management_endpoint:
        return None
    return VmsBucketCreator(
        settings.vast_management_endpoint,
        settings.vast_management_username or "",
        settings.vast_management_password or "",
        bucket_owner=settings.vast_bucket_owner or "",
        view_policy=settings.vast_view_policy,
        view_path=settings.vast_view_path,
        tenant=settings.vast_management_tenant,
        ca_file=settings.vast_management_ca_file,
    )


def deprovision_vast(settings: Settings, connect: Any = None) -> str:
    """Drop the store's tables and then its schema; missing ones are dropped already. The bucket stays (a VMS view:
    whoever created it removes it)."""
    session = _vast_session(settings, connect)
    dropped, kept = drop_tables(session, settings.vast_bucket or "", settings.vast_schema)
    done = f"dropped {', '.join(dropped)}" if dropped else "nothing to drop"
    return f"{_vast_where(settings)}: {done}" + (f"; kept {', '.join(kept)} (not the store's)" if kept else "")


def _vast_session(settings: Settings, connect: Any) -> Any:
    for name in ("vast_endpoint", "vast_access_key", "vast_secret_key", "vast_bucket"):
        if not getattr(settings, name):
            raise ConfigurationError(f"TAMS_{name.upper()}: set it to reach the VAST metadata store")
    return open_session(
        settings.vast_endpoint or "",
        settings.vast_access_key or "",
        settings.vast_secret_key or "",
        connect,
        settings.vast_timeout,
    )


def _vast_where(settings: Settings) -> str:
    return f"VAST {settings.vast_bucket}/{settings.vast_schema} at {settings.vast_endpoint}"
