"""A real PostgreSQL server for tests: Debian's (the `postgresql` package, installed on first use) on 127.0.0.1.

Every login takes a password (SCRAM), the store's own role `tams` too, so URLs with a password in them are
proven against a server that refuses a wrong one. One server per test session; each user takes a fresh schema or
a fresh database. Durability is off (fsync, synchronous_commit, full_page_writes): the data is thrown away. A
benchmark asks for a `durable` server instead: crash-safe (fsync), commits not waiting for their flush, as SQLite's
WAL with synchronous=NORMAL does.

initdb and postgres refuse to run as root, and tests here run as root: then they run as Debian's `postgres` user,
in a folder of their own under the system's temp folder, since pytest's own (/tmp/pytest-of-root) is root's
alone. The postmaster gets SIGQUIT (immediate shutdown) when the thread that started it dies, so a pytest killed
outright does not leave it running; the folder of a session that died so is removed by the next one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from control_plane import free_port
from debian import install_debian_packages

USER = "tams"
PASSWORD = "tams-test-password"
DATABASE = "tams"
ADMIN = "postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
FOLDER_PREFIX = "tams-postgres-"
# A session's folder is its while it holds the lock; a younger folder may be one whose lock is not taken yet.
LEFTOVER_AGE_S = 60
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "synchronous_commit": "off",
    "max_connections": "300",  # the stores' connection pools, many per session
}
THROWAWAY = {"fsync": "off", "full_page_writes": "off"}


@dataclass(frozen=True, slots=True)
class PostgresServer:
    port: int
    admin_password: str

    def database_url(self, database: str) -> str:
        """The libpq URI of a database, as `tams` with its password."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.database_url(DATABASE)

    @property
    def admin_url(self) -> str:
        """The superuser's, on its `postgres` database."""
        return f"postgresql://{ADMIN}:{self.admin_password}@127.0.0.1:{self.port}/postgres"

    def new_schema(self) -> str:
        """A schema name nobody has used, not created: the store creates its schema itself."""
        return f"tams_{uuid.uuid4().hex[:16]}"

    def new_database(self) -> str:
        """The URL of a database made now, owned by `tams`."""
        name = f"tams_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" OWNER "{USER}"')
        return self.database_url(name)


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


def postgres_bin() -> Path:
    """The bin folder of the newest PostgreSQL Debian has installed, installing the `postgresql` package first
    where there is none (apt: root)."""
    found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    if not found:
        install_debian_packages(["postgresql"])
        found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    if not found:
        raise RuntimeError("no /usr/lib/postgresql/*/bin/postgres after installing Debian's postgresql")
    return max(found, key=_version)


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's user: `postgres` when this is root, else this user."""
    if os.geteuid() != 0:
        return ["setpriv"]
    return ["setpriv", f"--reuid={ADMIN}", f"--regid={ADMIN}", "--init-groups"]


def _remove_leftovers() -> None:
    """The folders of sessions that died without their teardown (SIGKILL, out of memory): their lock is free."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < LEFTOVER_AGE_S:
                continue
            with open(folder / "lock", "rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder)
        except OSError:
            continue  # in use, another user's, or gone already


@contextmanager
def _server_folder() -> Iterator[Path]:
    """A folder the server's user owns (its data and its socket), locked for this session, removed after it."""
    _remove_leftovers()
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    try:
        with open(folder / "lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.geteuid() == 0:
                shutil.chown(folder, ADMIN, ADMIN)
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _initdb(bin_dir: Path, folder: Path, admin_password: str) -> Path:
    data = folder / "data"
    password_file = folder / "admin-password"
    password_file.write_text(admin_password)
    if os.geteuid() == 0:
        shutil.chown(password_file, ADMIN, ADMIN)
    command = [
        *_as_server_user(),
        str(bin_dir / "initdb"),
        f"--pgdata={data}",
        f"--username={ADMIN}",
        f"--pwfile={password_file}",
        "--auth=scram-sha-256",  # socket and TCP alike: no login without a password
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--no-instructions",
    ]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    password_file.unlink()
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return data


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (what `pg_ctl stop -m fast` sends), then immediate (`-m immediate`), then SIGKILL. Signals,
    not pg_ctl: pg_ctl refuses root too, and the postmaster is this process's child."""
    for stop_signal in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(stop_signal)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue


def _wait_ready(process: subprocess.Popen[bytes], server: PostgresServer, log: Path) -> None:
    """Until a connection as the superuser succeeds: pg_isready would not prove the password works."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with psycopg.connect(server.admin_url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start in {START_TIMEOUT_S} s; see {log}") from None
            time.sleep(0.05)


@contextmanager
def postgres(workdir: Path, durable: bool = False) -> Iterator[PostgresServer]:
    """A server with the `tams` role and database; its log in `workdir`."""
    bin_dir = postgres_bin()
    workdir.mkdir(parents=True, exist_ok=True)
    admin_password = uuid.uuid4().hex
    with ExitStack() as stack:
        folder = stack.enter_context(_server_folder())
        data = _initdb(bin_dir, folder, admin_password)
        for attempt in range(3):  # a free port can be taken before the server binds it
            server = PostgresServer(free_port(), admin_password)
            log = workdir / f"postgres-{attempt}.log"
            settings = {**SETTINGS, **({} if durable else THROWAWAY), "port": str(server.port)}
            settings["unix_socket_directories"] = str(folder)
            command = [
                *_as_server_user(),
                "--pdeathsig=QUIT",  # set by setpriv last, after the user changed (a change clears it)
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                *(f"-c{name}={value}" for name, value in settings.items()),
            ]
            with open(log, "wb") as output:
                # Its own process group: a Ctrl-C at the terminal stops the tests, then the teardown stops it.
                process = subprocess.Popen(command, cwd=folder, stdout=output, stderr=output, process_group=0)
            stack.callback(_stop, process)
            try:
                _wait_ready(process, server, log)
                break
            except RuntimeError:
                if "Address already in use" not in log.read_text() or attempt == 2:
                    raise
        with psycopg.connect(server.admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE \"{USER}\" LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{USER}"')
        yield server
