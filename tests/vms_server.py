"""A tiny fake of VMS, the VAST management REST API, over real HTTPS on 127.0.0.1 (vastpy speaks HTTPS only).

Only what `tams_api.stores.vms` calls through vastpy: listing views and view policies (filtered by query
fields), and creating a view, refused unless it carries what VMS needs for a database bucket: a path starting
with "/", the S3 and DATABASE protocols, a bucket name, a bucket owner that is a known user with S3 keys and an
existing view policy id. Basic auth, as vastpy sends it. A created view makes its bucket exist on the fake
VAST cluster (`on_bucket`), which is what VMS does for the SDK.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from certificates import https_server, self_signed

USERNAME = "vms-admin"
PASSWORD = "vms-password"
BUCKET_OWNER = "tams-db-user"  # a VMS user with S3 keys
VIEW_POLICY = "s3_default_policy"


@dataclass
class FakeVms:
    address: str  # host:port, as vastpy wants it
    on_bucket: Callable[[str], None]
    views: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=lambda: [{"id": 3, "name": VIEW_POLICY}])
    users_with_s3_keys: set[str] = field(default_factory=lambda: {BUCKET_OWNER})
    requests: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)  # ..., tenant

    def creations(self) -> list[dict[str, Any]]:
        return [fields for method, path, fields, _ in self.requests if (method, path) == ("POST", "/api/latest/views/")]

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], tenant: str | None
    ) -> tuple[int, Any]:
        self.requests.append((method, path, body if method == "POST" else query, tenant))
        listings = {"/api/latest/views/": self.views, "/api/latest/viewpolicies/": self.policies}
        if method == "GET" and path in listings:
            return 200, [entry for entry in listings[path] if all(str(entry.get(k)) == v for k, v in query.items())]
        if method == "POST" and path == "/api/latest/views/":
            return self._create_view(body)
        return 404, {"detail": "Not found."}

    def _create_view(self, body: dict[str, Any]) -> tuple[int, Any]:
        problems = []
        if not str(body.get("path", "")).startswith("/"):
            problems.append("path: must begin with '/'")
        if not {"S3", "DATABASE"} <= set(body.get("protocols", [])):
            problems.append("protocols: a database view needs S3 and DATABASE")
        if not body.get("bucket"):
            problems.append("bucket: required with S3")
        if body.get("bucket_owner") not in self.users_with_s3_keys:
            problems.append(f"bucket_owner: no user {body.get('bucket_owner')!r} with S3 keys")
        if body.get("policy_id") not in {policy["id"] for policy in self.policies}:
            problems.append("policy_id: no such view policy")
        if not body.get("create_dir") and not any(view["path"] == body.get("path") for view in self.views):
            problems.append("path: directory does not exist (create_dir)")
        if any(view["bucket"] == body.get("bucket") for view in self.views):
            problems.append("bucket: already exists")
        if problems:
            return 400, {"detail": "; ".join(problems)}
        view = {"id": len(self.views) + 1, **body}
        self.views.append(view)
        self.on_bucket(body["bucket"])
        return 201, view


def _handler(vms: FakeVms) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _answer(self, method: str) -> None:
            if self.headers.get("Authorization") != expected:
                status, answer = 401, {"detail": "Invalid username/password."}
            else:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                query = dict(parse_qsl(url.query))
                status, answer = vms.handle(method, url.path, query, body, self.headers.get("X-Tenant-Name"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

    return Handler


@contextmanager
def fake_vms(directory: Path, on_bucket: Callable[[str], None]) -> Iterator[FakeVms]:
    """A fake VMS serving HTTPS on a free port of 127.0.0.1 until the block ends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(directory, "127.0.0.1"))
    with https_server(context) as server:
        vms = FakeVms(f"127.0.0.1:{server.server_address[1]}", on_bucket)
        server.RequestHandlerClass = _handler(vms)
        yield vms
