"""Build, once, the Kubernetes binaries the operator's tests run (DESIGN.md §5), and print where they are.

No registry ships kube-apiserver or kube-controller-manager, so they are built from the Go module
`k8s.io/kubernetes` through a wrapper module (its own go.mod points the staging modules at `./staging`,
which `go install` cannot follow). Binaries are cached by version outside the checkout, in
`$TAMS_OPERATOR_CACHE/kubernetes/<version>/bin` (default `~/.cache/tams-operator`), so fresh clones on the
same machine reuse them; a missing binary is rebuilt, never an error. Go is used only here.

    python scripts/k8s_binaries.py                     # kube-apiserver, kube-controller-manager, kubectl
    python scripts/k8s_binaries.py kubelet kube-proxy  # others, for the e2e cluster (kubeadm: kind's node image)
    python scripts/k8s_binaries.py coredns             # the cluster DNS of the e2e cluster, also from Go sources
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = os.environ.get("TAMS_KUBERNETES_VERSION", "v1.34.4")
DEFAULT_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kubectl")
KUBERNETES_COMPONENTS = (*DEFAULT_COMPONENTS, "kube-scheduler", "kubelet", "kube-proxy", "kubeadm")
# CoreDNS is released on its own; the pin goes into its cached file's name, so a new pin is a cache miss.
COREDNS_VERSION = "v1.12.4"
KNOWN_COMPONENTS = (*KUBERNETES_COMPONENTS, "coredns")


def cache_root() -> Path:
    return Path(os.environ.get("TAMS_OPERATOR_CACHE", Path.home() / ".cache" / "tams-operator"))


def bin_dir(version: str = VERSION) -> Path:
    return cache_root() / "kubernetes" / version / "bin"


def go_binary() -> str | None:
    """Go on PATH, or where the official tarball installs it (not always on PATH in CI's shell)."""
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def go(*args: str, cwd: Path, **env: str) -> str:
    environment = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", **env}
    result = subprocess.run([go_binary() or "go", *args], cwd=cwd, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def staging_modules(version: str, workdir: Path) -> list[str]:
    """The modules k8s.io/kubernetes's own go.mod replaces with ./staging/src/... directories."""
    info = json.loads(go("mod", "download", "-json", f"k8s.io/kubernetes@{version}", cwd=workdir))
    go_mod = Path(info["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", go_mod, flags=re.MULTILINE)))


def tools_file() -> str:
    """The wrapper module's imports: every component it builds, so that `go mod tidy` requires their modules."""
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{component}"' for component in KUBERNETES_COMPONENTS)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def prepared(source: Path) -> bool:
    """Whether the wrapper module is tidy for today's components (a component added since re-prepares it)."""
    tools = source / "tools.go"
    return (source / "go.sum").exists() and tools.exists() and tools.read_text() == tools_file()


def prepare_module(version: str, source: Path) -> None:
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text("module tams-operator/kubernetes-test-binaries\n\ngo 1.24\n")
    staging_version = "v0." + version.removeprefix("v1.")
    replaces = "\n".join(f"\t{module} => {module} {staging_version}" for module in staging_modules(version, source))
    (source / "go.mod").write_text(
        "module tams-operator/kubernetes-test-binaries\n\ngo 1.24\n\n"
        f"require k8s.io/kubernetes {version}\n\nreplace (\n{replaces}\n)\n"
    )
    (source / "tools.go").write_text(tools_file())
    go("mod", "tidy", cwd=source)


def build(component: str, version: str, source: Path, target: Path) -> None:
    major, minor = version.removeprefix("v").split(".")[:2]
    stamps = [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor))
    ]
    partial = target.with_name(f".{target.name}.partial")
    go("build", "-ldflags", " ".join(["-s", "-w", *stamps]), "-o", str(partial), f"k8s.io/kubernetes/cmd/{component}",
       cwd=source)  # fmt: skip
    partial.replace(target)  # only a complete binary counts as cached


def build_coredns(target: Path) -> None:
    """`go install` of CoreDNS's own module (no staging replaces there), into a scratch GOBIN first."""
    scratch = target.with_name(f".{target.name}.partial")
    scratch.mkdir(exist_ok=True)
    go("install", f"github.com/coredns/coredns@{COREDNS_VERSION}", cwd=scratch, GOBIN=str(scratch), GOFLAGS="")
    (scratch / "coredns").replace(target)
    scratch.rmdir()


def cached_name(component: str) -> str:
    return f"coredns-{COREDNS_VERSION}" if component == "coredns" else component


def ensure(components: tuple[str, ...], version: str = VERSION) -> Path:
    """The directory holding the components, building those missing."""
    binaries = bin_dir(version)
    missing = [component for component in components if not (binaries / cached_name(component)).exists()]
    if missing:
        if go_binary() is None:
            raise SystemExit("building the Kubernetes test binaries needs Go (https://go.dev/dl/) on PATH")
        binaries.mkdir(parents=True, exist_ok=True)
        source = binaries.parent / "src"
        if set(missing) - {"coredns"} and not prepared(source):
            print(f"k8s_binaries: preparing k8s.io/kubernetes {version} in {source}", file=sys.stderr)
            prepare_module(version, source)
        for component in missing:
            print(f"k8s_binaries: building {component} (minutes, once)", file=sys.stderr)
            if component == "coredns":
                build_coredns(binaries / cached_name(component))
            else:
                build(component, version, source, binaries / component)
    if "coredns" in components:  # the stable name users run, pointing at the pinned build
        link = binaries / "coredns"
        link.unlink(missing_ok=True)
        link.symlink_to(cached_name("coredns"))
    return binaries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", help=f"any of {', '.join(KNOWN_COMPONENTS)}")
    args = parser.parse_args(argv)
    unknown = set(args.components) - set(KNOWN_COMPONENTS)
    if unknown:
        parser.error(f"unknown components {sorted(unknown)}: choose from {', '.join(KNOWN_COMPONENTS)}")
    print(ensure(tuple(args.components or DEFAULT_COMPONENTS)))


if __name__ == "__main__":
    main()
