"""A real browser for the service's pages: Debian's headless Chromium driven through Debian's chromedriver
(installed on first use, as CI starts on a fresh machine), with no way out to the internet: names resolve to
nothing but 127.0.0.1 and every other request goes to a proxy that is not there. What the page asked for and what
its console said are kept, so a test can prove nothing came from elsewhere and nothing failed."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from debian import install_debian_packages

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"  # screenshots (gitignored build/)


class Browser:
    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait_for(self, check: Callable[[webdriver.Chrome], Any], what: str, timeout: float = 30) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(check, f"timed out waiting for {what}")

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def requested(self) -> list[str]:
        """The URLs the pages asked for since the last call (the network log, read once)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def console_errors(self) -> list[str]:
        """What the pages' consoles reported as errors since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def assert_only_from(self, server: str) -> None:
        """Every request since the last look went to `server`, and the console reported nothing wrong."""
        fetched = [urlsplit(url) for url in self.requested()]  # chrome:, data: and blob: URLs are the browser's own
        elsewhere = [url for url in fetched if url.scheme not in ("chrome", "data", "blob")
                     and url.netloc != urlsplit(server).netloc]  # fmt: skip
        assert elsewhere == []
        assert self.console_errors() == []

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[Browser]:
    install_debian_packages(["chromium", "chromium-driver"])
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for argument in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--no-first-run", "--disable-quic", "--disable-sync",
            # Chromium's own calls home would be refused by this machine's closed network, many at a time.
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            # Nothing but this machine: no name resolves elsewhere, and any other address goes to a dead proxy.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
            "--autoplay-policy=no-user-gesture-required",
        ):  # fmt: skip
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield Browser(driver)
        finally:
            driver.quit()
