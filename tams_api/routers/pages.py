"""The service's web pages: `/ui` (what the store holds, and a player of its flows), `/docs` (Swagger UI) and
`/redoc` (ReDoc) on the OpenAPI document. Their files are the package's, served under `/ui/assets/` (the libraries
under `vendor/`, put there by scripts/vendor_web.py): the pages work where there is no internet. URLs are relative,
so the pages work behind a proxy that serves the API under a path. The pages themselves need no credentials; what
they show comes from the API, with the visitor's."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from ..errors import Unavailable

router = APIRouter(include_in_schema=False)
ASSETS = Path(__file__).resolve().parent.parent / "static"  # served at /ui/assets
VENDOR = "ui/assets/vendor"  # relative to the pages
TITLE = "Time-addressable Media Store"


def vendored(package: str, name: str) -> str:
    """The URL of a vendored file, relative to the pages; Unavailable (503, saying how to fix it) when this
    installation was made without scripts/vendor_web.py, rather than a blank page."""
    if not (ASSETS / "vendor" / package / name).is_file():
        raise Unavailable(f"{package} is not installed with this service: run scripts/vendor_web.py, then reinstall")
    return f"{VENDOR}/{package}/{name}"


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="openapi.json",
        title=f"{TITLE}: API",
        swagger_js_url=vendored("swagger-ui-dist", "swagger-ui-bundle.js"),
        swagger_css_url=vendored("swagger-ui-dist", "swagger-ui.css"),
        swagger_favicon_url=vendored("swagger-ui-dist", "favicon-32x32.png"),
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="openapi.json",
        title=f"{TITLE}: API reference",
        redoc_js_url=vendored("redoc", "redoc.standalone.js"),
        redoc_favicon_url=vendored("swagger-ui-dist", "favicon-32x32.png"),
        with_google_fonts=False,
    )


@router.get("/ui")
def ui() -> FileResponse:
    vendored("hls.js", "hls.min.js")  # its player
    return FileResponse(ASSETS / "ui.html", media_type="text/html")
