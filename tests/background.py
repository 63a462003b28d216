"""Real counterparts for background work: an HTTP receiver for webhook events, a running worker, the API as a
process of its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tams_api.config import Settings
from tams_api.routers.common import Services
from tams_api.worker import Worker, WorkerThread


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it is sent. It can be stopped (connections refused)
    and started again on the same port, answer an error status, or hang without answering."""

    port: int = 0
    answer: int = 200
    hang: bool = False
    attempts: int = 0  # POSTs received, answered or not
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                if receiver.hang:
                    receiver._released.wait(60)
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if receiver.answer < 300:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._released.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._released.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(delivery.body["event_type"], delivery.body["event"]) for delivery in self.deliveries]


@contextmanager
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    try:
        yield running
    finally:
        running.stop()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


FAST_WORKER = {
    "worker_poll_interval": 0.02,
    "webhook_timeout": 1.0,
    "webhook_retry_initial": 0.02,
    "webhook_retry_max": 0.1,
}


@contextmanager
def running_worker(services: Services, **settings: Any) -> Iterator[Worker]:
    """A worker on the test's stores, polling often and retrying fast, running until the block ends."""
    fast: Settings = services.settings.model_copy(update={**FAST_WORKER, **settings})
    worker = Worker(services.store, services.media, fast)
    thread = WorkerThread(worker)
    thread.start()
    try:
        yield worker
    finally:
        thread.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll until `condition()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call in a thread of its own, released together; what each returned or raised."""
    start = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = calls[index]()
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@contextmanager
def api_process(data_dir: Path, **env: str) -> Iterator[str]:
    """`python -m tams_api serve` on `data_dir` (and TAMS_* `env`), as a process of its own; its base URL once it
    answers."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "TAMS_DATA_DIR": str(data_dir), "TAMS_PUBLIC_URL": url, **env}
    command = [sys.executable, "-m", "tams_api", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, env=environment)
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200  # with or without authentication
            except httpx.HTTPError:
                return False

        wait_for(answers, 30, f"the API on port {port}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
