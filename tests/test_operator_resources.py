"""The operator's pure builders of a TamsStore's children."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from tams_operator.environment import (
    created_buckets,
    management_secret_env,
    management_settings,
    operator_owned,
    secret_env,
    settings,
)
from tams_operator.resources import (
    CONFIG_HASH_ANNOTATION,
    api_deployment,
    children,
    config_hash,
    removable_children,
    worker_deployment,
)
from tams_operator.tamsstore import Store

from tams_api.config import Settings

SHARED = {
    "replicas": 3,
    "metadata": {
        "backend": "vast",
        "vast": {"endpoint": "http://vast", "bucket": "db", "credentialsSecretRef": {"name": "vast-keys"}},
    },
    "media": {
        "backend": "s3",
        "s3": {"endpoint": "http://s3", "bucket": "media", "credentialsSecretRef": {"name": "s3-keys"}},
    },
    "auth": {"modes": ["token"], "tokensSecretRef": {"name": "tams-tokens"}},
    "deleteSyncLimit": 50,
}

# PostgreSQL through the Secret CloudNativePG makes for a cluster's application database.
ON_POSTGRES = {
    **SHARED,
    "metadata": {"backend": "postgres", "postgres": {"uriSecretRef": {"name": "archive-db-app"}}},
}


def store(spec: dict[str, Any] | None = None) -> Store:
    return Store.from_body({"metadata": {"name": "news", "namespace": "media"}, "spec": spec or {}})


def kinds(manifests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(manifest["kind"], manifest["metadata"]["name"]) for manifest in manifests]


def test_an_embedded_store_is_one_pod_on_two_volumes() -> None:
    built = children(store())
    assert kinds(built) == [
        ("ServiceAccount", "news-tams"),
        ("ConfigMap", "news-tams"),
        ("PersistentVolumeClaim", "news-tams-data"),
        ("PersistentVolumeClaim", "news-tams-media"),
        ("Service", "news-tams"),
        ("Deployment", "news-tams"),
    ]
    deployment = api_deployment(store())
    assert deployment["spec"]["replicas"] == 1
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert deployment["spec"]["strategy"] == rolling, "a new pod is ready before the old one goes"
    pod = deployment["spec"]["template"]["spec"]
    [same_node] = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert same_node == {
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
        "topologyKey": "kubernetes.io/hostname",
    }, "the surge pod shares the ReadWriteOnce volumes: only on their node"
    mounts = deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {mount["mountPath"] for mount in mounts} == {"/tmp", "/data", "/media"}
    assert settings(store())["TAMS_RUN_WORKER"] == "true"
    assert settings(store())["TAMS_PUBLIC_URL"] == "http://news-tams.media.svc:80"


def test_a_shared_store_scales_and_has_one_worker() -> None:
    shared = store(SHARED)
    assert kinds(children(shared)) == [
        ("ServiceAccount", "news-tams"),
        ("ServiceAccount", "news-tams-worker"),
        ("ConfigMap", "news-tams"),
        ("Service", "news-tams"),
        ("Deployment", "news-tams"),
        ("Deployment", "news-tams-worker"),
        ("PodDisruptionBudget", "news-tams"),
    ]
    api = api_deployment(shared)
    assert (api["spec"]["replicas"], api["spec"]["strategy"]["type"]) == (3, "RollingUpdate")
    assert api["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}, "never fewer ready pods"
    assert "affinity" not in api["spec"]["template"]["spec"], "no volumes to keep close to: any node"
    worker = worker_deployment(shared)
    assert worker is not None
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    assert settings(shared)["TAMS_RUN_WORKER"] == "false"
    assert worker_deployment(store()) is None


def test_credentials_are_referenced_never_copied() -> None:
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in secret_env(store(SHARED))}
    assert env == {
        "TAMS_VAST_ACCESS_KEY": {"name": "vast-keys", "key": "accessKey"},
        "TAMS_VAST_SECRET_KEY": {"name": "vast-keys", "key": "secretKey"},
        "TAMS_S3_ACCESS_KEY_ID": {"name": "s3-keys", "key": "accessKey"},
        "TAMS_S3_SECRET_ACCESS_KEY": {"name": "s3-keys", "key": "secretKey"},
        "TAMS_AUTH_OPERATOR_TOKEN": {"name": "news-tams-operator", "key": "token"},  # made by the operator
        "TAMS_AUTH_TOKENS": {"name": "tams-tokens", "key": "tokens"},
    }
    assert "vast-keys" not in str(settings(store(SHARED)))


def test_a_store_on_postgres_is_shared_and_reads_the_uri_from_the_secret() -> None:
    on_postgres = store(ON_POSTGRES)
    assert kinds(children(on_postgres)) == kinds(children(store(SHARED))), "API replicas and one worker, no volume"
    assert api_deployment(on_postgres)["spec"]["replicas"] == 3
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in secret_env(on_postgres)}
    assert env["TAMS_POSTGRES_URL"] == {"name": "archive-db-app", "key": "uri"}, "CloudNativePG's key by default"
    assert not {name for name in env if name.startswith("TAMS_VAST")}
    values = settings(on_postgres)
    assert (values["TAMS_METADATA_BACKEND"], values["TAMS_POSTGRES_SCHEMA"]) == ("postgres", "tams")
    assert (values["TAMS_RUN_WORKER"], values["TAMS_POSTGRES_POOL_SIZE"]) == ("false", "10"), "the CRD's default"
    tuned = copy.deepcopy(ON_POSTGRES)
    tuned["metadata"]["postgres"] |= {"schema": "news", "poolSize": 4, "timeoutSeconds": 2.5}
    tuned["metadata"]["postgres"]["uriSecretRef"]["key"] = "url"
    values = settings(store(tuned))
    assert (values["TAMS_POSTGRES_SCHEMA"], values["TAMS_POSTGRES_POOL_SIZE"], values["TAMS_POSTGRES_TIMEOUT"]) == (
        "news",
        "4",
        "2.5",
    )
    assert {"name": "archive-db-app", "key": "url"} in [
        item["valueFrom"]["secretKeyRef"] for item in secret_env(store(tuned))
    ]


@pytest.mark.parametrize("spec", [{}, SHARED, ON_POSTGRES], ids=["embedded", "shared", "postgres"])
def test_every_variable_is_a_setting_of_the_service(spec: dict[str, Any]) -> None:
    """A misspelt variable would be silently ignored by the service (it ignores unknown variables)."""
    names = set(settings(store(spec))) | {item["name"] for item in secret_env(store(spec))}
    fields = {f"TAMS_{name.upper()}" for name in Settings.model_fields}
    assert names - fields == set()


def test_the_delete_sync_limit_is_the_services_unless_the_spec_sets_one() -> None:
    assert "TAMS_DELETE_SYNC_LIMIT" not in settings(store())
    assert settings(store(SHARED))["TAMS_DELETE_SYNC_LIMIT"] == "50"
    assert settings(store({"deleteSyncLimit": 0}))["TAMS_DELETE_SYNC_LIMIT"] == "0", "0: every deletion deferred"


def test_request_limits_are_the_services_unless_the_spec_sets_them() -> None:
    assert not {"TAMS_MAX_BODY_BYTES", "TAMS_MAX_BULK_SEGMENTS"} & set(settings(store()))
    limited = settings(store({"maxBodyBytes": 1048576, "maxBulkSegments": 500}))
    assert (limited["TAMS_MAX_BODY_BYTES"], limited["TAMS_MAX_BULK_SEGMENTS"]) == ("1048576", "500")


@pytest.mark.parametrize(
    ("spec", "processes"),
    [
        ({}, "1"),
        ({"resources": {"requests": {"cpu": 4}}}, "1"),  # a request is no limit
        ({"resources": {"limits": {"cpu": "250m"}}}, "1"),
        ({"resources": {"limits": {"cpu": "1500m"}}}, "2"),
        ({"resources": {"limits": {"cpu": 4}}}, "4"),
        ({"resources": {"limits": {"cpu": "2.5"}}}, "3"),
        ({"workers": 3, "resources": {"limits": {"cpu": 1}}}, "3"),
    ],
)
def test_server_processes_are_the_specs_else_one_per_cpu_of_the_limit(spec: dict[str, Any], processes: str) -> None:
    assert settings(store(spec))["TAMS_WORKERS"] == processes


def test_the_config_hash_rolls_pods_on_configuration_changes_only() -> None:
    changed_setting = copy.deepcopy(SHARED)
    changed_setting["media"]["s3"]["bucket"] = "other"
    changed_secret = copy.deepcopy(SHARED)
    changed_secret["auth"]["tokensSecretRef"]["name"] = "rotated"
    scaled = {**SHARED, "replicas": 5}
    base = config_hash(store(SHARED))
    assert config_hash(store(changed_setting)) != base
    assert config_hash(store(changed_secret)) != base
    assert config_hash(store(scaled)) == base
    template = api_deployment(store(SHARED))["spec"]["template"]
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == base


def test_readiness_is_the_stores_answering_and_liveness_the_process() -> None:
    container = api_deployment(store())["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["readinessProbe"]["periodSeconds"] <= 2, "a started pod is found ready within 2 s"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert [port["name"] for port in container["ports"]] == ["http"]


@pytest.mark.parametrize("spec", [{}, SHARED], ids=["embedded", "shared"])
def test_the_metadata_store_is_migrated_before_the_server_starts(spec: dict[str, Any]) -> None:
    pod = api_deployment(store(spec))["spec"]["template"]["spec"]
    [migrate], [server] = pod["initContainers"], pod["containers"]
    assert migrate["name"] == "migrate" and migrate["args"] == ["migrate"]
    assert migrate["terminationMessagePolicy"] == "FallbackToLogsOnError", "why it failed, on the pod"
    same = ["image", "imagePullPolicy", "envFrom", "env", "volumeMounts", "securityContext", "resources"]
    assert [migrate[key] for key in same] == [server[key] for key in same], "the server's store, settings, volumes"
    assert not {"ports", "readinessProbe", "livenessProbe", "lifecycle"} & set(migrate), "it runs to completion"
    worker = worker_deployment(store(SHARED))
    assert worker is not None and "initContainers" not in worker["spec"]["template"]["spec"], "migrates as it opens"


def test_pods_are_locked_down() -> None:
    pod = api_deployment(store())["spec"]["template"]["spec"]
    context = pod["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] and context["runAsNonRoot"] and not context["allowPrivilegeEscalation"]
    assert pod["automountServiceAccountToken"] is False


def test_vms_credentials_reach_provisioning_never_the_pods() -> None:
    spec = copy.deepcopy(SHARED)
    spec["metadata"]["vast"]["management"] = {
        "endpoint": "vms.example",
        "bucketOwner": "tams-db-user",
        "credentialsSecretRef": {"name": "vms-admin"},
    }
    shared = store(spec)
    assert management_settings(shared) == {
        "TAMS_VAST_MANAGEMENT_ENDPOINT": "vms.example",
        "TAMS_VAST_BUCKET_OWNER": "tams-db-user",
        "TAMS_VAST_VIEW_POLICY": "s3_default_policy",
    }
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in management_secret_env(shared)}
    assert refs == {
        "TAMS_VAST_MANAGEMENT_USERNAME": {"name": "vms-admin", "key": "username"},
        "TAMS_VAST_MANAGEMENT_PASSWORD": {"name": "vms-admin", "key": "password"},
    }
    assert "vms" not in str(children(shared)), "neither the VMS address nor its credentials in any child"
    names = set(management_settings(shared)) | set(refs)
    assert names - {f"TAMS_{name.upper()}" for name in Settings.model_fields} == set()
    assert management_settings(store(SHARED)) == {} and management_secret_env(store(SHARED)) == []


ARCHIVE = {
    "label": "archive",
    "endpoint": "http://archive",
    "bucket": "cold",
    "createBucket": True,
    "credentialsSecretRef": {"name": "archive-keys"},
}


def test_extra_backends_reference_their_keys_never_copy_them() -> None:
    spec = copy.deepcopy(SHARED)
    spec["media"]["extraBackends"] = [ARCHIVE]
    env = api_deployment(store(spec))["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in env if "valueFrom" in item}
    assert refs["TAMS_EXTRA_BACKEND_0_ACCESS_KEY_ID"] == {"name": "archive-keys", "key": "accessKey"}
    assert refs["TAMS_EXTRA_BACKEND_0_SECRET_ACCESS_KEY"] == {"name": "archive-keys", "key": "secretKey"}
    names = [item["name"] for item in env]
    # Kubernetes expands $(NAME) only from variables defined before.
    assert names.index("TAMS_EXTRA_STORAGE_BACKENDS") > names.index("TAMS_EXTRA_BACKEND_0_SECRET_ACCESS_KEY")
    backends = json.loads(next(item["value"] for item in env if item["name"] == "TAMS_EXTRA_STORAGE_BACKENDS"))
    assert backends == [
        {
            "label": "archive",
            "backend": "s3",
            "bucket": "cold",
            "region": "us-east-1",
            "endpoint_url": "http://archive",
            "access_key_id": "$(TAMS_EXTRA_BACKEND_0_ACCESS_KEY_ID)",
            "secret_access_key": "$(TAMS_EXTRA_BACKEND_0_SECRET_ACCESS_KEY)",
        }
    ]
    assert config_hash(store(spec)) != config_hash(store(SHARED)), "adding a backend rolls the pods"
    assert created_buckets(store(spec), "s3:media") == ["archive"]


def test_pods_are_found_by_prometheus_and_the_worker_serves_metrics() -> None:
    shared = store(SHARED)
    api, worker = api_deployment(shared), worker_deployment(shared)
    assert worker is not None
    for deployment, port in ((api, "8000"), (worker, "9090")):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == ("true", port)
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TAMS_WORKER_METRICS_PORT", "value": "9090"} in container["env"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090}]


PRODUCTION = {
    **ON_POSTGRES,
    "publicUrl": "https://tams.example.com/",
    "ingress": {
        "className": "traefik",
        "host": "tams.example.com",
        "path": "/",
        "annotations": {"traefik.ingress.kubernetes.io/router.entrypoints": "websecure"},
        "tls": {"issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"}},
    },
    "httpRoute": {"parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}]},
    "podTemplate": {
        "labels": {"team": "archive", "app.kubernetes.io/instance": "not-this"},
        "annotations": {"example.com/owner": "archive"},
        "nodeSelector": {"media.example.com/tier": "storage"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "media", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "priorityClassName": "media-critical",
        "imagePullSecrets": [{"name": "registry"}],
    },
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/tams"}},
    "worker": {"serviceAccount": {"name": "tams-worker-identity"}, "podTemplate": {"priorityClassName": "low"}},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 70},
    "networkPolicy": {
        "enabled": True,
        "ingressControllerNamespace": "traefik",
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    },
    "logLevel": "debug",
    "accessLog": True,
    "softDelete": {"enabled": True, "retentionSeconds": 3600},
    "tracing": {"otlpEndpoint": "http://otel.observability:4318", "samplingRatio": 0.25},
    "webhooks": {"timeoutSeconds": 5, "maxAttempts": 3, "allowLinkLocal": False},
    "env": [{"name": "TAMS_DEFAULT_PAGE_LIMIT", "value": "50"}],
    "monitoring": {"podMonitor": True},
}


def production(**changes: Any) -> Store:
    body = {"metadata": {"name": "news", "namespace": "media"}, "spec": {**PRODUCTION, **changes}}
    return Store.from_body(body, operator_namespace="tams-system")


def child(store: Store, kind: str) -> dict[str, Any]:
    [found] = [manifest for manifest in children(store) if manifest["kind"] == kind]
    return found


def test_a_production_store_has_every_child() -> None:
    assert kinds(children(production())) == [
        ("ServiceAccount", "news-tams"),
        ("ConfigMap", "news-tams"),
        ("Service", "news-tams"),
        ("Deployment", "news-tams"),
        ("Deployment", "news-tams-worker"),
        ("PodDisruptionBudget", "news-tams"),
        ("HorizontalPodAutoscaler", "news-tams"),
        ("NetworkPolicy", "news-tams"),
        ("Ingress", "news-tams"),
        ("HTTPRoute", "news-tams"),
        ("PodMonitor", "news-tams"),
    ], "the worker runs under the ServiceAccount the spec names: none is made for it"
    assert removable_children(production()) == [("v1", "ServiceAccount", "news-tams-worker")]
    assert ("networking.k8s.io/v1", "Ingress", "news-tams") in removable_children(store(SHARED))


def test_the_public_url_is_what_the_service_writes_into_urls() -> None:
    assert settings(production())["TAMS_PUBLIC_URL"] == "https://tams.example.com"
    without = production(publicUrl=None)
    assert settings(without)["TAMS_PUBLIC_URL"] == "https://tams.example.com", "from the Ingress, https with tls"
    assert settings(store({"ingress": {"host": "tams.lan", "path": "/"}}))["TAMS_PUBLIC_URL"] == "http://tams.lan"


def test_the_ingress_has_its_certificate_issued_by_cert_manager() -> None:
    ingress = child(production(), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["tams.example.com"], "secretName": "news-tams-tls"}]
    assert ingress["metadata"]["annotations"] == {
        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
        "cert-manager.io/cluster-issuer": "letsencrypt",
    }
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": "news-tams", "port": {"number": 80}}
    route = child(production(), "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "news-tams", "port": 80}]


def test_the_pods_are_placed_as_the_spec_says() -> None:
    pod_template = api_deployment(production())["spec"]["template"]
    pod = pod_template["spec"]
    assert pod_template["metadata"]["labels"]["team"] == "archive"
    assert pod_template["metadata"]["labels"]["app.kubernetes.io/instance"] == "news", "the operator's labels win"
    assert pod_template["metadata"]["annotations"]["example.com/owner"] == "archive"
    assert pod["nodeSelector"] == {"media.example.com/tier": "storage"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "media", "effect": "NoSchedule"}]
    assert pod["affinity"] == PRODUCTION["podTemplate"]["affinity"], "no same-node term: nothing on volumes"
    [spread] = pod["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": store(ON_POSTGRES).labels("api")}, "its own pods by default"
    assert (pod["priorityClassName"], pod["imagePullSecrets"]) == ("media-critical", [{"name": "registry"}])
    assert pod["serviceAccountName"] == "news-tams"
    worker = worker_deployment(production())
    assert worker is not None
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "tams-worker-identity"
    assert worker["spec"]["template"]["spec"]["priorityClassName"] == "low"
    assert (
        child(production(), "ServiceAccount")["metadata"]["annotations"] == PRODUCTION["serviceAccount"]["annotations"]
    )


def test_an_embedded_store_keeps_its_pods_together_beside_the_specs_affinity() -> None:
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone"}]}}
    pod = api_deployment(store({"podTemplate": {"affinity": affinity}}))["spec"]["template"]["spec"]
    terms = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0] == {"topologyKey": "zone"}
    assert terms[1]["topologyKey"] == "kubernetes.io/hostname", "the volumes' node, kept"


def test_scaling_disruption_and_network_policy() -> None:
    hpa = child(production(), "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "tams-operator.io/v1alpha1", "kind": "TamsStore", "name": "news"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "behavior" not in hpa, "Kubernetes' own scale-down window unless the spec sets one"
    quick = production(autoscaling={"maxReplicas": 3, "scaleDownStabilizationSeconds": 30})
    assert child(quick, "HorizontalPodAutoscaler")["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    assert child(production(), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    single = {**ON_POSTGRES, "replicas": 1}
    assert "PodDisruptionBudget" not in dict(kinds(children(store(single)))), "one pod: a budget blocks drains"
    forced = {**single, "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"}}
    assert child(store(forced), "PodDisruptionBudget")["spec"]["maxUnavailable"] == "50%"
    assert "PodDisruptionBudget" not in dict(kinds(children(production(podDisruptionBudget={"enabled": False}))))
    policy = child(production(), "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": store(ON_POSTGRES).labels("api")}
    peers = policy["ingress"][0]["from"]
    namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in peers]
    assert namespaces == ["tams-system", "traefik", "monitoring"]
    alone = store({"networkPolicy": {"enabled": True}})
    assert child(alone, "NetworkPolicy")["spec"]["ingress"] == [], "no peers: nobody, rather than everybody"


def test_service_settings_from_the_spec() -> None:
    values = settings(production())
    assert {name: values[name] for name in values if name.startswith(("TAMS_SOFT", "TAMS_WEBHOOK", "OTEL"))} == {
        "TAMS_SOFT_DELETE": "true",
        "TAMS_SOFT_DELETE_RETENTION": "3600",
        "TAMS_WEBHOOK_TIMEOUT": "5.0",
        "TAMS_WEBHOOK_MAX_ATTEMPTS": "3",
        "TAMS_WEBHOOK_ALLOW_LINK_LOCAL": "false",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_SERVICE_NAME": "tams-media-news",
    }
    assert (values["TAMS_LOG_LEVEL"], values["TAMS_ACCESS_LOG"]) == ("debug", "true")
    assert values["TAMS_OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.observability:4318"
    env = api_deployment(production())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[-1] == {"name": "TAMS_DEFAULT_PAGE_LIMIT", "value": "50"}
    own = {k.removeprefix("TAMS_").lower(): v for k, v in values.items() if k.startswith("TAMS_")}
    parsed = Settings(**own, postgres_url="postgresql://tams@db/tams")
    assert (parsed.soft_delete, parsed.webhook_max_attempts, parsed.log_level) == (True, 3, "debug")


def test_the_operator_sets_only_the_variables_spec_env_may_not() -> None:
    extra = {"label": "cold", "bucket": "c", "credentialsSecretRef": {"name": "cold-keys"}}
    media = {**PRODUCTION["media"], "extraBackends": [extra]}
    for built in (production(media=media), store(), store(ON_POSTGRES)):
        names = set(settings(built))
        for deployment in (api_deployment(built), worker_deployment(built)):
            if deployment is not None:
                names |= {
                    variable["name"] for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                }
        names -= {variable.name for variable in built.spec.env}
        assert {name for name in names if not operator_owned(name)} == set()


def test_a_rotated_secret_changes_the_pod_template() -> None:
    before = production()
    rotated = dataclasses.replace(before, secret_versions=(("archive-db-app", "42"),))
    assert config_hash(rotated) != config_hash(before)
