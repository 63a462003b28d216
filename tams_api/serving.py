"""`tams-api serve` with TAMS_WORKERS > 1: that many uvicorn worker processes listen on the port (each on a socket
of its own, the kernel spreading connections over them), each a whole server (the app, its stores, its in-process
background worker) made by `worker_app`; this process only supervises them (uvicorn's Multiprocess: SIGTERM or
SIGINT stops them all, one that dies is replaced) and imports no app.

What the processes share lives in the stores: SQLite in WAL mode takes the writers of several processes on one
file (each write waits its turn, as between the old and new pod of a rollout), the store's worker lease lets one
process's worker work at a time, and the filesystem store's URL signing key is one file. Prometheus counters and
histograms are summed over the processes: each writes its values into a directory made here for this server
(prometheus_client's multiprocess mode), which any process's /metrics reads (`tams_api.metrics.exposition`).
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import sys
import tempfile
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from .coalescing import CoalescingHttpToolsProtocol
from .config import Settings
from .errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode, read as it is imported


def serve_processes(settings: Settings, host: str, port: int, log_level: str) -> None:
    """Serve with `settings.workers` processes until SIGTERM or SIGINT stops them all."""
    metrics = tempfile.mkdtemp(prefix="tams-metrics-")
    os.environ[METRICS_DIRECTORY] = metrics  # inherited by the processes started below (spawned: they import anew)
    try:
        config = uvicorn.Config(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_level=log_level,
            access_log=settings.access_log,
            http=CoalescingHttpToolsProtocol,
        )
        supervisor = ProcessesWithOwnSockets(config, sockets=[])
        supervisor.run()
    finally:
        shutil.rmtree(metrics, ignore_errors=True)
    # A process that could not start made the supervisor stop (having said why): fail as a single server would,
    # where uvicorn.run would return as after a stop.
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(1)


class ProcessesWithOwnSockets(Multiprocess):
    """uvicorn's supervisor, each process listening on a socket of its own bound with SO_REUSEPORT, so that the kernel
    spreads new connections over the processes by their addresses. On one shared socket, whichever process woke first
    accepted every connection waiting: a client opening its keep-alive connections together (a proxy, a load
    generator) had them all served by one process while the others idled."""

    @property
    def sockets(self) -> list[socket.socket]:
        # uvicorn hands `self.sockets` to each process it starts or restarts: a new socket for each.
        config = self.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            listening.bind((config.host, config.port))
        except OSError as error:
            listening.close()
            sys.exit(f"tams-api: cannot listen on {config.host}:{config.port}: {error}")
        config.port = listening.getsockname()[1]  # port 0: the one the kernel chose, for every process
        listening.set_inheritable(True)
        return [listening]

    @sockets.setter
    def sockets(self, _: list[socket.socket]) -> None:
        pass  # uvicorn's constructor stores the one shared socket it would give them all: there is none


def worker_app() -> FastAPI:
    """The app of one worker process, from the TAMS_* settings `serve` checked (uvicorn's app factory)."""
    from .app import create_app

    try:
        app = create_app()
    except ConfigurationError as error:
        # One line, as a single server says it, and the status uvicorn's supervisor takes for a start that cannot
        # succeed (it stops, rather than start this process again and again).
        print(f"tams-api: bad configuration: {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    freeze_startup()
    return app


def freeze_startup() -> None:
    """Leave what start-up made (modules, routes, schemas, settings: ~10^5 objects living as long as the process) out
    of the garbage collector's passes, and collect the young generation every 10,000 new objects rather than 700. A
    1,000-segment POST makes ~10^4 objects, which set off full collections walking all of start-up's again, and
    young ones every few segments: about a quarter of registration's time (bench, 300k flow: 66-68k -> 72-79k
    seg/s). The window GET's garbage is acyclic and freed as it goes: no difference there."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
