"""Cluster benchmark: time from applying a TamsStore to Ready with real pods, on the kind cluster of
`make e2e` (e2e/cluster/: the image under test loaded into it, the operator installed by its chart).

The baseline, measured in the same run on the same node, is a bare Deployment of the same image running the same
`serve` command with the same readiness probe and security context, on emptyDir volumes, until it is Available:
what starting a TAMS pod takes without the operator. A store adds the operator's reconcile, its children, two
volumes provisioned and bound, and the roll-up of the pod's readiness into the store's status. One store and one
bare Deployment alternate (so drift affects both alike); then many of each at once.

Run with `make bench-cluster` (root on Linux, as `make e2e`; about 5 minutes warm). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "e2e" / "cluster")]

from tams_operator.resources import api_deployment  # noqa: E402
from tams_operator.spec import TamsStoreSpec  # noqa: E402
from tams_operator.tamsstore import Store  # noqa: E402

import cluster_setup  # noqa: E402
import images  # noqa: E402
from bench.harness import machine_info, progress, save_results  # noqa: E402
from bench.operator import summary, time_to_ready  # noqa: E402
from operator_harness import GROUP, create  # noqa: E402


def api_container() -> dict[str, Any]:
    """The API container the operator gives a store's pod."""
    return api_deployment(Store("any", "bench", TamsStoreSpec()))["spec"]["template"]["spec"]["containers"][0]


def bare_deployment(namespace: str, name: str) -> dict[str, Any]:
    """The TAMS API as a plain Deployment: the image, command, probe and security context of a store's pod."""
    labels = {"app": name}
    container = {
        "name": "tams-api",
        "image": images.TAMS_IMAGE,
        "imagePullPolicy": "Never",
        "args": ["serve", "--host", "0.0.0.0", "--port", "8000"],
        "env": [{"name": "TAMS_PUBLIC_URL", "value": f"http://{name}.{namespace}.svc"}],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": api_container()["readinessProbe"],
        "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }  # fmt: skip


def store(namespace: str, name: str) -> dict[str, Any]:
    """An embedded store (SQLite and filesystem media on two provisioned volumes), reclaimed with its object."""
    spec = {"metadata": {"backend": "sqlite"}, "media": {"backend": "filesystem"}, "reclaimPolicy": "Delete"}
    return {"apiVersion": GROUP, "kind": "TamsStore", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def new_namespace(admin: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def run(rounds: int, many: int) -> dict[str, Any]:
    started = time.monotonic()
    with cluster_setup.running_cluster() as cluster, cluster.admin() as admin:
        progress(f"cluster up with the images in {time.monotonic() - started:.0f} s")
        cluster_setup.install_operator(cluster.kubeconfig, admin)
        baseline, single = [], []
        for round_ in range(rounds):
            progress(f"round {round_ + 1}/{rounds}: one bare Deployment, one TamsStore")
            where = new_namespace(admin)
            baseline += time_to_ready(admin, [bare_deployment(where, "bare")], "/apis/apps/v1", "Deployment")
            single += time_to_ready(admin, [store(where, "one")], f"/apis/{GROUP}", "TamsStore")
        progress(f"{many} bare Deployments at once")
        where = new_namespace(admin)
        deployments = [bare_deployment(where, f"bare-{index}") for index in range(many)]
        many_baseline = time_to_ready(admin, deployments, "/apis/apps/v1", "Deployment")
        progress(f"{many} TamsStores at once")
        where = new_namespace(admin)
        stores = [store(where, f"store-{index}") for index in range(many)]
        many_stores = time_to_ready(admin, stores, f"/apis/{GROUP}", "TamsStore")
    return {
        "machine": machine_info(),
        "one_store": summary(single),
        "one_bare_deployment": summary(baseline),
        "one_ratio_p50": round(statistics.median(single) / statistics.median(baseline), 2),
        "many_stores": summary(many_stores),
        "many_bare_deployments": summary(many_baseline),
        "many_ratio_p50": round(statistics.median(many_stores) / statistics.median(many_baseline), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="stores applied one at a time (default 10)")
    parser.add_argument("--many", type=int, default=10, help="stores applied at once (default 10)")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.many)
    print(json.dumps(results, indent=2))
    progress(f"saved to {save_results(results, 'cluster-')}")


if __name__ == "__main__":
    main()
