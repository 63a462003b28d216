"""Service configuration, read from `TAMS_*` environment variables (documented in the README)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigurationError

EXTRA_BACKENDS_SETTING = "TAMS_EXTRA_STORAGE_BACKENDS"


class MediaBackendSpec(BaseModel):
    """One media storage backend: the default one (TAMS_MEDIA_BACKEND, TAMS_S3_*, TAMS_MEDIA_DIR) or an entry of
    TAMS_EXTRA_STORAGE_BACKENDS. Every media store is built from one of these."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    backend: Literal["filesystem", "s3"]
    id: uuid.UUID | None = None
    media_dir: Path | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool | None = None
    # The variables of this backend's fields (TAMS_S3_ for the default backend), so that errors name what to fix;
    # None: an entry of TAMS_EXTRA_STORAGE_BACKENDS.
    _setting_prefix: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_location(self) -> MediaBackendSpec:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("backend s3 needs a bucket")
        if self.backend == "filesystem" and self.media_dir is None:
            raise ValueError("backend filesystem needs a media_dir")
        return self

    @property
    def storage_id(self) -> str:
        """The configured id, or one derived from where the media lives (stable across restarts)."""
        if self.id is not None:
            return str(self.id)
        if self.backend == "s3":
            location = f"tams-s3:{self.endpoint_url or self.region}/{self.bucket}/{self.prefix}"
        else:
            assert self.media_dir is not None  # see _check_location
            location = f"tams-filesystem:{self.media_dir.resolve()}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, location))

    @property
    def resolved_path_style(self) -> bool:
        return self.endpoint_url is not None if self.path_style is None else self.path_style

    def setting(self, *names: str) -> str:
        """The settings that hold this backend's fields `names` (e.g. bucket), for error messages."""
        if self._setting_prefix is not None:
            return " / ".join(f"{self._setting_prefix}{name.upper()}" for name in names)
        return f"{EXTRA_BACKENDS_SETTING} (backend {self.label!r}) {' / '.join(names)}"


_EXTRA_BACKENDS = TypeAdapter(list[MediaBackendSpec])


def _one_line(error: ValidationError) -> str:
    """Pydantic's errors of a list of backends as one line: 'entry 1 (bucket): Field required; ...'."""
    problems = []
    for item in error.errors():
        position, *field = item["loc"]
        where = f"entry {position}" + (f" ({'.'.join(map(str, field))})" if field else "")
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the embedded stores keep their files.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL clients use to reach this API; media URLs of the filesystem store point here.",
    )
    metadata_backend: Literal["sqlite", "vast", "postgres"] = "sqlite"
    sqlite_path: Path | None = Field(None, description="SQLite database file (default DATA_DIR/tams.sqlite).")
    vast_endpoint: str | None = Field(None, description="VAST endpoint URL (metadata_backend vast).")
    vast_access_key: str | None = None
    vast_secret_key: str | None = None
    vast_bucket: str | None = Field(None, description="VAST bucket: a view with the DATABASE protocol.")
    vast_schema: str = Field("tams", description="Schema in the VAST bucket that holds the store's tables.")
    vast_timeout: float = Field(30.0, gt=0, description="Seconds a VAST request may take.")
    vast_management_endpoint: str | None = Field(
        None, description="VMS (host[:port] or https URL): provisioning creates a missing bucket through it."
    )
    vast_management_username: str | None = None
    vast_management_password: str | None = None
    vast_management_tenant: str | None = Field(None, description="VMS tenant of the bucket (default: the user's).")
    vast_management_ca_file: str | None = Field(None, description="CA bundle for the VMS certificate.")
    vast_bucket_owner: str | None = Field(None, description="VMS user owning a created bucket (has the S3 keys).")
    vast_view_policy: str = Field("s3_default_policy", description="VMS view policy of a created bucket.")
    vast_view_path: str | None = Field(None, description="Directory of a created bucket's view (default /BUCKET).")
    postgres_url: str | None = Field(
        None, description="libpq URI of the database (metadata_backend postgres): postgresql://USER:PASSWORD@HOST/DB."
    )
    postgres_password_file: Path | None = Field(None, description="File holding the password, instead of the URI.")
    postgres_schema: str = Field(
        "tams",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Schema of the database that holds the store's tables (created when missing).",
    )
    postgres_pool_size: int = Field(10, ge=1, description="PostgreSQL connections one API process opens at most.")
    postgres_timeout: float = Field(
        10.0, gt=0, description="Seconds a request waits for a PostgreSQL connection before a 503."
    )
    media_backend: Literal["filesystem", "s3"] = "filesystem"
    media_dir: Path | None = Field(None, description="Media object directory (default DATA_DIR/media).")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (default: AWS for the region).")
    s3_public_endpoint_url: str | None = Field(
        None, description="Endpoint in presigned URLs, when clients reach S3 by another name (default: the endpoint)."
    )
    s3_region: str = "us-east-1"
    s3_bucket: str | None = None
    s3_prefix: str = Field("", description="Prefix of object keys in the bucket.")
    s3_access_key_id: str | None = Field(None, description="Default: boto3's credential chain.")
    s3_secret_access_key: str | None = None
    s3_path_style: bool | None = Field(None, description="Path-style URLs (default: when an endpoint is set).")
    url_signing_key: str | None = Field(
        None, description="HMAC key for media URLs (default: generated once into DATA_DIR/url-signing.key)."
    )
    presigned_url_timeout: int = Field(3600, description="Seconds a presigned media URL stays valid.")
    url_cache_size: int = Field(
        100_000, ge=0, description="Presigned GET URLs kept for reuse, on every media backend (0: none)."
    )
    object_timeout: int = Field(7200, description="Seconds an allocated object may wait for registration.")
    storage_id: uuid.UUID | None = Field(None, description="Storage backend id (default derived from media dir).")
    storage_label: str | None = Field(None, description="Default: local-filesystem, or s3:BUCKET.")
    # NoDecode: the validator below parses the JSON, so that bad JSON is a one-line validation error.
    extra_storage_backends: Annotated[list[MediaBackendSpec], NoDecode] = Field(
        default_factory=list, description="More media backends, as a JSON list (see the README)."
    )
    service_name: str = "TAMS"
    service_description: str = "Time-addressable Media Store"
    default_page_limit: int = Field(100, ge=1)
    max_page_limit: int = Field(1000, ge=1)
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest JSON request body accepted (413 beyond; media uploads excepted).",
    )
    max_bulk_segments: int = Field(10000, ge=1, description="Most segments one POST .../segments may register.")

    run_worker: bool = Field(True, description="Run the background worker inside the API process.")
    worker_poll_interval: float = Field(0.5, gt=0, description="Seconds between the worker's looks for work.")
    worker_lease_seconds: float = Field(
        15.0, gt=0, description="How long a worker that stopped renewing its lease keeps others from working."
    )
    delete_sync_limit: int = Field(
        1000, ge=0, description="DELETEs covering more segments than this become flow delete requests (202)."
    )
    delete_chunk_size: int = Field(1000, ge=1, description="Segments a flow delete request deletes per step.")
    delete_request_retention: int = Field(86400, ge=0, description="Seconds finished delete requests stay listed.")
    soft_delete: bool = Field(
        False, description="DELETE /flows/{id} hides the flow (restorable) instead of deleting it (extension)."
    )
    soft_delete_retention: int = Field(
        604800, ge=0, description="Seconds a soft-deleted flow stays restorable before the worker purges it."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds a webhook receiver has to answer an event.")
    webhook_max_attempts: int = Field(10, ge=1, description="Delivery attempts of an event before 'error'.")
    webhook_retry_initial: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles each time.")
    webhook_retry_max: float = Field(300.0, gt=0, description="Longest wait between two delivery attempts.")
    webhook_allow_link_local: bool = Field(
        False,
        description="Allow webhook URLs on link-local, cloud metadata, unspecified and multicast addresses (refused by "
        "default, however spelled).",
    )

    auth_modes: str = Field("", description="Comma-separated: basic, token, jwt. Empty: no authentication.")
    auth_users: str | None = Field(None, description="Basic users, 'NAME PASSWORD [SCOPE,...]' per line or ';'.")
    auth_users_file: Path | None = None
    auth_tokens: str | None = Field(None, description="Static bearer tokens, 'NAME TOKEN [SCOPE,...]' entries.")
    auth_tokens_file: Path | None = None
    auth_jwks_url: str | None = Field(None, description="JWKS of the JWT issuer.")
    auth_jwks_file: Path | None = Field(None, description="JWKS as a file, instead of a URL.")
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_algorithms: str = "RS256,ES256"
    auth_access_token_query: bool = Field(False, description="Accept the token in the access_token query parameter.")
    auth_strict_scopes: bool = Field(False, description="Refuse credentials that carry no scopes.")
    auth_operator_token: str | None = Field(
        None, description="Bearer token of the managing operator (admin scope), accepted whenever auth is on."
    )

    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="Log level of `tams-api serve` and `tams-api worker` (their --log-level wins)."
    )
    access_log: bool = Field(False, description="Log every request `tams-api serve` answers.")
    workers: int = Field(1, ge=1, description="Server processes of `tams-api serve`, sharing its port.")
    metrics_public: bool = Field(
        True, description="GET /metrics needs no credentials (as /health and /ready), whatever the auth modes."
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of `tams-api worker`'s own GET /metrics (0: none)."
    )
    # Tracing is off unless an OTLP endpoint is given; the standard OpenTelemetry variable counts too.
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("TAMS_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP collector base URL (traces go to /v1/traces); needs the tracing extra.",
    )

    @field_validator("extra_storage_backends", mode="before")
    @classmethod
    def _parse_extra_backends(cls, value: Any) -> list[MediaBackendSpec]:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except ValueError as error:
                raise ValueError(f"not JSON ({error}): give a list of backend objects") from None
        if not isinstance(value, list):
            raise ValueError("give a JSON list of backend objects")
        try:
            return _EXTRA_BACKENDS.validate_python(value)
        except ValidationError as error:
            raise ValueError(_one_line(error)) from None

    @model_validator(mode="after")
    def _check_timeouts(self) -> Settings:
        # The spec's floors: presigned URLs >= 30 s, objects >= 300 s, and URLs no longer than objects.
        if self.presigned_url_timeout < 30:
            raise ValueError("TAMS_PRESIGNED_URL_TIMEOUT must be at least 30 seconds")
        if self.object_timeout < 300:
            raise ValueError("TAMS_OBJECT_TIMEOUT must be at least 300 seconds")
        if self.presigned_url_timeout > self.object_timeout:
            raise ValueError("TAMS_PRESIGNED_URL_TIMEOUT must not exceed TAMS_OBJECT_TIMEOUT")
        if self.default_page_limit > self.max_page_limit:
            raise ValueError("TAMS_DEFAULT_PAGE_LIMIT must not exceed TAMS_MAX_PAGE_LIMIT")
        unknown = self.auth_mode_set - {"basic", "token", "jwt"}
        if unknown:
            raise ValueError(f"TAMS_AUTH_MODES has unknown modes {sorted(unknown)}: use basic, token, jwt")
        if self.metadata_backend == "vast":
            for name in ("vast_endpoint", "vast_access_key", "vast_secret_key", "vast_bucket"):
                if not getattr(self, name):
                    raise ValueError(f"TAMS_METADATA_BACKEND is vast: set TAMS_{name.upper()}")
        if self.metadata_backend == "postgres" and not self.postgres_url:
            raise ValueError("TAMS_METADATA_BACKEND is postgres: set TAMS_POSTGRES_URL")
        if self.vast_management_endpoint:
            for name in ("vast_management_username", "vast_management_password", "vast_bucket_owner"):
                if not getattr(self, name):
                    raise ValueError(f"TAMS_VAST_MANAGEMENT_ENDPOINT is set: set TAMS_{name.upper()}")
        if self.media_backend == "s3" and not self.s3_bucket:
            raise ValueError("TAMS_MEDIA_BACKEND is s3: set TAMS_S3_BUCKET")
        if "jwt" in self.auth_mode_set and not (self.auth_jwks_url or self.auth_jwks_file):
            raise ValueError("TAMS_AUTH_MODES has jwt: set TAMS_AUTH_JWKS_URL or TAMS_AUTH_JWKS_FILE")
        self._check_backends_distinct()
        return self

    def _check_backends_distinct(self) -> None:
        """Labels and ids name one backend each (the default's come from TAMS_STORAGE_LABEL / TAMS_STORAGE_ID)."""
        default = self.default_media_backend
        labels, ids = {default.label}, {default.storage_id}
        for spec in self.extra_storage_backends:
            if spec.label in labels:
                raise ValueError(f"{EXTRA_BACKENDS_SETTING}: label {spec.label!r} names two storage backends")
            if spec.storage_id in ids:
                raise ValueError(
                    f"{EXTRA_BACKENDS_SETTING}: backend {spec.label!r} has the id {spec.storage_id} of another "
                    "backend (two entries for one location, or a repeated id)"
                )
            labels.add(spec.label)
            ids.add(spec.storage_id)

    @property
    def auth_mode_set(self) -> set[str]:
        return {mode.strip() for mode in self.auth_modes.split(",") if mode.strip()}

    @property
    def resolved_sqlite_path(self) -> Path:
        return self.sqlite_path or self.data_dir / "tams.sqlite"

    @property
    def postgres_password(self) -> str | None:
        """The password of TAMS_POSTGRES_PASSWORD_FILE (None: the URI's, or none)."""
        if self.postgres_password_file is None:
            return None
        try:
            return self.postgres_password_file.read_text().strip()
        except OSError as error:
            raise ConfigurationError(f"TAMS_POSTGRES_PASSWORD_FILE: cannot read it: {error}") from None

    @property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def default_media_backend(self) -> MediaBackendSpec:
        """The default backend, as the TAMS_MEDIA_BACKEND, TAMS_S3_*, TAMS_MEDIA_DIR and TAMS_STORAGE_* settings
        describe it."""
        s3 = self.media_backend == "s3"
        spec = MediaBackendSpec(
            label=self.storage_label or (f"s3:{self.s3_bucket}" if s3 else "local-filesystem"),
            backend=self.media_backend,
            id=self.storage_id,
            media_dir=None if s3 else self.resolved_media_dir,
            bucket=self.s3_bucket,
            endpoint_url=self.s3_endpoint_url,
            public_endpoint_url=self.s3_public_endpoint_url,
            region=self.s3_region,
            prefix=self.s3_prefix,
            access_key_id=self.s3_access_key_id,
            secret_access_key=self.s3_secret_access_key,
            path_style=self.s3_path_style,
        )
        spec._setting_prefix = "TAMS_S3_"
        return spec

    @property
    def media_backends(self) -> list[MediaBackendSpec]:
        """Every configured media backend, the default first."""
        return [self.default_media_backend, *self.extra_storage_backends]


class BackupSettings(BaseSettings):
    """Where `tams-api backup` writes a backup of the store the TAMS_* settings describe, and `tams-api restore`
    reads one: a folder of an S3 bucket."""

    model_config = SettingsConfigDict(env_prefix="TAMS_BACKUP_", extra="ignore")

    s3_bucket: str = Field(min_length=1, description="Bucket of the backups.")
    s3_path: str = Field("", description="The backup's folder in the bucket.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (default: AWS for the region).")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(None, description="Default: boto3's credential chain.")
    s3_secret_access_key: str | None = None
    s3_path_style: bool | None = Field(None, description="Path-style URLs (default: when an endpoint is set).")
    store: str = Field("", description="The store's name, recorded in the manifest (the operator: NAMESPACE/NAME).")
    parallelism: int = Field(8, ge=1, le=64, description="Media objects copied at once.")

    @property
    def folder(self) -> str:
        return self.s3_path.strip("/")

    def key(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    @property
    def url(self) -> str:
        return f"s3://{self.s3_bucket}/{self.folder}"

    def location(self, folder: str) -> MediaBackendSpec:
        """A folder of the backup as a media backend, so that media is copied in and out as between backends."""
        spec = MediaBackendSpec(
            label=f"backup {self.url}",
            backend="s3",
            bucket=self.s3_bucket,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            prefix=self.key(folder) + "/",
            access_key_id=self.s3_access_key_id,
            secret_access_key=self.s3_secret_access_key,
            path_style=self.s3_path_style,
        )
        spec._setting_prefix = "TAMS_BACKUP_S3_"
        return spec
