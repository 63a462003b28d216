"""Put the browser libraries the service's pages use into the package, from the npm registry at pinned versions,
each file beside its licence: Swagger UI and ReDoc for /docs and /redoc, hls.js for the player of /ui. Nothing
loads from the internet when a page opens; the tarballs are checked against the registry's integrity hashes
pinned here and kept in TAMS_OPERATOR_CACHE (default ~/.cache/tams-operator) so a rerun downloads nothing.

    python scripts/vendor_web.py        (make run and make test run it; so does the image build)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "tams_api" / "static" / "vendor"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity of the tarball
    files: tuple[str, ...]  # inside the tarball's package/ folder; kept under TARGET/name/ by their base names
    offline: dict[str, str] = dataclasses.field(default_factory=dict)  # a URL the files would fetch -> instead

    @property
    def tarball_url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"


PACKAGES = (
    Package("swagger-ui-dist", "5.36.0",
            "sha512-Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A==",
            ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE")),
    # ReDoc 2: 3's standalone bundle is an ES module (import.meta), which FastAPI's page does not load as one.
    Package("redoc", "2.5.4",
            "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==",
            ("bundles/redoc.standalone.js", "LICENSE"),
            # Its side menu shows Redocly's logo from their CDN; an empty image instead (the page hides a failed one).
            {"https://cdn.redoc.ly/redoc/logo-mini.svg": "data:,"}),
    Package("hls.js", "1.7.4",
            "sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==",
            ("dist/hls.min.js", "LICENSE")),
)  # fmt: skip


def cache_folder() -> Path:
    return Path(os.environ.get("TAMS_OPERATOR_CACHE", Path.home() / ".cache" / "tams-operator")) / "npm"


def tarball(package: Package) -> bytes:
    """The package's tarball, from the cache or the registry, as its pinned integrity hash says it is."""
    cached = cache_folder() / f"{package.name}-{package.version}.tgz"
    data = cached.read_bytes() if cached.is_file() else b""
    if not matches(data, package.integrity):
        with urllib.request.urlopen(package.tarball_url, timeout=120) as response:
            data = response.read()
        if not matches(data, package.integrity):
            raise SystemExit(f"vendor_web: {package.tarball_url} does not match its pinned integrity hash")
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.with_suffix(".new").write_bytes(data)
        cached.with_suffix(".new").replace(cached)
    return data


def matches(data: bytes, integrity: str) -> bool:
    algorithm, expected = integrity.split("-", 1)
    return bool(data) and base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected


def vendor(package: Package) -> None:
    folder = TARGET / package.name
    stamp = folder / ".integrity"  # of the tarball the files came from
    if stamp.is_file() and stamp.read_text() == package.integrity:
        return
    with tarfile.open(fileobj=io.BytesIO(tarball(package)), mode="r:gz") as archive:
        contents = {name: archive.extractfile(f"package/{name}").read() for name in package.files}  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, data in contents.items():
        for url, instead in package.offline.items():
            data = data.replace(url.encode(), instead.encode())
        (folder / Path(name).name).write_bytes(data)
    stamp.write_text(package.integrity)
    print(f"vendor_web: {package.name} {package.version} -> {folder.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    for package in PACKAGES:
        vendor(package)


if __name__ == "__main__":
    main()
