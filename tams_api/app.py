"""Wiring: settings -> stores -> routers -> the ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends
from starlette.staticfiles import StaticFiles

from . import API_VERSION, __version__
from .auth import authenticator_from_settings
from .config import MediaBackendSpec, Settings
from .dataplane import DataPlane, DataPlaneApi
from .http import HeadWithoutBody, install_error_handlers
from .metrics import RequestMetrics
from .openapi import install_openapi
from .routers import (
    analytics,
    delete_requests,
    deleted_flows,
    flows,
    media,
    objects,
    operations,
    pages,
    playout,
    segments,
    service,
    sources,
    webhooks,
)
from .routers.common import Services, representable_json_body
from .stores.filesystem import FilesystemMediaStore, load_signing_key
from .stores.media import MediaStore, MediaStores, StorageBackend
from .stores.metadata import MetadataStore
from .stores.sigv4 import Presigner
from .stores.sqlite import SqliteMetadataStore
from .tracing import install_tracing
from .worker import Worker, WorkerThread


def open_media_store(spec: MediaBackendSpec, settings: Settings, default: bool = False) -> MediaStore:
    """The media store of one backend; an S3 bucket that cannot be reached fails here, naming the setting."""
    backend = StorageBackend(
        id=spec.storage_id,
        label=spec.label,
        provider="tams-operator",
        store_product=spec.backend,
        region=spec.region if spec.backend == "s3" else None,
        default_storage=default,
    )
    if spec.backend == "s3":
        # boto3 and botocore cost ~24 MB resident: imported only by a process that has an S3 backend.
        from .provision import s3_connection
        from .stores.s3 import S3MediaStore

        bucket = spec.bucket or ""
        client, credentials = s3_connection(spec)
        public_endpoint = spec.public_endpoint_url or client.meta.endpoint_url
        store = S3MediaStore(
            client=client,
            credentials=credentials,
            bucket=bucket,
            prefix=spec.prefix,
            presigner=Presigner(public_endpoint, spec.region, bucket, virtual_hosted=not spec.resolved_path_style),
            url_timeout=settings.presigned_url_timeout,
            backend=backend,
            url_cache_size=settings.url_cache_size,
        )
        store.check(spec.setting)
        return store
    return FilesystemMediaStore(
        root=spec.media_dir or settings.resolved_media_dir,
        public_url=settings.public_url,
        signing_key=load_signing_key(settings.url_signing_key, settings.data_dir),
        url_timeout=settings.presigned_url_timeout,
        backend=backend,
        url_cache_size=settings.url_cache_size,
    )


def open_media(settings: Settings) -> MediaStores:
    """The media stores of every configured backend, the default one first."""
    default, *others = settings.media_backends
    return MediaStores(
        open_media_store(default, settings, default=True), *(open_media_store(spec, settings) for spec in others)
    )


def open_metadata(settings: Settings) -> MetadataStore:
    """The configured metadata store; a VAST cluster or PostgreSQL that cannot be reached fails here, naming the
    setting."""
    if settings.metadata_backend == "postgres":
        from .stores.postgres import PostgresMetadataStore

        return PostgresMetadataStore(
            settings.postgres_url or "",
            settings.postgres_schema,
            password=settings.postgres_password,
            pool_size=settings.postgres_pool_size,
            timeout=settings.postgres_timeout,
        )
    if settings.metadata_backend == "vast":
        from .stores.vast.store import VastMetadataStore  # the SDK costs ~115 MB resident: only where it is used

        return VastMetadataStore(
            endpoint=settings.vast_endpoint or "",
            access_key=settings.vast_access_key or "",
            secret_key=settings.vast_secret_key or "",
            bucket=settings.vast_bucket or "",
            schema=settings.vast_schema,
            timeout=settings.vast_timeout,
        )
    return SqliteMetadataStore(settings.resolved_sqlite_path)


def open_services(settings: Settings, store: MetadataStore | None = None) -> Services:
    """The stores `settings` configure; the metadata store `store` instead when given (tests hand in theirs)."""
    media = open_media(settings)  # first: a media backend that cannot be reached fails before the metadata opens
    return Services(store=open_metadata(settings) if store is None else store, media=media, settings=settings)


def create_app(settings: Settings | None = None, services: Services | None = None) -> DataPlaneApi:
    """The API serving `services`, which carry their own settings (tests hand in theirs), or else the stores
    `settings` configure."""
    if services is None:
        services = open_services(settings or Settings())

    @asynccontextmanager
    async def lifespan(_: DataPlaneApi) -> AsyncIterator[None]:
        worker = WorkerThread(Worker(services.store, services.media, services.settings))
        if services.settings.run_worker:
            worker.start()
        try:
            yield
        finally:
            worker.stop()
            services.store.close()
            stop_tracing()

    app = DataPlaneApi(
        title="Time-addressable Media Store",
        version=__version__,
        summary=f"TAMS API {API_VERSION}",
        lifespan=lifespan,
        docs_url=None,  # routers.pages: the pages' scripts from the package, not a CDN
        redoc_url=None,
        # Tracing is tracing.py's (TAMS_OTEL_*), off unless configured; FastAPI's own would look at OpenTelemetry's
        # providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.auth = authenticator_from_settings(services.settings)
    install_error_handlers(app)
    # The data plane is served ahead of the middleware and the router (tams_api.dataplane); FastAPI documents it.
    # The other routes are matched in order, one by one, and authenticate before reading a body
    # (routers.common.TamsRoute).
    data_plane = [segments.data_plane, objects.data_plane, flows.data_plane]
    for router in data_plane:
        app.include_router(router)
    for module in (
        segments,
        objects,
        flows,
        sources,
        service,
        webhooks,
        delete_requests,
        analytics,
        deleted_flows,
        playout,
    ):
        app.include_router(module.router, dependencies=[Depends(representable_json_body)])
    app.include_router(media.router)  # media bytes on presigned URLs: no TAMS credentials, no JSON
    app.include_router(operations.router)  # probes and metrics: credentials as TAMS_METRICS_PUBLIC says
    app.include_router(pages.router)
    # The pages' files (routers.pages) need no credentials.
    app.mount("/ui/assets", StaticFiles(directory=pages.ASSETS, check_dir=False), name="assets")
    install_openapi(app)
    app.add_middleware(HeadWithoutBody)
    app.add_middleware(RequestMetrics)  # it times everything inside it
    app.data_plane = DataPlane(route for router in data_plane for route in router.routes)
    stop_tracing = install_tracing(app, services.settings)
    return app
