"""The pod network of the e2e cluster on podman, where kind's own (kindnetd) is not served: flannel's daemon in
host-gw mode, as a DaemonSet on every node.

flanneld takes each node's pod subnet from its Node object (`--kube-subnet-mgr`), routes the other nodes' subnets
through their addresses, masquerades what leaves the cluster, and writes the node's subnet to
/run/flannel/subnet.env. flannel's CNI plugin is not served either, so a second container does its one job: once
that file exists, it writes the node's CNI config (Debian's ptp and host-local plugins on that subnet: every
packet of a pod is routed by the node, so kube-proxy's rules see it, even between two pods of one node), and the
kubelet starts pods there.
"""

from __future__ import annotations

import json
from typing import Any

Manifest = dict[str, Any]
NAMESPACE = "kube-flannel"
NAME = "flannel"
POD_SUBNET = "10.244.0.0/16"  # kind's default, which the controller-manager splits into one /24 per node
LABELS = {"app.kubernetes.io/name": NAME}
NETWORK = {"Network": POD_SUBNET, "Backend": {"Type": "host-gw"}}
# This node's CNI config, on the subnet flanneld leased it; flanneld masquerades what leaves the cluster.
WRITE_CNI_CONFIG = """\
set -eu
until [ -s /run/flannel/subnet.env ]; do sleep 1; done
. /run/flannel/subnet.env
# flanneld names the node's first address (10.244.1.1/24); host-local wants the network (kind's nodes get /24s).
subnet="${FLANNEL_SUBNET%.*}.0/${FLANNEL_SUBNET#*/}"
cat > /etc/cni/net.d/10-flannel.conflist.partial <<EOF
{"cniVersion": "0.4.0", "name": "flannel", "plugins": [
  {"type": "ptp", "mtu": $FLANNEL_MTU, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
mv /etc/cni/net.d/10-flannel.conflist.partial /etc/cni/net.d/10-flannel.conflist
exec sleep infinity
"""


def manifests(image: str) -> list[Manifest]:
    """flannel's namespace, identity and role, its network config and the DaemonSet, running `image`."""
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}
    host_path = {"run": "/run/flannel", "cni": "/etc/cni/net.d", "xtables-lock": "/run/xtables.lock"}
    volumes = [{"name": name, "hostPath": {"path": where}} for name, where in host_path.items()]
    volumes[-1]["hostPath"]["type"] = "FileOrCreate"
    volumes.append({"name": "config", "configMap": {"name": NAME}})
    pod_env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    flanneld = {
        "name": "flanneld",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/usr/local/bin/flannel", "--ip-masq", "--kube-subnet-mgr"],
        "env": pod_env,
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
        "volumeMounts": [
            {"name": "run", "mountPath": "/run/flannel"},
            {"name": "config", "mountPath": "/etc/kube-flannel/"},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
        ],
    }
    cni_config = {
        "name": "cni-config",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", WRITE_CNI_CONFIG],
        "volumeMounts": [
            {"name": "run", "mountPath": "/run/flannel", "readOnly": True},
            {"name": "cni", "mountPath": "/etc/cni/net.d"},
        ],
    }
    pod = {
        "serviceAccountName": NAME,
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],  # every node, the control plane's too
        "containers": [flanneld, cni_config],
        "volumes": volumes,
    }
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"net-conf.json": json.dumps(NETWORK)}},
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": LABELS},
                "template": {"metadata": {"labels": LABELS}, "spec": pod},
            },
        },
    ]
