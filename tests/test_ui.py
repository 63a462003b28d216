"""/ui in a real browser (headless Chromium, no way out but 127.0.0.1) on a live server with bearer tokens on: the
page asks for a token, lists the flow an ffmpeg stream was ingested into, opens it (its segments on a timeline, a
gap visible) and plays it with hls.js past 2 s, with no console errors; screenshots in build/test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from background import api_process
from browser import Browser, headless_chromium
from hls_media import Stream, ffmpeg_hls, ingest

TOKEN = "ui-test-token"
CREDENTIALS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return ffmpeg_hls(tmp_path_factory.mktemp("hls") / "mpegts", fmp4=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = {"TAMS_AUTH_MODES": "token", "TAMS_AUTH_TOKENS": f"editor {TOKEN}"}
    with api_process(tmp_path_factory.mktemp("ui") / "data", **tokens) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as opened:
        yield opened


def test_the_page_lists_opens_and_plays_an_ingested_flow(
    browser: Browser, server: str, stream: Stream, tmp_path: Path
) -> None:
    flow_id = ingest(server, stream, skip=3, headers=CREDENTIALS)  # a gap between 6 s and 8 s
    browser.open(f"{server}/ui")
    # The API answered 401: the page asks for a token (not a user and password: the challenge says Bearer).
    browser.wait_for(lambda driver: driver.find_element(By.ID, "login").is_displayed(), "the login form")
    assert browser.script("return document.querySelector('[data-scheme=basic]').hidden")
    refused = browser.console_errors()  # the browser reports the 401 it was answered, nothing else
    assert refused and all("401 (Unauthorized)" in message for message in refused), refused
    browser.driver.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.driver.find_element(By.CSS_SELECTOR, "#login button").click()

    row = browser.wait_for(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, f"tr[data-flow='{flow_id}']"), "the flow"
    )
    assert "ffmpeg test stream" in row[0].text and "multi" in row[0].text
    browser.screenshot("ui-flows")
    row[0].click()

    browser.wait_for(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#timeline .segment"), "the timeline")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#timeline .segment")) == len(stream.segments) - 1
    assert "(1 gap)" in browser.driver.find_element(By.ID, "timeline").text
    played = "const media = document.getElementById('player'); media.muted = true; media.play(); return true"
    browser.wait_for(lambda _: browser.script("return document.getElementById('player').readyState >= 2"), "media")
    browser.script(played)
    browser.wait_for(lambda _: browser.script("return document.getElementById('player').currentTime") > 2.0,
                     "the player past 2 s", timeout=60)  # fmt: skip
    browser.screenshot("ui-flow-playing")
    browser.assert_only_from(server)
    assert browser.script("return document.getElementById('problem').hidden")


def test_with_basic_authentication_the_page_asks_for_a_user_and_a_password(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    users = {"TAMS_AUTH_MODES": "basic", "TAMS_AUTH_USERS": "editor secret-word"}
    with api_process(tmp_path_factory.mktemp("basic") / "data", **users) as server:
        browser.open(f"{server}/ui")
        browser.wait_for(lambda driver: driver.find_element(By.ID, "login").is_displayed(), "the login form")
        assert browser.script("return document.querySelector('[data-scheme=bearer]').hidden")
        browser.console_errors()  # the 401 that asked
        browser.driver.find_element(By.NAME, "user").send_keys("editor")
        browser.driver.find_element(By.NAME, "password").send_keys("secret-word")
        browser.driver.find_element(By.CSS_SELECTOR, "#login button").click()
        browser.wait_for(lambda driver: "No flows yet." in driver.find_element(By.ID, "view").text, "the flows")
        assert not browser.driver.find_element(By.ID, "login").is_displayed()
        browser.assert_only_from(server)
