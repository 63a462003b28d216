"""kind's node image, assembled on this machine the way `kind build node-image` makes it, without Docker or a
registry (../shared/kind-on-podman.md): kind's build calls `docker` and pulls the images kubeadm needs.

- kind itself: `go install sigs.k8s.io/kind@KIND_VERSION`, its own files (entrypoint, containerd config, systemd
  units) from the same module's source;
- the node's root: mmdebstrap of Debian with kind's package list, Debian's containerd, runc and CNI plugins;
- kubelet, kubeadm, kubectl and the control-plane binaries from scripts/k8s_binaries.py; etcd from its module;
  CoreDNS as scripts/k8s_binaries.py builds it; the pause program (pause.c) compiled here;
- the images kubeadm asks for, made with podman under the names it expects, and flannel's (the pod network across
  nodes, pod_network.py), imported into the node's containerd.
Everything is cached by version under $TAMS_OPERATOR_CACHE (binaries) and in podman (images, by an inputs label).

    python e2e/cluster/node_image.py        # builds what is missing; prints the node image's name
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import images  # first: it puts scripts/ (the Kubernetes binaries' cache and builder) on the path
from host import install_debian_packages, run
from k8s_binaries import VERSION, cache_root, ensure, go

KIND_VERSION = "v0.33.0"
ETCD_VERSION = "v3.6.5"
LOCAL_PATH_MODULE = "github.com/rancher/local-path-provisioner"  # what kind ships as its default storage
LOCAL_PATH_VERSION = "v0.0.30"
FLANNEL_MODULE = "github.com/flannel-io/flannel"  # the pod network (kind's kindnetd is not served): pod_network.py
FLANNEL_VERSION = "v0.28.10"
FLANNEL_IMAGE = f"localhost/flannel:{FLANNEL_VERSION}"
FLANNEL_REPLACES = tuple(
    (f"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/{package}", version)
    for package, version in (("common", "v1.1.15"), ("vpc", "v1.1.14"))
)
# What kubeadm v1.34 asks for (`kubeadm config images list`), and the pause kind's containerd config pins.
ETCD_TAG = "3.6.5-0"
COREDNS_TAG = "v1.12.1"
PAUSE_TAGS = ("3.10.1", "3.10")
REGISTRY = "registry.k8s.io"
NODE_IMAGE = f"localhost/kind-node:{VERSION}"
NODE_BASE_IMAGE = "localhost/kind-node-base:bookworm"
# kind's images/base/Dockerfile list, less what only rootless or storage plugins need, plus Debian's runtime.
NODE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux",
    "mount", "kmod", "libseccomp2", "pigz", "fuse-overlayfs", "bash", "ca-certificates", "curl", "jq", "procps",
    "e2fsprogs", "containerd", "runc", "containernetworking-plugins",
)  # fmt: skip
ETCD_MAIN = """package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""
PAUSE_CFLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror")
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def installed(module: str, version: str) -> Path:
    """The command of a Go module's main package, `go install`ed once per version into the cache."""
    name = module.rsplit("/", 1)[1]
    target = cache_root() / name / version
    if not (target / name).exists():
        target.mkdir(parents=True, exist_ok=True)
        go("install", f"{module}@{version}", cwd=target, GOBIN=str(target))
    return target / name


def kind_binary() -> Path:
    return installed("sigs.k8s.io/kind", KIND_VERSION)


def kind_source() -> Path:
    """kind's module source: the node image's files are in its images/base/files."""
    with tempfile.TemporaryDirectory() as scratch:
        return Path(
            json.loads(go("mod", "download", "-json", f"sigs.k8s.io/kind@{KIND_VERSION}", cwd=Path(scratch)))["Dir"]
        )


def storage_manifest() -> tuple[str, list[str]]:
    """kind's default storage (its source's manifest, a Go constant) and the two images it names: the provisioner
    and the helper pod that makes and removes volume directories."""
    source = (kind_source() / "pkg" / "build" / "nodeimage" / "const_storage.go").read_text()
    names = dict(re.findall(r'^const (storage\w+Image) = "([^"]+)"', source, flags=re.MULTILINE))
    body = re.search(r"^const defaultStorageManifest = `(.*?)^`$", source, flags=re.MULTILINE | re.DOTALL)
    assert body and set(names) == {"storageProvisionerImage", "storageHelperImage"}, "kind's storage source changed"
    manifest = re.sub(r"` \+ (storage\w+Image) \+ `", lambda match: names[match.group(1)], body.group(1))
    return manifest, [names["storageProvisionerImage"], names["storageHelperImage"]]


def wrapped(
    name: str, version: str, requirements: str, files: dict[str, str], package: str, *flags: str, **env: str
) -> Path:
    """`package` built from a small module of ours (its go.mod's `requirements`, its `files`), once per version
    into the cache: for commands whose modules cannot be `go install`ed as they are. `env` is Go's for both the
    tidy and the build (GOTOOLCHAIN for a module that needs a newer Go than this machine's)."""
    target = cache_root() / name / version / name
    if not target.exists():
        source = target.parent / "src"
        source.mkdir(parents=True, exist_ok=True)
        (source / "go.mod").write_text(f"module tams-operator/{name}\n\ngo 1.24\n\n{requirements}")
        for file, text in files.items():
            (source / file).write_text(text)
        go("mod", "tidy", cwd=source, **env)
        partial = target.with_name(f".{name}.partial")
        go("build", *flags, "-o", str(partial), package, cwd=source, **env)
        partial.replace(target)
    return target


def etcd_binary() -> Path:
    """etcd at the version kubeadm checks, from its server module through a five-line main."""
    requirements = f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    return wrapped("etcd", ETCD_VERSION, requirements, {"main.go": ETCD_MAIN}, ".", "-ldflags=-s -w")


def flannel_binary() -> Path:
    """flanneld: its main package imports every backend, one of which needs a cloud SDK version the Go proxy does
    not serve (an older one it does serve builds), and the UDP backend needs cgo (linked static)."""
    requirements = f"require github.com/flannel-io/flannel {FLANNEL_VERSION}\n\nreplace (\n"
    requirements += "".join(f"\t{module} => {module} {version}\n" for module, version in FLANNEL_REPLACES) + ")\n"
    tools = f'//go:build tools\n\npackage tools\n\nimport _ "{FLANNEL_MODULE}"\n'
    return wrapped("flannel", FLANNEL_VERSION, requirements, {"tools.go": tools}, FLANNEL_MODULE,
                   "-tags=netgo,osusergo", "-ldflags=-s -w -extldflags=-static", CGO_ENABLED="1")  # fmt: skip


# Images kubeadm runs --------------------------------------------------------------------------------------------------


def static_image(name: str, binary: Path, command: str, base: str = "scratch", run: tuple[str, ...] = ()) -> None:
    """`name`: `binary` as /usr/local/bin/`command`, its entrypoint, on `base` (then `run` in it, if given); rebuilt
    when any of them changes."""
    inputs = images.digest(binary.read_bytes(), base, images.image_id(base) if base != "scratch" else "", command, *run)
    if images.inputs_of(name) == inputs:
        return
    with tempfile.TemporaryDirectory() as context:
        shutil.copy2(binary, Path(context) / command)
        (Path(context) / "Containerfile").write_text(
            f"FROM {base}\nCOPY {command} /usr/local/bin/{command}\n"
            + (f"RUN {json.dumps(list(run))}\n" if run else "")
            + f'ENTRYPOINT ["/usr/local/bin/{command}"]\n'
        )
        images.podman("build", *images.build_flags(), "--label", f"{images.INPUTS_LABEL}={inputs}",
                      "--tag", name, context)  # fmt: skip


def pause_binary(scratch: Path) -> Path:
    binary = scratch / "pause"
    run(["gcc", *PAUSE_CFLAGS, "-o", str(binary), str(images.HERE / "pause.c")])
    return binary


def preloaded_images(binaries: Path) -> list[str]:
    """The images `kubeadm init`, kind's containerd config and its default storage ask for, made here under those
    names, and flannel's."""
    made = []
    for component in CONTROL_PLANE:
        name = f"{REGISTRY}/{component}:{VERSION}"
        static_image(name, binaries / component, component)
        made.append(name)
    name = f"{REGISTRY}/kube-proxy:{VERSION}"  # iptables and conntrack from the node's own packages
    static_image(name, binaries / "kube-proxy", "kube-proxy", base=NODE_BASE_IMAGE)
    made.append(name)
    name = f"{REGISTRY}/etcd:{ETCD_TAG}"
    static_image(name, etcd_binary(), "etcd")
    made.append(name)
    name = f"{REGISTRY}/coredns/coredns:{COREDNS_TAG}"  # kubeadm's tag; the CoreDNS e2e/cluster builds serves it
    static_image(name, binaries / "coredns", "coredns")
    made.append(name)
    provisioner, helper = storage_manifest()[1]
    static_image(provisioner, installed(LOCAL_PATH_MODULE, LOCAL_PATH_VERSION), "local-path-provisioner")
    # The helper runs kind's `sh` scripts (mkdir, rm): Debian's static busybox, its applets installed as links.
    install = "/usr/local/bin/busybox mkdir -p /bin && /usr/local/bin/busybox --install -s /bin"
    static_image(helper, Path("/bin/busybox"), "busybox", run=("/usr/local/bin/busybox", "sh", "-c", install))
    made += [provisioner, helper]
    static_image(FLANNEL_IMAGE, flannel_binary(), "flannel", base=NODE_BASE_IMAGE)  # iptables and sh from the node's
    made.append(FLANNEL_IMAGE)
    with tempfile.TemporaryDirectory() as scratch:
        pause = pause_binary(Path(scratch))
        for tag in PAUSE_TAGS:
            name = f"{REGISTRY}/pause:{tag}"
            static_image(name, pause, "pause")
            made.append(name)
    return made


# The node -----------------------------------------------------------------------------------------------------------


def node_base() -> None:
    """Debian with kind's packages and kind's own files, as kind's base image is made."""
    source = kind_source() / "images" / "base" / "files"
    files = sorted(path for path in source.rglob("*") if path.is_file())
    inputs = images.digest(images.SUITE, *NODE_PACKAGES, *(path.read_bytes() for path in files))
    if images.inputs_of(NODE_BASE_IMAGE) == inputs:
        return
    tarball = images.images_cache() / f"kind-node-{images.SUITE}-{images.digest(*NODE_PACKAGES)}.tar"
    if not tarball.exists():
        partial = tarball.with_name(f".partial-{tarball.name}")
        run(["mmdebstrap", "--variant=minbase", f"--include={','.join(NODE_PACKAGES)}",
             *(f"--dpkgopt={option}" for option in images.BASE_DPKG_OPTIONS), images.SUITE, str(partial)])  # fmt: skip
        partial.replace(tarball)
    with tempfile.TemporaryDirectory() as context:
        shutil.copytree(source, Path(context) / "files")
        (Path(context) / "Containerfile").write_text(NODE_BASE_CONTAINERFILE)
        stage = "localhost/kind-node-root:bookworm"
        images.podman("import", str(tarball), stage)
        images.podman("build", *images.build_flags(), "--build-arg", f"ROOT={stage}",
                      "--label", f"{images.INPUTS_LABEL}={inputs}", "--tag", NODE_BASE_IMAGE, context)  # fmt: skip


# kind's base Dockerfile's steps over Debian's packages: its files, the units it enables and prunes, the paths it
# expects its own builds of containerd, runc and the CNI plugins at, and containerd's base runtime spec.
NODE_BASE_CONTAINERFILE = """\
ARG ROOT
FROM $ROOT
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
RUN chmod 755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo ReadKMsg=no >> /etc/systemd/journald.conf \\
 && ln -sf /usr/lib/systemd/systemd /sbin/init \\
 && for tool in containerd ctr containerd-shim-runc-v2; do ln -sf /usr/bin/$tool /usr/local/bin/$tool; done \\
 && ln -sf /usr/sbin/runc /usr/local/sbin/runc \\
 && mkdir -p /opt/cni/bin && for plugin in /usr/lib/cni/*; do ln -sf $plugin /opt/cni/bin/; done \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + \\
      {"path": "/kind/bin/mount-product-files.sh"}' | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests
ENV container=docker
STOPSIGNAL SIGRTMIN+3
"""


NODE_CONTAINERFILE = """\
ARG BASE
FROM $BASE
COPY kubelet kubeadm kubectl /usr/bin/
COPY version /kind/version
COPY default-storage.yaml /kind/manifests/default-storage.yaml
"""


def node(binaries: Path, preloaded: list[str]) -> str:
    """The node image: the base, the Kubernetes node binaries, and kubeadm's images in its containerd."""
    parts = [images.image_id(NODE_BASE_IMAGE), *(images.image_id(image) for image in preloaded)]
    parts += [(binaries / tool).read_bytes() for tool in ("kubelet", "kubeadm", "kubectl")]
    manifest = storage_manifest()[0]
    inputs = images.digest(*parts, manifest)
    if images.inputs_of(NODE_IMAGE) == inputs:
        return NODE_IMAGE
    stage = "localhost/kind-node-stage:latest"
    with tempfile.TemporaryDirectory() as context:
        for tool in ("kubelet", "kubeadm", "kubectl"):
            shutil.copy2(binaries / tool, Path(context) / tool)
        (Path(context) / "version").write_text(f"{VERSION}\n")
        (Path(context) / "default-storage.yaml").write_text(manifest)
        (Path(context) / "Containerfile").write_text(NODE_CONTAINERFILE)
        images.podman("build", *images.build_flags(), "--build-arg", f"BASE={NODE_BASE_IMAGE}", "--tag", stage, context)
        archive = Path(context) / "images.tar"
        images.podman(
            "save", "--format", "docker-archive", "--multi-image-archive", "--output", str(archive), *preloaded
        )
        container = images.podman("run", "--detach", "--privileged", "--entrypoint", "sleep", stage, "infinity").strip()
        try:
            # containerd inside, only long enough to import the images (pinned: the kubelet never collects them).
            images.podman("exec", "--detach", container, "containerd")
            images.podman(
                "exec",
                container,
                "sh",
                "-c",
                "for i in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1",
            )
            images.podman("cp", str(archive), f"{container}:/images.tar")
            images.podman("exec", container, "sh", "-c",
                          "ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms "
                          "--no-unpack --digests /images.tar && rm /images.tar && pkill containerd")  # fmt: skip
            images.podman("exec", container, "sh", "-c", "while pgrep -x containerd >/dev/null; do sleep 0.2; done")
            images.podman("commit", "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                          "--change", "CMD []", "--change", f"LABEL {images.INPUTS_LABEL}={inputs}",
                          container, NODE_IMAGE)  # fmt: skip
        finally:
            images.podman("rm", "--force", container)
            images.podman("rmi", "--force", stage)
    return NODE_IMAGE


def build() -> str:
    """The node image, made or reused; kind built too."""
    install_debian_packages((*images.DEBIAN_PACKAGES, "gcc", "libc6-dev", "busybox-static"))
    kind_binary()
    binaries = ensure(("kubelet", "kubeadm", "kubectl", *CONTROL_PLANE, "kube-proxy", "coredns"))
    node_base()
    return node(binaries, preloaded_images(binaries))


if __name__ == "__main__":
    print(build())
