"""Operator benchmark: time from `kubectl apply` of a TamsStore to Ready, for 1 and for 100 stores at once,
and the operator's memory.

Run with `make bench-operator` (or `python -m bench.operator --help`). A real kube-apiserver and
controller-manager (tests/control_plane.py, built once and cached) run the real Deployment and ReplicaSet
controllers; the operator runs as its own process (`python -m tams_operator`) under its least-privilege
service account, as in a cluster; the kubelet's part (marking pods Running and Ready) is played by a loop
in this process every 50 ms. The baseline, measured in the same run with the same kubelet loop, is a bare
Deployment created directly until it is Available: what the control plane itself takes, which the
operator's time is a ratio of. Embedded stores (sqlite + filesystem) need no outside provisioning, so the
figure is the operator's own work. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.harness import machine_info, progress, save_results
from control_plane import OPERATOR, ControlPlane, control_plane, free_port
from operator_harness import GROUP, OPERATOR_ENV, create, install, play_kubelet


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Kubelet(threading.Thread):
    """Marks every pending pod of the namespaces Running and Ready, as kubelets would after their probes."""

    def __init__(self, kube: ControlPlane) -> None:
        super().__init__(daemon=True)
        self.client = kube.client()
        self.stopped = threading.Event()
        self.namespaces: set[str] = set()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for namespace in list(self.namespaces):
                pods = self.client.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
                if any((pod.get("status") or {}).get("phase") != "Running" for pod in pods):
                    play_kubelet(self.client, namespace, "")


def ready_at(body: dict[str, Any], kind: str) -> bool:
    if kind == "Deployment":
        return (body.get("status") or {}).get("availableReplicas", 0) >= 1
    conditions = (body.get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def time_to_ready(client: httpx.Client, manifests: list[dict[str, Any]], collection: str, kind: str) -> list[float]:
    """Create all at once; seconds from each creation until it is Ready (TamsStore) or Available (Deployment)."""
    started = {}
    for manifest in manifests:
        started[manifest["metadata"]["name"]] = time.perf_counter()
        create(client, manifest)
    namespace = manifests[0]["metadata"]["namespace"]
    elapsed: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while len(elapsed) < len(manifests):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(elapsed)} of {len(manifests)} ready after 600 s")
        for body in client.get(f"{collection}/namespaces/{namespace}/{kind.lower()}s").json()["items"]:
            name = body["metadata"]["name"]
            if name in started and name not in elapsed and ready_at(body, kind):
                elapsed[name] = time.perf_counter() - started[name]
        time.sleep(0.02)
    return sorted(elapsed.values())


def bare_deployment(namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "c", "image": "tams-operator:latest"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    }  # fmt: skip


def store(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": name, "namespace": namespace}, "spec": {}}


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
        "max_s": round(ordered[-1], 3),
    }


def namespace(client: httpx.Client, kubelet: Kubelet) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    create(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kubelet.namespaces.add(name)
    return name


def run(single_rounds: int, many: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir, control_plane(Path(workdir) / "kube", users=(OPERATOR,)) as kube:
        client = kube.client()
        install(client)
        kubelet = Kubelet(kube)
        kubelet.start()
        env = {**os.environ, **OPERATOR_ENV, "TAMS_OPERATOR_RESYNC_INTERVAL": "60",
               "KUBECONFIG": str(kube.kubeconfig(OPERATOR))}  # fmt: skip
        command = [sys.executable, "-m", "tams_operator", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"]
        with open(Path(workdir) / "operator.log", "wb") as log:
            operator = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(3)  # started and watching
            idle_rss = rss_mb(operator.pid)
            baseline, single = [], []
            for round_ in range(single_rounds):  # alternating, so drift affects both alike
                progress(f"round {round_ + 1}/{single_rounds}: one bare Deployment, one TamsStore")
                where = namespace(client, kubelet)
                baseline += time_to_ready(client, [bare_deployment(where, "bare")], "/apis/apps/v1", "Deployment")
                single += time_to_ready(client, [store(where, "one")], f"/apis/{GROUP}", "TamsStore")
            progress(f"{many} bare Deployments at once")
            where = namespace(client, kubelet)
            many_baseline = time_to_ready(
                client, [bare_deployment(where, f"bare-{i}") for i in range(many)], "/apis/apps/v1", "Deployment"
            )
            progress(f"{many} TamsStores at once")
            where = namespace(client, kubelet)
            cpu_before, wall_before = cpu_seconds(operator.pid), time.perf_counter()
            many_stores = time_to_ready(
                client, [store(where, f"store-{i}") for i in range(many)], f"/apis/{GROUP}", "TamsStore"
            )
            operator_cpu = cpu_seconds(operator.pid) - cpu_before
            many_wall = time.perf_counter() - wall_before
            loaded_rss = rss_mb(operator.pid)
        finally:
            kubelet.stopped.set()
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(30)
    ratio = statistics.median(single) / statistics.median(baseline)
    many_ratio = statistics.median(many_stores) / statistics.median(many_baseline)
    return {
        "machine": machine_info(),
        "one_store": summary(single),
        "one_bare_deployment": summary(baseline),
        "one_ratio_p50": round(ratio, 2),
        "many_stores": summary(many_stores),
        "many_bare_deployments": summary(many_baseline),
        "many_ratio_p50": round(many_ratio, 2),
        "operator_rss_mb": {"idle": round(idle_rss, 1), f"with_{many}_stores": round(loaded_rss, 1)},
        # How busy the operator itself was while the stores came up: near 1.0 means it was the bottleneck.
        "operator_cpu_s_during_many": round(operator_cpu, 1),
        "operator_cpu_share_during_many": round(operator_cpu / many_wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single-rounds", type=int, default=10, help="one-store applies (default 10)")
    parser.add_argument("--many", type=int, default=100, help="stores applied at once (default 100)")
    args = parser.parse_args()
    results = run(args.single_rounds, args.many)
    print(save_results(results, "operator-"))
    for name, value in results.items():
        if name != "machine":
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
