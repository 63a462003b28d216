"""Media on the local filesystem, served by this API on signed, expiring URLs.

A URL names the storage backend and the object and carries `expires` (Unix seconds) and `signature`, an
HMAC-SHA256 over the method, the backend, the object id, the expiry and (for uploads) the content type, so it
works without TAMS credentials and cannot be altered, pointed at another backend or reused after it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from .. import clock
from ..errors import Forbidden
from .media import MediaMissing, PutRequest, ReusedUrls, StorageBackend, StoredMedia

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")  # what quote(..., safe="") leaves as it is


def load_signing_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, or one generated once and kept beside the data so restarts keep URLs valid."""
    if configured:
        return configured.encode()
    path = data_dir / "url-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole aside, then linked into place unless another process was first: processes starting together
        # (TAMS_WORKERS, the API and a worker) all read the one key, never a file still being written.
        fd, aside = tempfile.mkstemp(dir=data_dir, prefix=".url-signing.key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            with suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    return path.read_text().strip().encode()


class FilesystemMediaStore:
    def __init__(
        self,
        root: Path,
        public_url: str,
        signing_key: bytes,
        url_timeout: int,
        backend: StorageBackend,
        url_cache_size: int = 0,
    ) -> None:
        self.root = root
        self.public_url = public_url.rstrip("/")
        # Keyed once; each signature copies this state instead of re-deriving the HMAC key pads.
        self._keyed_mac = hmac.new(signing_key, digestmod=hashlib.sha256)
        self.url_timeout = url_timeout
        self.backend = backend
        self._media_url = f"{self.public_url}/media/{backend.id}/"
        self._get_urls = ReusedUrls(url_cache_size, url_timeout)
        root.mkdir(parents=True, exist_ok=True)

    # -- URLs ----------------------------------------------------------------------------------------

    def _signature(self, method: str, object_id: str, expires: int, content_type: str = "") -> str:
        mac = self._keyed_mac.copy()
        mac.update(f"{method}\n{self.backend.id}\n{object_id}\n{expires}\n{content_type}".encode())
        return mac.hexdigest()

    def _url(self, method: str, object_id: str, content_type: str = "", now: float | None = None) -> str:
        expires = int(clock.seconds() if now is None else now) + self.url_timeout
        signature = self._signature(method, object_id, expires, content_type)
        # Most ids (UUIDs) need no escaping, and quote() is a third of a URL's cost.
        path = object_id if _UNRESERVED.fullmatch(object_id) else quote(object_id, safe="")
        return f"{self._media_url}{path}?expires={expires}&signature={signature}"

    def put_request(self, object_id: str, content_type: str) -> PutRequest:
        return PutRequest(self._url("PUT", object_id, content_type), content_type)

    def get_urls(self, object_ids: Sequence[str]) -> list[str]:
        return self._get_urls.get(object_ids, self._signed_get)

    def _signed_get(self, object_id: str, now: float) -> str:
        return self._url("GET", object_id, now=now)

    def verify(self, method: str, object_id: str, expires: str, signature: str, content_type: str = "") -> None:
        """Raise Forbidden unless the URL was signed by us for exactly this request and has not expired."""
        try:
            expiry = int(expires)
        except ValueError as error:
            raise Forbidden("invalid media URL expiry") from error
        expected = self._signature(method, object_id, expiry, content_type)
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("media URL signature does not match this request")
        if expiry < clock.seconds():
            raise Forbidden("media URL has expired")

    # -- bytes ---------------------------------------------------------------------------------------

    def path(self, object_id: str) -> Path:
        """Object ids may hold any character; files are named by their hash, fanned out over folders."""
        digest = hashlib.sha256(object_id.encode()).hexdigest()
        return self.root / digest[:2] / digest[2:4] / digest

    def content_type(self, object_id: str) -> str:
        return self.path(object_id).with_suffix(".type").read_text()

    @contextmanager
    def writer(self, object_id: str, content_type: str) -> Iterator[BinaryIO]:
        """Write to a temporary file and move it into place only when complete."""
        final = self.path(object_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_suffix(f".partial-{secrets.token_hex(4)}")
        try:
            with open(partial, "wb") as handle:
                yield handle
            final.with_suffix(".type").write_text(content_type)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    @contextmanager
    def reader(self, object_id: str) -> Iterator[StoredMedia]:
        try:
            stream = open(self.path(object_id), "rb")  # noqa: SIM115 (closed below, after the caller's reading)
        except FileNotFoundError:
            raise MediaMissing(object_id, self.backend) from None
        with stream:
            yield StoredMedia(self.content_type(object_id), stream)

    def write(self, object_id: str, content_type: str, source: BinaryIO) -> None:
        with self.writer(object_id, content_type) as handle:
            shutil.copyfileobj(source, handle)

    def delete(self, object_ids: list[str]) -> None:
        self._get_urls.forget(object_ids)
        for object_id in object_ids:
            path = self.path(object_id)
            path.unlink(missing_ok=True)
            path.with_suffix(".type").unlink(missing_ok=True)

    def probe(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OSError(f"media directory {self.root} is missing or not writable")
