"""The Helm chart (charts/tams-operator): rendered and linted offline by Helm's own Go SDK (helm-python-sdk),
every manifest valid for Kubernetes 1.34, its CRDs and RBAC the project's own without drift, and installed into
the real test control plane, where its service account can do what the operator needs and no more."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import kopf
import kubernetes_validate
import pytest
import yaml
from helm_python.chart import Chart, lint
from helm_python.errors import HelmValuesError
from tams_operator.__main__ import main as operator_cli
from tams_operator.config import OperatorSettings

from control_plane import ControlPlane
from operator_harness import ROOT, apply, create, documents, established, path, wait

Manifest = dict[str, Any]
CHART = ROOT / "charts" / "tams-operator"
KUBERNETES_VERSION = "1.34"
SETTING_PREFIX = "TAMS_OPERATOR_"

# Every value a user is likely to change, changed.
CUSTOM_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example/media/tams-operator", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-keys"}],
    "serviceAccount": {"annotations": {"example.com/role": "tams"}},
    "operator": {
        "watchNamespaces": ["news", "sport"],
        "settings": {
            "resyncInterval": 30,
            "retryInitial": 0.5,
            "apiUrlTemplate": "http://{service}.{namespace}:{port}",
        },
    },
    "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"cpu": 1, "memory": "400Mi"}},
    "podAnnotations": {"example.com/team": "media"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "priorityClassName": "system-cluster-critical",
    "metrics": {"port": 9102, "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
}
CUSTOM_RELEASE = {"name": "media", "namespace": "media-operators"}
DEFAULT_RELEASE = {"name": "tams-operator", "namespace": "tams-system"}


def render(values: dict[str, Any] | None = None, *, name: str, namespace: str) -> list[Manifest]:
    with Chart.load(CHART) as chart:
        rendered = chart.render(values, name=name, namespace=namespace)
    return [
        manifest
        for template, text in sorted(rendered.items())
        if template.endswith(".yaml")
        for manifest in yaml.safe_load_all(text)
        if manifest
    ]


def chart_crds() -> list[Manifest]:
    with Chart.load(CHART) as chart:
        return [yaml.safe_load(crd["data"]) for crd in chart.crds]


def only(manifests: list[Manifest], kind: str) -> Manifest:
    [manifest] = [manifest for manifest in manifests if manifest["kind"] == kind]
    return manifest


def operator_container(manifests: list[Manifest]) -> Manifest:
    [container] = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def env(container: Manifest) -> dict[str, str]:
    """Values, and for those the kubelet fills in, the pod field they come from."""
    return {
        variable["name"]: variable.get("value", variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"))
        for variable in container["env"]
    }


def chart_metadata() -> Manifest:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


@pytest.fixture(scope="module")
def default_manifests() -> list[Manifest]:
    return render(**DEFAULT_RELEASE)


@pytest.fixture(scope="module")
def custom_manifests() -> list[Manifest]:
    return render(CUSTOM_VALUES, **CUSTOM_RELEASE)


def test_the_default_release_is_two_peered_operators_with_their_role(default_manifests: list[Manifest]) -> None:
    assert sorted(manifest["kind"] for manifest in default_manifests) == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
    ]
    deployment = only(default_manifests, "Deployment")
    assert deployment["metadata"]["namespace"] == "tams-system"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    peering = only(default_manifests, "ClusterKopfPeering")["metadata"]["name"]
    assert env(operator_container(default_manifests))[f"{SETTING_PREFIX}PEERING"] == peering
    assert env(operator_container(default_manifests))["POD_ID"] == "metadata.name", "Kopf's name of the replica"


def test_a_single_operator_does_not_peer(default_manifests: list[Manifest]) -> None:
    single = render({"replicas": 1}, **DEFAULT_RELEASE)
    assert "ClusterKopfPeering" not in {manifest["kind"] for manifest in single}
    deployment = only(single, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "never two at work"
    assert env(operator_container(single))[f"{SETTING_PREFIX}PEERING"] == ""
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(default_manifests, "ServiceAccount")["metadata"]["name"]
    container = operator_container(default_manifests)
    assert container["command"] == ["tams-operator"]
    image = f"tams-operator:{chart_metadata()['appVersion']}"
    assert container["image"] == image
    assert env(container)[f"{SETTING_PREFIX}DEFAULT_IMAGE"] == image, "stores without an image run this release"
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}


def test_the_operator_runs_non_root_on_a_read_only_root(default_manifests: list[Manifest]) -> None:
    pod = only(default_manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's user"
    container = operator_container(default_manifests)
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    [tmp] = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert {"name": tmp["name"], "emptyDir": {}} in pod["volumes"]


def test_the_default_settings_are_the_operators_own(default_manifests: list[Manifest]) -> None:
    variables = {
        name: value
        for name, value in env(operator_container(default_manifests)).items()
        if name.startswith(SETTING_PREFIX)
    }
    known = {f"{SETTING_PREFIX}{name.upper()}" for name in OperatorSettings.model_fields}
    # Left to the operator: the metrics address (its default, all interfaces, lets Prometheus reach the pod), and
    # the kubeconfig context, which only an operator run out of the cluster has (in it, the service account logs in).
    left_to_the_operator = {f"{SETTING_PREFIX}METRICS_ADDRESS", f"{SETTING_PREFIX}KUBE_CONTEXT"}
    assert set(variables) == known - left_to_the_operator, "every other setting has a value; none is ignored"
    rendered = OperatorSettings(
        **{name.removeprefix(SETTING_PREFIX).lower(): value for name, value in variables.items()}
    )
    pod_specific = {"default_image", "namespace", "peering"}  # the release's own
    assert rendered.model_dump(exclude=pod_specific) == OperatorSettings().model_dump(exclude=pod_specific)
    assert variables[f"{SETTING_PREFIX}NAMESPACE"] == "metadata.namespace", "its own namespace, from the pod"


def test_the_operator_accepts_its_arguments_and_serves_the_probed_liveness(
    monkeypatch: pytest.MonkeyPatch, default_manifests: list[Manifest], custom_manifests: list[Manifest]
) -> None:
    def run_options(manifests: list[Manifest]) -> dict[str, Any]:
        calls: list[dict[str, Any]] = []
        monkeypatch.setattr(kopf, "run", lambda **options: calls.append(options))
        operator_cli(operator_container(manifests)["args"])
        return calls[0]

    for name, value in env(operator_container(default_manifests)).items():
        if name.startswith(SETTING_PREFIX) and value is not None and "." not in value:  # fieldRefs are the kubelet's
            monkeypatch.setenv(name, value)
    default = run_options(default_manifests)
    assert default["clusterwide"] is True
    assert (default["standalone"], default["peering_name"]) == (False, "tams-operator")
    assert (default["settings"].peering.mandatory, default["settings"].peering.lifetime) == (True, 15)
    liveness = urlsplit(default["liveness_endpoint"])
    container = operator_container(default_manifests)
    probe = container["livenessProbe"]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert (liveness.path, liveness.port) == (probe["path"], ports[probe["port"]])
    custom = run_options(custom_manifests)
    assert (custom["clusterwide"], custom["namespaces"]) == (False, ["news", "sport"])
    peerings = [manifest["metadata"] for manifest in custom_manifests if manifest["kind"] == "KopfPeering"]
    assert sorted(peering["namespace"] for peering in peerings) == ["news", "sport"], "one in each watched namespace"


def test_values_reach_the_release(custom_manifests: list[Manifest]) -> None:
    namespace = CUSTOM_RELEASE["namespace"]
    namespaced = [m for m in custom_manifests if not m["kind"].startswith("Cluster") and m["kind"] != "KopfPeering"]
    assert {m["metadata"]["namespace"] for m in namespaced} == {namespace}, "peerings go where the stores are"
    account = only(custom_manifests, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"example.com/role": "tams"}
    subject = only(custom_manifests, "ClusterRoleBinding")["subjects"][0]
    assert (subject["name"], subject["namespace"]) == (account["metadata"]["name"], namespace)
    container = operator_container(custom_manifests)
    assert container["image"] == "registry.example/media/tams-operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == CUSTOM_VALUES["resources"]
    variables = env(container)
    assert variables[f"{SETTING_PREFIX}DEFAULT_IMAGE"] == container["image"]
    assert variables[f"{SETTING_PREFIX}RESYNC_INTERVAL"] == "30"
    assert variables[f"{SETTING_PREFIX}RETRY_INITIAL"] == "0.5"
    assert variables[f"{SETTING_PREFIX}API_URL_TEMPLATE"] == "http://{service}.{namespace}:{port}"
    pod = only(custom_manifests, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/team": "media"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-keys"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"


def test_the_service_monitor_finds_the_metrics_port(custom_manifests: list[Manifest]) -> None:
    service, monitor = only(custom_manifests, "Service"), only(custom_manifests, "ServiceMonitor")
    pod_labels = only(custom_manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [CUSTOM_RELEASE["namespace"]]}
    [endpoint] = monitor["spec"]["endpoints"]
    [service_port] = service["spec"]["ports"]
    assert endpoint["port"] == service_port["name"]
    container = operator_container(custom_manifests)
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container_ports[service_port["targetPort"]] == service_port["port"] == 9102
    assert env(container)[f"{SETTING_PREFIX}METRICS_PORT"] == "9102", "where the operator serves them"


@pytest.mark.parametrize("release", ["default", "custom"])
def test_every_manifest_is_valid_for_kubernetes(
    release: str, default_manifests: list[Manifest], custom_manifests: list[Manifest]
) -> None:
    manifests = default_manifests if release == "default" else custom_manifests
    # The ServiceMonitor is Prometheus Operator's kind, the peerings Kopf's, without schemas here: their shapes are
    # tested above, and the API server checks the peerings (the installed release).
    for manifest in [*manifests, *chart_crds()]:
        if manifest["kind"] not in {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values", [None, CUSTOM_VALUES], ids=["default", "custom"])
def test_helm_lint_finds_nothing_wrong(values: dict[str, Any] | None) -> None:
    report = lint(CHART, values, strict=True, namespace="tams-system", kube_version=f"v{KUBERNETES_VERSION}.0")
    warnings = [message for message in report["messages"] if message["severity"] >= 2]  # 2 warning, 3 error
    assert (report["errors"], warnings) == ([], [])


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"imagee": {"tag": "1.0"}}, "additional properties 'imagee' not allowed"),
        ({"resources": "small"}, "at '/resources': got string, want object"),
        ({"operator": {"settings": {"resyncInterval": "soon"}}}, "at '/operator/settings/resyncInterval'"),
        ({"operator": {"settings": {"retryMax": 0}}}, "at '/operator/settings/retryMax'"),
        ({"operator": {"settings": {"defaultImage": "x"}}}, "'defaultImage' not allowed"),
        ({"operator": {"watchNamespaces": "news"}}, "at '/operator/watchNamespaces': got string, want array"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "at '/metrics/serviceMonitor/enabled'"),
    ],
)
def test_the_schema_refuses_bad_values_saying_where(values: dict[str, Any], named: str) -> None:
    with Chart.load(CHART) as chart:
        with pytest.raises(HelmValuesError) as refused:
            chart.validate_schema(values)
        assert named in str(refused.value)
        with pytest.raises(HelmValuesError):
            chart.render(values, **DEFAULT_RELEASE)


def test_the_default_values_pass_the_schema() -> None:
    with Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        chart.validate_schema(CUSTOM_VALUES)


def test_the_chart_crds_are_the_projects_crds() -> None:
    """`make chart-crds` refreshes the copies: Helm reads only files inside the chart."""
    project = {path.name: path.read_bytes() for path in (ROOT / "crds").glob("*.yaml")}
    copies = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert copies == project


def test_the_cluster_role_grants_exactly_what_the_tested_role_grants(default_manifests: list[Manifest]) -> None:
    tested = documents(ROOT / "rbac" / "operator.yaml")
    assert (CHART / "files" / "operator-rbac.yaml").read_bytes() == (ROOT / "rbac" / "operator.yaml").read_bytes()
    assert only(default_manifests, "ClusterRole")["rules"] == only(tested, "ClusterRole")["rules"]


def test_the_chart_runs_the_image_of_this_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart_metadata()["appVersion"] == project["version"]
    assert "tams-operator" in project["scripts"], "the Deployment's command"


# The chart's objects on the real control plane, under a release name of their own so that nothing here is the
# rbac/operator.yaml identity the operator's tests run under.
PROOF_RELEASE = {"name": "proof", "namespace": f"chart-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def installed(kube: ControlPlane) -> Iterator[list[Manifest]]:
    """The chart installed as `helm install` would: CRDs first, then every rendered object (validated by the
    API server, strictly), and taken away again afterwards (CRDs stay: other tests share them)."""
    manifests = render(**PROOF_RELEASE)
    with kube.client() as admin:
        for crd in chart_crds():
            apply(admin, crd)
        for crd in chart_crds():
            wait(lambda name=crd["metadata"]["name"]: established(admin, name), f"CRD {crd['metadata']['name']}")
        create(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROOF_RELEASE["namespace"]}})
        for manifest in manifests:
            apply(admin, manifest)
        yield manifests
        for kind in ("ClusterRoleBinding", "ClusterRole", "ClusterKopfPeering"):
            admin.delete(path(only(manifests, kind)))
        admin.delete(f"/api/v1/namespaces/{PROOF_RELEASE['namespace']}")


@pytest.fixture(scope="module")
def as_chart_account(kube: ControlPlane, installed: list[Manifest]) -> Iterator[httpx.Client]:
    """A client holding a real token of the chart's service account (TokenRequest), as the operator's pod would."""
    account = only(installed, "ServiceAccount")["metadata"]
    with kube.client() as admin:
        issued = admin.post(
            f"/api/v1/namespaces/{account['namespace']}/serviceaccounts/{account['name']}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
    assert issued.status_code == 201, issued.text
    headers = {"Authorization": f"Bearer {issued.json()['status']['token']}"}
    with httpx.Client(base_url=kube.server, headers=headers, verify=False) as client:
        yield client


def allowed(client: httpx.Client, verb: str, group: str, resource: str) -> bool:
    """May the client's identity do this in every namespace? (a SelfSubjectAccessReview)"""
    resource, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": resource, "subresource": subresource}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    review["spec"] = {"resourceAttributes": attributes}
    answer = client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
    assert answer.status_code == 201, answer.text
    return answer.json()["status"]["allowed"]


def test_the_chart_account_may_do_what_the_operator_needs(as_chart_account: httpx.Client) -> None:
    needs = only(documents(ROOT / "rbac" / "operator.yaml"), "ClusterRole")["rules"]
    refused = [
        (verb, group, resource)
        for rule in needs
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if not allowed(as_chart_account, verb, group, resource)
    ]
    assert refused == []
    assert as_chart_account.get("/apis/apps/v1/deployments").status_code == 200
    assert as_chart_account.get("/apis/tams-operator.io/v1alpha1/tamsstores").status_code == 200


def test_the_chart_account_may_not_delete_deployments_or_list_secrets(
    kube: ControlPlane, as_chart_account: httpx.Client, installed: list[Manifest]
) -> None:
    for verb, group, resource in [
        ("delete", "apps", "deployments"),
        ("list", "", "secrets"),
        ("watch", "", "secrets"),
        ("update", "", "secrets"),
        ("delete", "tams-operator.io", "tamsstores"),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ]:
        assert not allowed(as_chart_account, verb, group, resource), (verb, group, resource)
    assert as_chart_account.get("/api/v1/secrets").status_code == 403
    deployment = only(installed, "Deployment")["metadata"]
    deleting = f"/apis/apps/v1/namespaces/{deployment['namespace']}/deployments/{deployment['name']}"
    assert as_chart_account.delete(deleting).status_code == 403
    with kube.client() as admin:
        assert admin.get(deleting).status_code == 200, "the operator's own Deployment is still there"
