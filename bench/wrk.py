"""Throughput rounds driven by wrk (C, from Debian's packages): one thread keeping N keep-alive connections busy, each
sending its next GET as soon as the last is answered, for a number of seconds.

On two cores the client shares the cores with the servers it measures: what it spends per request is taken from the
server processes (most of all from a second one). The Python closed loop this replaces spent 17-44 µs of CPU a
request on this machine, wrk 5-10 µs; a round reports the client's CPU per request beside the server's, so the
share it took is in every figure.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import threading
from pathlib import Path

from bench.harness import Server, ThroughputRound, connections_by_process, cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# The tests' Debian installer, shared rather than copied.
from debian import install_debian_packages

_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
# Lines wrk prints only when some answers or connections failed.
_FAILURES = re.compile(r"^\s*(Non-2xx or 3xx responses|Socket errors):.*$", re.MULTILINE)


def install_wrk() -> None:
    install_debian_packages(["wrk"])


def parse_wrk(said: str) -> tuple[int, float]:
    """The answers wrk counted and their rate per second, from its report; an error quoting it when any answer was
    not 2xx or a connection failed (a server that errs fast must not look fast)."""
    failures = _FAILURES.search(said)
    requests, rate = _REQUESTS.search(said), _RATE.search(said)
    if failures or requests is None or rate is None:
        raise RuntimeError(f"wrk saw failures or said nothing countable:\n{said}")
    return int(requests[1]), float(rate[1])


def wrk_round(server: Server, path: str, seconds: int, connections: int) -> ThroughputRound:
    """`connections` keep-alive clients GETting `path` for `seconds`: the answers, the CPU the server spent over the
    whole run (wrk's connecting included) and wrk's, and how the server's processes shared the connections (counted
    halfway through)."""
    cpu_before = cpu_seconds(server.pid)
    client_before = _children_cpu_seconds()
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"{server.base_url}{path}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    split: list[int] = []
    sampler = threading.Timer(seconds / 2, lambda: split.extend(connections_by_process(server.pid, server.port)))
    sampler.start()
    try:
        said, _ = process.communicate(timeout=seconds + 60)  # wrk stops itself; a hung one is killed below
    finally:
        sampler.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    sampler.join()
    server_cpu = cpu_seconds(server.pid) - cpu_before
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{said}")
    requests, per_s = parse_wrk(said)
    return ThroughputRound(requests, requests / per_s, server_cpu, _children_cpu_seconds() - client_before, split)


def _children_cpu_seconds() -> float:
    """User and system CPU of this process's children that have been waited for: wrk's, once it has ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
