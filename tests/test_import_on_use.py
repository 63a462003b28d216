"""A server on the default embedded stores imports no SDK it does not use: boto3 and botocore (~24 MB resident), the
VAST SDK with pyarrow and ibis (~115 MB), PostgreSQL's driver, PyJWT with cryptography (~9 MB), OpenTelemetry's SDK
and exporter, httpx and its TLS context (~12 MB, for webhook delivery). Each comes in when its setting asks for it.

Each case runs in a fresh interpreter (this one has imported everything), which creates the app from TAMS_*
variables, runs its start-up and shutdown (the worker included) and answers a few requests, then reports which of
the modules below it holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPTIONAL = [
    "boto3",
    "botocore",
    "vastdb",
    "pyarrow",
    "ibis",
    "psycopg",
    "jwt",
    "cryptography",
    "httpx",
    # FastAPI itself imports the OpenTelemetry API (a dependency of it); the SDK and the exporter are the extra's.
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
]

SCRIPT = """
import asyncio, json, sys

import tams_api.__main__  # the CLI module that `tams-api serve` runs, with what it imports
from tams_api.app import create_app


async def status(app, path):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent[0]["status"]


async def serve(app):
    async with app.router.lifespan_context(app):  # the worker starts and stops
        return [await status(app, path) for path in ("/flows", "/service", "/metrics")]


try:
    statuses = asyncio.run(serve(create_app()))
except Exception as error:  # a backend configured with nothing behind it: its SDK was imported to find out
    statuses = repr(error)
print(json.dumps({"statuses": statuses, "imported": [name for name in sys.argv[1:] if name in sys.modules]}))
"""


def imported(data_dir: Path, **settings: str) -> tuple[list[int] | str, list[str]]:
    """What a fresh `create_app()` under these TAMS_* settings answered, and which OPTIONAL modules it imported."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TAMS_", "OTEL_"))}
    env |= {"TAMS_DATA_DIR": str(data_dir), **settings}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *OPTIONAL], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    return report["statuses"], report["imported"]


def test_the_default_stores_import_no_optional_sdk(tmp_path: Path) -> None:
    assert imported(tmp_path) == ([200, 200, 200], [])


def test_basic_and_token_authentication_import_no_jwt_library(tmp_path: Path) -> None:
    statuses, modules = imported(tmp_path, TAMS_AUTH_MODES="basic,token", TAMS_AUTH_TOKENS="ci secret")
    assert statuses == [401, 401, 200]  # /metrics is public by default
    assert modules == []


UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {
                "TAMS_MEDIA_BACKEND": "s3",
                "TAMS_S3_BUCKET": "media",
                "TAMS_S3_ENDPOINT_URL": UNREACHABLE,
                "TAMS_S3_ACCESS_KEY_ID": "key",
                "TAMS_S3_SECRET_ACCESS_KEY": "secret",
            },
            {"boto3", "botocore"},
        ),
        (
            # An endpoint the SDK refuses before connecting (a refused connection is retried for a minute).
            {
                "TAMS_METADATA_BACKEND": "vast",
                "TAMS_VAST_ENDPOINT": "ftp://vast.invalid",
                "TAMS_VAST_ACCESS_KEY": "key",
                "TAMS_VAST_SECRET_KEY": "secret",
                "TAMS_VAST_BUCKET": "tams",
            },
            {"vastdb", "pyarrow", "ibis"},
        ),
        ({"TAMS_AUTH_MODES": "jwt", "TAMS_AUTH_JWKS_URL": f"{UNREACHABLE}/jwks"}, {"jwt", "cryptography"}),
        (
            {"TAMS_OTEL_EXPORTER_OTLP_ENDPOINT": UNREACHABLE},
            {"opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation"},
        ),
    ],
    ids=["s3", "vast", "jwt", "tracing"],
)
def test_a_configured_backend_imports_its_sdk(tmp_path: Path, settings: dict[str, str], expected: set[str]) -> None:
    _, modules = imported(tmp_path, **settings)
    assert expected <= set(modules)
