"""The README's ingest/playout walk-through, run by curl against a store in the cluster as a user outside it runs it:
the S3 sample TamsStore applied with kubectl, then the store and SeaweedFS reached through `kubectl port-forward`."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from cluster_access import Cluster
from cluster_setup import S3_NAMESPACE, WAIT_S
from operator_harness import ROOT, apply, documents
from test_readme import walkthrough

pytestmark = pytest.mark.cluster
NAMESPACE = "walkthrough"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl, which is not installed")
def test_the_walkthrough_runs_against_a_store_through_port_forwards(
    cluster: Cluster, admin: httpx.Client, operator: str, seaweedfs: str, tmp_path: Path
) -> None:
    apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    with cluster.port_forward(S3_NAMESPACE, "seaweedfs", 8333) as s3_url:
        # Presigned URLs must name what the walk-through can reach: the forwarded S3 port.
        sample = documents(ROOT / "samples" / "tamsstore-s3.yaml")
        for manifest in sample:
            if manifest["kind"] == "TamsStore":
                manifest["spec"]["media"]["s3"]["publicEndpoint"] = s3_url
                manifest["spec"]["media"]["s3"]["bucket"] = f"walkthrough-{uuid.uuid4().hex[:8]}"
        applied = tmp_path / "store.yaml"
        applied.write_text(yaml.safe_dump_all(sample))
        kubectl = cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(applied))
        assert kubectl.returncode == 0, kubectl.stderr
        ready = cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "tamsstore/media",
                                f"--timeout={WAIT_S}s")  # fmt: skip
        assert ready.returncode == 0, ready.stderr
        with cluster.port_forward(NAMESPACE, "media-tams", 80) as tams_url:
            assert httpx.get(f"{tams_url}/service").status_code == 200
            environment = {**os.environ, "TAMS": tams_url, "TMPDIR": str(tmp_path)}
            result = subprocess.run(["bash", "-c", walkthrough()], cwd=tmp_path, env=environment, capture_output=True,
                                    text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "media round trip OK" in result.stdout
