"""/docs and /redoc render the API's operations in a real browser with no internet: every script, style and font
comes from the service (the vendored libraries), and the browser asks nothing of any other host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from background import api_process
from browser import Browser, headless_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_process(tmp_path_factory.mktemp("docs") / "data") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as opened:
        yield opened


def test_swagger_ui_renders_every_path_offline(browser: Browser, server: str) -> None:
    paths = set(httpx.get(f"{server}/openapi.json").json()["paths"])
    browser.open(f"{server}/docs")
    listed = "return [...document.querySelectorAll('.opblock-summary-path')].map(e => e.dataset.path)"
    shown = browser.wait_for(lambda _: (found := set(browser.script(listed))) >= paths and found, "every path listed")
    assert "/flows/{flow_id}/segments" in shown
    browser.screenshot("docs")
    browser.assert_only_from(server)


def test_redoc_renders_the_operations_offline(browser: Browser, server: str) -> None:
    browser.open(f"{server}/redoc")
    operations = browser.wait_for(
        lambda _: (
            browser.script("return document.querySelectorAll('[data-section-id*=\"operation/\"]').length") or None
        ),
        "ReDoc to render the operations",
    )
    assert operations >= 50
    assert "/flows/{flow_id}/segments" in browser.script("return document.body.innerText")
    browser.assert_only_from(server)


def test_the_docs_scripts_are_served_by_the_service(server: str) -> None:
    page = httpx.get(f"{server}/docs").text
    assert "cdn." not in page and "https://" not in page
    for asset in (
        "swagger-ui-dist/swagger-ui-bundle.js",
        "swagger-ui-dist/swagger-ui.css",
        "redoc/redoc.standalone.js",
    ):
        response = httpx.get(f"{server}/ui/assets/vendor/{asset}")
        assert response.status_code == 200 and len(response.content) > 100_000
    licences = Path(__file__).resolve().parent.parent / "tams_api" / "static" / "vendor"
    assert all((folder / "LICENSE").is_file() for folder in licences.iterdir())
