"""A real Argo CD for the e2e cluster (GitOps: it syncs the chart and the stores from git and reads their health).

Built from its Go module, like the other addons (addons.py), and cached by version under $TAMS_OPERATOR_CACHE: a
small main of ours running Argo CD's own application controller and repo server commands (its full `cmd` adds the
API server, the UI, the CLI, Dex, notifications and the ApplicationSet controller, none of which a headless Argo CD
runs). Its go.mod names Go 1.27, newer than this machine's Go: GOTOOLCHAIN names it and the Go proxy serves it.
The repo server runs `helm` (Helm v4, what Argo CD v3.6 ships, `go install`ed) and Debian's `git`; Redis is Debian's.

They run as host processes against the cluster's kubeconfig, as Argo CD's own development setup runs them
(its Procfile: ARGOCD_FAKE_IN_CLUSTER makes the in-cluster destination `https://kubernetes.default.svc` the
kubeconfig's cluster), each in its own process group, on 127.0.0.1 (the controller's metrics server binds every
address: it has no flag for it). Its CRDs and the `argocd-cm` family of ConfigMaps come from the module's
manifests, applied to namespace `argocd` as a user's install does; the `default` AppProject, which Argo CD's API
server would create, is applied here. The project's health scripts go into argocd-cm by the README's own command.
Git repositories are read through `file://` URLs (what Argo CD's own e2e tests use): GitRepository makes one.

    python e2e/cluster/argocd_addons.py build    # builds what is missing; prints time and path per binary

Measured on this 2-core machine, Go's caches cold for them: Argo CD 225 s (Go 1.27.3 and the modules fetched
included; 114 MB), Helm 149 s (94 MB); cached, none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import addons  # first: through images.py it puts scripts/ and tests/ on the path
import images
from cluster_access import Cluster
from control_plane import free_port, process, wait_until
from host import install_debian_packages, run
from k8s_binaries import ensure
from node_image import installed, wrapped
from operator_harness import ROOT, wait

Manifest = dict[str, Any]

ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
ARGOCD_VERSION = "v3.6.2"
# Its go.mod says `go 1.27.0`: the approved toolchain, which the Go proxy serves (about 76 MB, once per machine).
ARGOCD_GO = {"GOTOOLCHAIN": "go1.27.3"}
HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"  # what Argo CD v3.6.2 ships (its hack/tool-versions.sh)
DEBIAN_PACKAGES = ("redis-server", "git")

NAMESPACE = "argocd"
API = "argoproj.io/v1alpha1"
CONTROLLER = "argocd-application-controller"
REPO_SERVER = "argocd-repo-server"
# Argo CD deletes what an Application made before the Application itself goes (a cascading deletion).
CASCADE_FINALIZER = "resources-finalizer.argocd.argoproj.io"
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
RESYNC_S = 30  # the controller's poll of git (default 120 s); the tests also ask for a refresh after each commit
START_S = 120

# The commands named as Argo CD's own main names them (by ARGOCD_BINARY_NAME), with its start-up settings.
ARGOCD_MAIN = """package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

// Argo CD's main turns gRPC's DNS SRV lookups off (util/grpc.DisableSRVLookups), which its grpclb balancer turns
// on; neither command links grpclb, so they are off here already (and that function panics when they are).
func main() {
	name := filepath.Base(os.Args[0])
	if value := os.Getenv("ARGOCD_BINARY_NAME"); value != "" {
		name = value
	}
	var command *cobra.Command
	switch name {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "ARGOCD_BINARY_NAME must be %s or %s\\n", common.CommandApplicationController,
			common.CommandRepoServer)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
"""


# Binaries -------------------------------------------------------------------------------------------------------------


def argocd_binary() -> Path:
    """The application controller and repo server (the main above), against Argo CD's module at ARGOCD_VERSION. Its
    go.mod replaces its gitops-engine module by a folder of its repository that the module's zip leaves out (a nested
    module): the gitops-engine of the same version, from the proxy, is required instead."""
    requirements = f"require {ARGOCD_MODULE} {ARGOCD_VERSION}\n\n"
    requirements += addons.inherited_directives(ARGOCD_MODULE, ARGOCD_VERSION, **ARGOCD_GO)
    package = f"{ARGOCD_MODULE}/common"
    go_mod = (addons.module_dir(ARGOCD_MODULE, ARGOCD_VERSION, **ARGOCD_GO) / "go.mod").read_text()
    kubernetes = re.search(r"^\s*k8s\.io/client-go (\S+)", go_mod, flags=re.MULTILINE)  # as Argo CD's Makefile stamps
    stamps = [f"-X {package}.version={ARGOCD_VERSION.removeprefix('v')}", f"-X {package}.gitTag={ARGOCD_VERSION}"]
    stamps += [f"-X {package}.kubectlVersion={kubernetes[1]}"] if kubernetes else []
    ldflags = " ".join(["-s", "-w", *stamps])
    # Cached by Argo CD's version and what is built from it (the main, the flags): a change builds anew.
    cached = f"{ARGOCD_VERSION}-{images.digest(ARGOCD_MAIN, ldflags)[:8]}"
    return wrapped("argocd", cached, requirements, {"main.go": ARGOCD_MAIN}, ".", f"-ldflags={ldflags}", **ARGOCD_GO)


def helm_binary() -> Path:
    return installed(f"{HELM_MODULE}/cmd/helm", HELM_VERSION)


def install_scripts(folder: Path) -> Path:
    """Argo CD's git-verify-wrapper.sh, which its image has on the PATH and its repo server runs for every manifest
    it generates, signatures configured or not (without it: "permission denied"), copied from its module into
    `folder` with the execute bit (the module cache keeps none); the folder for the PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "git-verify-wrapper.sh"
    source = addons.module_dir(ARGOCD_MODULE, ARGOCD_VERSION, **ARGOCD_GO) / "hack" / script.name
    script.write_bytes(source.read_bytes())
    script.chmod(0o755)
    return folder


def build() -> list[tuple[Path, float]]:
    """Each binary, built once per version: its path and the seconds it took (about none when cached)."""
    made = []
    for binary in (argocd_binary, helm_binary):
        started = time.monotonic()
        made.append((binary(), time.monotonic() - started))
    return made


# Installing into the cluster --------------------------------------------------------------------------------------


def crds() -> list[Manifest]:
    """Application, ApplicationSet and AppProject, from the module's manifests/crds."""
    return addons.module_documents(ARGOCD_MODULE, ARGOCD_VERSION, "manifests/crds", **ARGOCD_GO)


def configuration() -> list[Manifest]:
    """argocd-cm, argocd-cmd-params-cm, argocd-rbac-cm, argocd-secret and the others of manifests/base/config, as an
    install applies them, into NAMESPACE."""
    kinds = frozenset({"ConfigMap", "Secret"})
    found = addons.module_documents(ARGOCD_MODULE, ARGOCD_VERSION, "manifests/base/config", kinds, **ARGOCD_GO)
    return [{**document, "metadata": {**document["metadata"], "namespace": NAMESPACE}} for document in found]


def default_project() -> Manifest:
    """The project every Argo CD has (its API server makes it at start; a headless one has none until made)."""
    everything = [{"group": "*", "kind": "*"}]
    return {
        "apiVersion": API,
        "kind": "AppProject",
        "metadata": addons.meta("default", NAMESPACE),
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "clusterResourceWhitelist": everything},
    }  # fmt: skip


def readme_health_command() -> str:
    """The README's command that installs argocd/health/ into argocd-cm (the first sh block of "With Argo CD")."""
    section = (ROOT / "README.md").read_text().split("### With Argo CD", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match and "argocd-cm" in match[1], "the README's Argo CD section has no command for argocd-cm"
    return match[1]


def install_health_scripts(cluster: Cluster) -> None:
    """The README's command run as a user runs it: from the checkout, kubectl on the PATH, the cluster's kubeconfig."""
    path = f"{ensure(('kubectl',))}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_health_command()], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, f"the README's argocd-cm command failed: {result.stderr}"


def install(cluster: Cluster, admin: httpx.Client) -> None:
    """CRDs, namespace, configuration, the default project and the project's health scripts."""
    addons.apply_all(admin, crds())
    addons.apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": addons.meta(NAMESPACE)})
    for manifest in [*configuration(), default_project()]:
        addons.apply(admin, manifest)
    install_health_scripts(cluster)


# Running --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArgoCD:
    """A running Argo CD, read and steered through its Applications (what `argocd app get` shows comes from them)."""

    admin: httpx.Client
    logs: Path

    def path(self, name: str) -> str:
        return f"/apis/{API}/namespaces/{NAMESPACE}/applications/{name}"

    def application(self, name: str) -> Manifest:
        response = self.admin.get(self.path(name))
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self, name: str) -> None:
        """What a git server's webhook or `argocd app get --refresh` asks: compare with git now."""
        assert self.merge_patch(name, {"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}}) == 200

    def merge_patch(self, name: str, patch: Manifest) -> int:
        """The Application patched, or already gone (404): the status code."""
        response = self.admin.patch(self.path(name), content=json.dumps(patch),
                                    headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert response.status_code in (200, 404), response.text
        return response.status_code

    def exists(self, name: str) -> bool:
        return self.admin.get(self.path(name)).status_code == 200

    def delete(self, name: str, timeout: float = addons.WAIT_S) -> None:
        """The Application deleted and waited for until gone (with CASCADE_FINALIZER, what it made goes first). Its
        automated sync is turned off first, as before any deletion of an Application: else it may sync again while
        the deletion runs, applying anew what was just deleted (seen with the chart's CRDs, slow to go)."""
        assert self.merge_patch(name, {"spec": {"syncPolicy": {"automated": None}}}) in (200, 404)
        response = self.admin.delete(self.path(name))
        assert response.status_code in (200, 202, 404), response.text
        wait(lambda: self.admin.get(self.path(name)).status_code == 404, f"Application {name} gone", timeout)


def app_health(status: Manifest | None) -> tuple[str, str]:
    """An Application's health and sync status from its status ("" where Argo CD has not assessed them)."""
    status = status or {}
    return (status.get("health") or {}).get("status", ""), (status.get("sync") or {}).get("status", "")


def resource_health(status: Manifest | None, kind: str, name: str) -> tuple[str, str] | None:
    """A resource's health and its message as Argo CD assessed it (our Lua for our kinds), from an Application's
    status.resources (the controller keeps them there: --persist-resource-health); None while it lists no such
    resource."""
    for item in (status or {}).get("resources") or []:
        if item["kind"] == kind and item["name"] == name:
            health = item.get("health") or {}
            return health.get("status", ""), health.get("message", "")
    return None


def redis_answers(port: int) -> bool:
    return run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"], check=False).strip() == "PONG"


def serves(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def start(stack: ExitStack, log: Path, command: list[str], env: Mapping[str, str], ready: Callable[[], bool]) -> None:
    """`command` running in its own process group (stopped when `stack` closes), once `ready()`; its output in `log`."""
    started = stack.enter_context(process(command, log, dict(env)))
    wait_until(ready, log.stem, started, log, START_S)


@contextmanager
def running_argocd(cluster: Cluster, admin: httpx.Client, workdir: Path) -> Iterator[ArgoCD]:
    """Argo CD installed into the cluster and its processes running (Redis, the repo server, the application
    controller), their logs in `workdir`; stopped on exit (what they made in the cluster stays)."""
    install_debian_packages(DEBIAN_PACKAGES)
    argocd, helm = argocd_binary(), helm_binary()
    install(cluster, admin)
    for folder in ("tmp", "home", "tls", "ssh", "gpg", "plugins"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    redis, repo_server, repo_metrics, metrics = free_port(), free_port(), free_port(), free_port()
    environment = {
        **os.environ,
        "ARGOCD_FAKE_IN_CLUSTER": "true",  # the in-cluster destination is the kubeconfig's cluster
        "KUBECONFIG": str(cluster.kubeconfig),
        "HOME": str(workdir / "home"),
        "TMPDIR": str(workdir / "tmp"),  # the repo server's clones and Helm's scratch folders
        "PATH": os.pathsep.join([str(helm.parent), str(install_scripts(workdir / "bin")), os.environ.get("PATH", "")]),
        "ARGOCD_ASK_PASS_SOCK": str(workdir / "askpass.sock"),
        "ARGOCD_TLS_DATA_PATH": str(workdir / "tls"),
        "ARGOCD_SSH_DATA_PATH": str(workdir / "ssh"),
        "ARGOCD_GNUPGHOME": str(workdir / "gpg"),
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_PLUGINSOCKFILEPATH": str(workdir / "plugins"),
    }
    common = ["--loglevel", "info", "--logformat", "text", "--redis", f"127.0.0.1:{redis}"]
    repo_command = [str(argocd), *common, "--address", "127.0.0.1", "--port", str(repo_server),
                    "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics), "--disable-tls",
                    "--client-ca-path="]  # fmt: skip  # no mTLS: its default path is the pod's mounted Secret
    controller_command = [
        str(argocd), *common, f"--kubeconfig={cluster.kubeconfig}", f"--namespace={NAMESPACE}",
        f"--repo-server=127.0.0.1:{repo_server}", "--repo-server-plaintext", f"--metrics-port={metrics}",
        f"--app-resync={RESYNC_S}", "--persist-resource-health",  # resource health in the Application's status
        "--status-processors=4", "--operation-processors=2",  # a small cluster on two cores
    ]  # fmt: skip
    redis_command = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis), "--save", "", "--appendonly", "no",
                     "--dir", str(workdir)]  # fmt: skip
    with ExitStack() as stack:
        start(stack, workdir / "redis.log", redis_command, os.environ, lambda: redis_answers(redis))
        start(stack, workdir / "repo-server.log", repo_command, {**environment, "ARGOCD_BINARY_NAME": REPO_SERVER},
              lambda: serves(f"http://127.0.0.1:{repo_metrics}/healthz?full=true"))  # fmt: skip  # gRPC too
        start(stack, workdir / "controller.log", controller_command, {**environment, "ARGOCD_BINARY_NAME": CONTROLLER},
              lambda: serves(f"http://127.0.0.1:{metrics}/healthz"))  # fmt: skip
        yield ArgoCD(admin, workdir)


# Git ------------------------------------------------------------------------------------------------------------------


class GitRepository:
    """A bare repository (what Argo CD reads, by its file:// URL) and a work tree that commits and pushes to it."""

    def __init__(self, folder: Path) -> None:
        self.bare, self.work = folder / "repository.git", folder / "work"
        for repository, bare in ((self.bare, ["--bare"]), (self.work, [])):
            run(["git", "init", "--quiet", *bare, "--initial-branch=main", str(repository)])
        self.git("remote", "add", "origin", str(self.bare))

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def git(self, *arguments: str) -> str:
        identity = ["-c", "user.name=TAMS e2e", "-c", "user.email=e2e@tams-operator.invalid"]
        return run(["git", "-C", str(self.work), *identity, *arguments])

    def commit(self, message: str, changes: Mapping[str, str | None]) -> str:
        """Files written (text) or removed (None), committed and pushed to main; the commit's id."""
        for name, text in changes.items():
            target = self.work / name
            if text is None:
                self.git("rm", "--quiet", "-r", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", name)
        self.git("commit", "--quiet", "-m", message)
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()

    def add_tree(self, source: Path, name: str) -> dict[str, str]:
        """The changes that put the files of the folder `source` under `name` (for `commit`)."""
        return {f"{name}/{path.relative_to(source)}": path.read_text() for path in sorted(source.rglob("*"))
                if path.is_file()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help=f"make or reuse Argo CD {ARGOCD_VERSION} and Helm {HELM_VERSION}")
    parser.parse_args(argv)
    for path, seconds in build():
        print(f"{path}  {seconds:7.1f} s")


if __name__ == "__main__":
    main()
