"""The manifests in k8s/: well-formed, pinned, self-consistent, and the demo app's secret never leaves ChaosGen.

Server-side validation of the same files against a real apiserver lives in tests/test_sandbox.py; these checks
need no cluster.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, run

K8S = REPO / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
APP = K8S / "3tier-app.yaml"
OBSERVABILITY = K8S / "observability.yaml"
LITMUS_SETUP = K8S / "litmus-setup.yaml"
APP_NAMESPACE = "shop"

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass", "IngressClass"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
APP_TIERS = {"frontend", "backend", "database"}
PINNED_IMAGE = re.compile(r"^[a-z0-9.\-/:]+:(?!latest$)[A-Za-z0-9._-]+$")


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every object that runs pods."""
    for doc in docs:
        if doc["kind"] in POD_TEMPLATE_KINDS:
            yield doc, doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def container(docs: list[dict[str, Any]], kind: str, name: str, container_name: str) -> dict[str, Any]:
    template = find(docs, kind, name)["spec"]["template"]
    return next(c for c in template["spec"]["containers"] if c["name"] == container_name)


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in spec.get("env", [])}


def flask_routes(source: str) -> set[tuple[str, str]]:
    """(METHOD, path) for every @app.get/@app.post/@app.route decorator in the API code."""
    routes = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                continue
            method = decorator.func.attr
            path = decorator.args[0].value if decorator.args else None
            if method in {"get", "post", "put", "delete"}:
                routes.add((method.upper(), path))
            elif method == "route":
                methods = next((kw.value for kw in decorator.keywords if kw.arg == "methods"), None)
                for verb in ast.literal_eval(methods) if methods else ["GET"]:
                    routes.add((verb, path))
    return routes


def secret_values(path: Path) -> list[str]:
    return [value for doc in load(path) if doc["kind"] == "Secret" for value in doc.get("stringData", {}).values()]


def assert_no_secret(stdout: bytes, stderr: bytes) -> None:
    for value in secret_values(APP):
        assert value.encode() not in stdout and value.encode() not in stderr, "the demo Secret's value leaked"


def test_k8s_dir_holds_the_three_manifests() -> None:
    assert {APP, OBSERVABILITY, LITMUS_SETUP} <= set(MANIFESTS)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_object_is_complete(path: Path) -> None:
    docs = load(path)
    assert docs, f"{path.name} holds no objects"
    for index, doc in enumerate(docs):
        where = f"{path.name} document {index}"
        assert isinstance(doc, dict), where
        assert doc.get("apiVersion") and doc.get("kind"), where
        assert doc.get("metadata", {}).get("name"), where
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace"), f"{where} ({doc['kind']}) has no namespace"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_images_are_pinned(path: Path) -> None:
    docs = load(path)
    images = [c["image"] for _, template in pod_specs(docs) for c in containers(template)]
    # Images handed to other pods through env (e.g. the Litmus operator's CHAOS_RUNNER_IMAGE) count too.
    images += [value for _, template in pod_specs(docs) for c in containers(template)
               for name, value in env_of(c).items() if name.endswith("_IMAGE")]
    assert images or path.name.startswith("rbac"), f"{path.name} runs no containers"
    for image in images:
        assert PINNED_IMAGE.match(image), f"{path.name}: image {image!r} is not pinned to a tag"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_services_select_pods_in_the_same_file(path: Path) -> None:
    docs = load(path)
    templates = [(workload["metadata"]["namespace"], template["metadata"]["labels"])
                 for workload, template in pod_specs(docs)]
    for service in (doc for doc in docs if doc["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        namespace = service["metadata"]["namespace"]
        assert any(ns == namespace and selector <= labels.items() for ns, labels in templates), \
            f"{path.name}: Service {service['metadata']['name']} selects no pod template"


def test_app_objects_carry_name_component_and_tier() -> None:
    for doc in load(APP):
        if doc["kind"] == "Namespace":
            continue
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name"), where
        assert labels.get("tier") in APP_TIERS, where
        assert labels["app.kubernetes.io/component"] == labels["tier"], where
        assert doc["metadata"]["namespace"] == APP_NAMESPACE, where
    for workload, template in pod_specs(load(APP)):
        assert template["metadata"]["labels"]["tier"] == workload["metadata"]["labels"]["tier"]


def test_database_is_a_probed_statefulset_with_a_volume_claim() -> None:
    docs = load(APP)
    postgres = find(docs, "StatefulSet", "postgres")
    assert postgres["spec"]["replicas"] == 1
    assert find(docs, "Service", postgres["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    assert find(docs, "Service", "postgres")["spec"]["type"] == "ClusterIP"
    claim = postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    db = container(docs, "StatefulSet", "postgres", "postgres")
    assert db["image"] == "postgres:16.4"
    assert claim in {mount["name"] for mount in db["volumeMounts"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert db[probe]["exec"]["command"][0] == "pg_isready"
    assert db["resources"]["limits"] and db["resources"]["requests"]
    password = env_of(db)["POSTGRES_PASSWORD"]["secretKeyRef"]
    secret = find(docs, "Secret", password["name"])
    assert password["key"] in secret["stringData"]


def test_api_names_the_database_and_has_no_limits_on_purpose() -> None:
    docs = load(APP)
    api = find(docs, "Deployment", "api")
    assert api["spec"]["replicas"] == 2
    main = container(docs, "Deployment", "api", "api")
    env = env_of(main)
    assert env["DB_HOST"].split(".")[0] == "postgres"
    assert "$(DB_HOST)" in env["DATABASE_URL"] and "secretKeyRef" in env["DB_PASSWORD"]
    assert "limits" not in main.get("resources", {}), "the API's missing limits are the demo's planted weakness"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in {port["containerPort"] for port in main["ports"]}
    mounted = {volume["configMap"]["name"] for volume in api["spec"]["template"]["spec"]["volumes"]
               if "configMap" in volume}
    assert "api-code" in mounted


def test_api_code_compiles_and_serves_the_documented_routes() -> None:
    code = find(load(APP), "ConfigMap", "api-code")["data"]
    source = code["app.py"]
    compile(source, "api-code/app.py", "exec")
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/health"), ("GET", "/api/items"),
            ("POST", "/api/items"), ("GET", "/metrics")} <= flask_routes(source)
    for metric in ("http_requests_total", "http_request_duration_seconds"):
        assert f'"{metric}"' in source
    requirements = code["requirements.txt"].split()
    assert all("==" in line for line in requirements), "the API's requirements must be pinned"
    assert {re.split(r"[\[=]", line)[0] for line in requirements} >= {"flask", "prometheus-client", "psycopg"}


def test_frontend_proxies_to_the_api_service_and_polls_it() -> None:
    docs = load(APP)
    upstream = find(docs, "ConfigMap", "frontend-env")["data"]["API_UPSTREAM"]
    assert re.fullmatch(r"http://api\.shop\.svc\.cluster\.local:8080", upstream)
    assert find(docs, "Service", "api")["spec"]["ports"][0]["port"] == 8080
    nginx_conf = find(docs, "ConfigMap", "frontend-nginx")["data"]["default.conf.template"]
    assert "proxy_pass $api_upstream" in nginx_conf and "${API_UPSTREAM}" in nginx_conf
    html = find(docs, "ConfigMap", "frontend-html")["data"]["index.html"]
    assert '"/api/items"' in html and '"/api/health"' in html
    nginx = container(docs, "Deployment", "frontend", "nginx")
    assert {ref["configMapRef"]["name"] for ref in nginx["envFrom"]} == {"frontend-env"}
    assert find(docs, "Service", "frontend")["spec"]["type"] in {"NodePort", "LoadBalancer"}
    backend = find(docs, "Ingress", "frontend")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "frontend"


def test_frontend_exports_the_same_request_metrics_as_the_api() -> None:
    """Abort thresholds on the frontend's error rate need http_requests_total{code}, which nginx alone lacks."""
    docs = load(APP)
    exporter = find(docs, "ConfigMap", "frontend-exporter")["data"]["exporter.py"]
    compile(exporter, "frontend-exporter/exporter.py", "exec")
    for metric in ("http_requests_total", "http_request_duration_seconds"):
        assert f'"{metric}"' in exporter
    nginx_conf = find(docs, "ConfigMap", "frontend-nginx")["data"]["default.conf.template"]
    log_format = re.search(r"log_format shop_metrics '(\w+) ", nginx_conf)
    assert log_format and f'MARKER = "{log_format.group(1)} "' in exporter
    assert re.search(r"access_log syslog:server=127\.0\.0\.1:5140\b.* shop_metrics;", nginx_conf)
    frontend = find(docs, "Deployment", "frontend")["spec"]["template"]
    port = int(frontend["metadata"]["annotations"]["prometheus.io/port"])
    sidecar = next(c for c in frontend["spec"]["containers"] if c["name"] == "exporter")
    assert port in {p["containerPort"] for p in sidecar["ports"]}


def test_prometheus_discovers_annotated_pods_and_the_exporters() -> None:
    docs = load(OBSERVABILITY)
    config = yaml.safe_load(find(docs, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"kubernetes-pods", "kube-state-metrics", "node-exporter"} <= jobs.keys()
    pods = jobs["kubernetes-pods"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep",
            "regex": "true"} in pods["relabel_configs"]
    for job_name in ("kube-state-metrics", "node-exporter"):
        keep = jobs[job_name]["relabel_configs"][0]
        service_name, port_name = keep["regex"].split(";")
        service = find(docs, "Service", service_name)
        assert port_name in {port["name"] for port in service["spec"]["ports"]}
    prometheus = find(docs, "Deployment", "prometheus")["spec"]["template"]["spec"]
    binding = find(docs, "ClusterRoleBinding", "monitoring-prometheus")
    assert binding["subjects"][0]["name"] == prometheus["serviceAccountName"]
    rules = find(docs, "ClusterRole", binding["roleRef"]["name"])["rules"]
    assert any("pods" in rule.get("resources", []) and "watch" in rule["verbs"] for rule in rules)


def test_no_rbac_in_the_monitoring_stack_reads_secrets() -> None:
    for role in (doc for doc in load(OBSERVABILITY) if doc["kind"] == "ClusterRole"):
        assert all("secrets" not in rule.get("resources", []) for rule in role["rules"]), role["metadata"]["name"]


def test_grafana_dashboard_parses_and_uses_the_provisioned_datasource() -> None:
    docs = load(OBSERVABILITY)
    datasources = yaml.safe_load(find(docs, "ConfigMap", "grafana-datasources")["data"]["prometheus.yaml"])
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"].startswith("http://prometheus.monitoring.svc")
    dashboard = json.loads(find(docs, "ConfigMap", "grafana-dashboards")["data"]["shop-app.json"])
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]} == {uid}
    for needle in ("rate(http_requests_total", 'code=~"5.."', "histogram_quantile(0.95",
                   "http_request_duration_seconds_bucket", "kube_deployment_status_replicas_ready",
                   "kube_statefulset_status_replicas_ready"):
        assert any(needle in expr for expr in exprs), needle
    providers = yaml.safe_load(find(docs, "ConfigMap", "grafana-dashboard-providers")["data"]["chaosgen.yaml"])
    grafana = container(docs, "Deployment", "grafana", "grafana")
    mounts = {mount["mountPath"] for mount in grafana["volumeMounts"]}
    assert providers["providers"][0]["options"]["path"] in mounts


def test_litmus_operator_runs_as_the_bound_service_account() -> None:
    docs = load(LITMUS_SETUP)
    operator = find(docs, "Deployment", "chaos-operator-ce")["spec"]["template"]["spec"]
    binding = find(docs, "ClusterRoleBinding", "litmus")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": operator["serviceAccountName"],
                                    "namespace": "litmus"}]
    rules = find(docs, "ClusterRole", binding["roleRef"]["name"])["rules"]
    assert any({"chaosengines", "chaosresults"} <= set(rule["resources"]) and "create" in rule["verbs"]
               for rule in rules)
    image_tag = operator["containers"][0]["image"].rsplit(":", 1)[1]
    assert image_tag.startswith("3."), "ChaosGen targets Litmus 3.x"
    assert "crds/litmus-crds.yaml" in LITMUS_SETUP.read_text(), "the file must say where the CRDs come from"


def test_app_secret_is_fake_and_distinctive() -> None:
    """The leak tests below are only meaningful if the value cannot appear by accident."""
    [value] = secret_values(APP)
    assert "FAKE" in value and len(value) >= 20


@pytest.mark.parametrize("output_format", ["json", "dot", "mermaid"])
def test_app_secret_never_appears_in_inventory_output(output_format: str) -> None:
    assert shutil.which("chaos-inventory"), "chaos-inventory is not installed (pip install -e .)"
    result = run(f"chaos-inventory -f {shlex.quote(str(APP))} --format {output_format}")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip()
    assert_no_secret(result.stdout, result.stderr)


def test_app_pipeline_sees_the_tiers_and_never_leaks_the_secret() -> None:
    for tool in ("chaos-inventory", "chaos-suggest", "chaos-litmus"):
        assert shutil.which(tool), f"{tool} is not installed (pip install -e .)"
    app = shlex.quote(str(APP))
    topology = run(f"chaos-inventory -f {app}")
    assert topology.returncode == 0, topology.stderr.decode()
    edges = {(edge["from"], edge["to"]) for edge in json.loads(topology.stdout)["dependencies"]}
    assert ("shop/Deployment/frontend", "shop/Deployment/api") in edges
    assert ("shop/Deployment/api", "shop/StatefulSet/postgres") in edges
    pipeline = run(f"chaos-inventory -f {app} -v | chaos-suggest -n 3 -v | chaos-litmus -v")
    assert pipeline.returncode == 0, pipeline.stderr.decode()
    assert pipeline.stdout.count(b"kind: ChaosEngine") == 3
    assert_no_secret(pipeline.stdout, pipeline.stderr)
