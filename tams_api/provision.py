"""Provisioning of the stores a TamsStore needs, idempotent, for the operator and for `tams-api provision`; and
deprovisioning, for the operator's `reclaimPolicy: Delete` only (no CLI: one mistyped setting would delete a store)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import MediaBackendSpec, Settings
from .errors import ConfigurationError
from .stores.s3 import delete_keys, explain, s3_session
from .stores.vms import BucketCreator, VmsBucketCreator


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


def provision_s3(settings: Settings, create: Collection[str] | None = None) -> str:
    """Create the bucket of each S3 media backend unless it exists, then prove write and delete access with a
    probe object. `create` limits creating to the backends of those labels (the others' buckets must exist)."""
    return "; ".join(_provision_bucket(spec, create is None or spec.label in create) for spec in _s3_backends(settings))


def _s3_backends(settings: Settings) -> list[MediaBackendSpec]:
    """The S3 media backends; without any, the bucket TAMS_S3_* name (to prepare a switch to
    TAMS_MEDIA_BACKEND=s3)."""
    return [spec for spec in settings.media_backends if spec.backend == "s3"] or [settings.default_media_backend]


def _bucket(spec: MediaBackendSpec) -> str:
    if not spec.bucket:
        raise ConfigurationError(f"{spec.setting('bucket')}: set the store's bucket")
    return spec.bucket


def _provision_bucket(spec: MediaBackendSpec, create: bool) -> str:
    bucket = _bucket(spec)
    client, _ = s3_connection(spec)
    endpoint = client.meta.endpoint_url
    try:
        created = _ensure_bucket(client, bucket, spec, create)
        probe = f"{spec.prefix}.tams-provision-probe-{uuid.uuid4().hex}"
        client.put_object(Bucket=bucket, Key=probe, Body=b"")
        client.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as error:
        raise ConfigurationError(explain(error, bucket, endpoint, spec.setting)) from None
    return f"bucket {bucket!r} at {endpoint}: {'created' if created else 'exists'}, writable"


def deprovision_s3(settings: Settings) -> str:
    """For each S3 media backend: delete every object under its prefix (current versions only: a versioned
    bucket keeps the older ones), then the bucket if nothing is left in it. A missing bucket is deprovisioned
    already. With no prefix the whole bucket is the store's."""
    return "; ".join(_deprovision_bucket(spec) for spec in _s3_backends(settings))


def _deprovision_bucket(spec: MediaBackendSpec) -> str:
    bucket = _bucket(spec)
    client, _ = s3_connection(spec)
    endpoint = client.meta.endpoint_url
    where = f"bucket {bucket!r} at {endpoint}"
    deleted = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=spec.prefix):
            keys = [item["Key"] for item in page.get("Contents", [])]
            delete_keys(client, bucket, keys)
            deleted += len(keys)
        if client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0):
            return f"{where}: deleted {deleted} objects under {spec.prefix!r}; kept the bucket (other objects)"
        client.delete_bucket(Bucket=bucket)
    except ClientError as error:
        code = _error_code(error)
        if code in _MISSING_BUCKET:
            return f"{where}: does not exist (deleted already)"
        if code == "BucketNotEmpty":  # older versions or delete markers of a versioned bucket
            return f"{where}: deleted {deleted} objects under {spec.prefix!r}; kept the bucket (versions)"
        raise ConfigurationError(explain(error, bucket, endpoint, spec.setting)) from None
    except BotoCoreError as error:
        raise ConfigurationError(explain(error, bucket, endpoint, spec.setting)) from None
    except RuntimeError as error:  # DeleteObjects refused some keys
        raise ConfigurationError(f"{spec.setting('bucket')}: {where}: {error}") from None
    return f"{where}: deleted {deleted} objects under {spec.prefix!r}, and the bucket"


_MISSING_BUCKET = ("404", "NoSuchBucket")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _ensure_bucket(client: Any, bucket: str, spec: MediaBackendSpec, create: bool) -> bool:
    """True when the bucket was created now."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if _error_code(error) not in _MISSING_BUCKET:
            raise
    if not create:
        raise ConfigurationError(
            f"{spec.setting('bucket')}: bucket {bucket!r} does not exist at {client.meta.endpoint_url}"
        )
    region = spec.region
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
    TAMS_VAST_MANAGEMENT_* settings are given or `buckets` is), then the schema, tables and projections; a schema
    of an earlier version is migrated first."""
    from .stores.vast.schema import ensure_schema

    session = _vast_session(settings, connect)
    bucket = settings.vast_bucket or ""
    buckets = buckets or vms_bucket_creator(settings)
    created = [f"bucket {bucket} (VMS view)"] if buckets is not None and buckets.ensure_bucket(bucket) else []
    upgraded, tables = ensure_schema(session, bucket, settings.vast_schema)
    created += tables
    done = [f"created {', '.join(created)}"] if created else []
    if upgraded.before not in (None, upgraded.after):
        done.insert(0, f"migrated from schema version {upgraded.before} to {upgraded.after}")
    return f"{_vast_where(settings)}: {'; '.join(done) or 'everything exists'}"


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
    from .stores.vast.schema import drop_tables

    session = _vast_session(settings, connect)
    dropped, kept = drop_tables(session, settings.vast_bucket or "", settings.vast_schema)
    done = f"dropped {', '.join(dropped)}" if dropped else "nothing to drop"
    return f"{_vast_where(settings)}: {done}" + (f"; kept {', '.join(kept)} (not the store's)" if kept else "")


def provision_postgres(settings: Settings) -> str:
    """Create the PostgreSQL store's schema and tables unless they exist (migrating an earlier version), then prove
    write access by taking and giving back a lease."""
    from .stores.postgres import PostgresMetadataStore

    store = PostgresMetadataStore(
        _postgres_url(settings), settings.postgres_schema, settings.postgres_password, 1, settings.postgres_timeout
    )
    try:
        holder = f"provisioning-{uuid.uuid4()}"
        if not store.claim_lease(holder, holder, 1.0):
            raise ConfigurationError(f"TAMS_POSTGRES_URL: {store.schema_upgrade.place}: a probe lease was refused")
        store.release_lease(holder, holder)
    finally:
        store.close()
    return f"{store.schema_upgrade}; write access proven"


def deprovision_postgres(settings: Settings) -> str:
    """Drop the store's tables (those of its schema it knows, no other), then the schema when that left it empty."""
    from .stores.postgres.connection import connected, connection_options
    from .stores.postgres.schema import drop_tables

    schema = settings.postgres_schema
    options = connection_options(schema, settings.postgres_password, settings.postgres_timeout)
    with connected(_postgres_url(settings), options) as connection:
        dropped, kept = drop_tables(connection, schema)
    done = f"dropped {', '.join(dropped)}" if dropped else "nothing to drop"
    return f"PostgreSQL schema {schema}: {done}" + (f"; kept {', '.join(kept)} (not the store's)" if kept else "")


def _postgres_url(settings: Settings) -> str:
    if not settings.postgres_url:
        raise ConfigurationError("TAMS_POSTGRES_URL: set it to reach the PostgreSQL metadata store")
    return settings.postgres_url


def _vast_session(settings: Settings, connect: Any) -> Any:
    # The VAST SDK (pyarrow, ibis: ~115 MB resident) is imported only where a store uses it, here and in app.py.
    from .stores.vast.session import open_session

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
