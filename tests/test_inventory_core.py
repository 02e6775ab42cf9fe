"""chaos_inventory.core and references on plain dicts: service selection, dependency inference and its precision,
tiers, criticality, risks, runtime facts and malformed objects."""

from __future__ import annotations

import json
import random

import pytest

from chaos_inventory import core
from chaos_inventory.references import hosts_in_value
from chaosgen.boundary import validated_output

SOURCE = {"type": "files", "files": ["test.yaml"]}


def deployment(name: str, namespace: str = "app", *, env: list | None = None, image: str = "example/x:1.0",
               replicas: int = 1, labels: dict | None = None, kind: str = "Deployment", **pod_spec) -> dict:
    container = {"name": name, "image": image, "env": env or []}
    container.update(pod_spec.pop("container", {}))
    return {
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels or {"app": name}}, "spec": {"containers": [container], **pod_spec}},
        },
    }


def service(name: str, namespace: str = "app", selector: dict | None = None, port: int = 80, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector if selector is not None else {"app": name}, "ports": [{"port": port}], **spec}}


def config_map(name: str, data: dict, namespace: str = "app") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def env(**values: str) -> list[dict]:
    return [{"name": key, "value": value} for key, value in values.items()]


def topology(*objects: dict, runtime: dict | None = None) -> dict:
    return validated_output(core.build_topology(list(objects), SOURCE, runtime))


def edges(result: dict) -> set[tuple[str, str]]:
    return {(d["from"].rpartition("/")[2], d["to"].rpartition("/")[2] if not d["external"] else d["to"])
            for d in result["dependencies"]}


def workload(result: dict, name: str) -> dict:
    return next(w for w in result["workloads"] if w["name"] == name)


def risk_ids(result: dict, name: str) -> list[str]:
    return [r["id"] for r in workload(result, name)["risks"]]


# --- services and selection ---

def test_services_select_workloads_by_template_labels_in_their_own_namespace():
    result = topology(
        deployment("api"), deployment("api", namespace="other"), service("api"),
        service("orphan", selector={"app": "nothing"}), service("manual", selector={}),
    )
    services = {s["name"]: s for s in result["services"]}
    assert services["api"]["selects"] == ["app/Deployment/api"]
    assert services["orphan"]["selects"] == [] and services["manual"]["selects"] == []


def test_service_types_and_exposure():
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "app"},
               "spec": {"rules": [{"http": {"paths": [{"backend": {"service": {"name": "web"}}}]}}]}}
    result = topology(service("web"), service("db", clusterIP="None"), service("np", type="NodePort"), ingress,
                      service("ext", selector={}, type="ExternalName", externalName="DB.Example.com."))
    services = {s["name"]: s for s in result["services"]}
    assert services["db"]["type"] == "Headless" and not services["db"]["exposed"]
    assert services["web"]["exposed"] and services["np"]["exposed"]
    assert services["ext"]["external_name"] == "db.example.com"


# --- dependencies ---

@pytest.mark.parametrize("value", [
    "db", "db:5432", "db.app", "db.app.svc", "db.app.svc.cluster.local", "db.app.svc.cluster.local:5432",
    "postgres://user:pa55@db:5432/shop", "jdbc:postgresql://db:5432/shop", "host=db port=5432 dbname=shop",
    "user:pass@tcp(db:3306)/shop", "cache:6379,db:5432", "db-0.db.app.svc.cluster.local:5432",
])
def test_every_way_of_naming_a_service_gives_an_edge(value):
    result = topology(deployment("api", env=env(DB_HOST=value)), deployment("db"), service("db"),
                      deployment("cache"), service("cache"))
    assert ("api", "db") in edges(result)
    dependency = next(d for d in result["dependencies"] if d["to"] == "app/Deployment/db")
    assert dependency["via"] == "app/Service/db"
    assert dependency["evidence"] == ["spec.template.spec.containers[api].env[DB_HOST]"]


def test_evidence_names_the_exact_field_for_envfrom_configmapkeyref_args_and_init_containers():
    api = deployment(
        "api",
        env=[{"name": "QUEUE_URL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "queue"}}}],
        container={"envFrom": [{"configMapRef": {"name": "cfg"}}], "args": ["--cache-addr", "cache"]},
        initContainers=[{"name": "wait", "image": "busybox:1", "command": ["sh", "-c", "until nc -z db 5432; do sleep 1; done"]}],
    )
    result = topology(api, config_map("cfg", {"DB_HOST": "db", "queue": "amqp://mq:5672"}),
                      *(x for name in ("db", "cache", "mq") for x in (deployment(name), service(name))))
    evidence = {d["to"].rpartition("/")[2]: d["evidence"] for d in result["dependencies"]}
    assert evidence == {
        "db": ["spec.template.spec.containers[api].envFrom[configmap cfg].DB_HOST",
               "spec.template.spec.initContainers[wait].command[2]"],
        "cache": ["spec.template.spec.containers[api].args[1]"],
        "mq": ["spec.template.spec.containers[api].envFrom[configmap cfg].queue",
               "spec.template.spec.containers[api].env[QUEUE_URL].valueFrom.configMapKeyRef[cfg].queue"],
    }


def test_plain_words_and_non_host_keys_make_no_edge():
    values = env(SESSION_REDIS="true", LOG_LEVEL="info", POSTGRES_DB="orders", OTEL_SERVICE_NAME="orders",
                 QUEUE="orders", LISTEN_ADDR="0.0.0.0:8080", SIDECAR="localhost:9090", JAVA_OPTS="-Xmx1g -Dorders.x=1")
    api = deployment("api", env=values, container={"command": ["orders"], "args": ["python", "app.py", "1.20.1"]})
    result = topology(api, deployment("orders"), service("orders"), service("true"))
    assert result["dependencies"] == [] and result["external"] == []


def test_bare_name_counts_when_it_is_a_service_or_the_key_names_a_host():
    result = topology(deployment("api", env=env(MODE="fast", BACKEND_SERVICE="payments", RECS="recs", CACHE_HOST="memcache")),
                      deployment("recs"), service("recs"))
    assert edges(result) == {("api", "recs"), ("api", "memcache"), ("api", "payments")}
    confidence = {d["to"]: d["confidence"] for d in result["dependencies"]}
    assert confidence["app/Deployment/recs"] < confidence["memcache"] + 0.3


def test_unserved_hosts_become_external_dependencies():
    result = topology(deployment("shipping", env=env(
        ZIPKIN="zipkin.jaeger.svc.cluster.local", PAYMENTS="https://pay.example.com/v1", SMTP="mail.example.com:25",
        SCRIPT="app.py", OTHER="db.prod")))
    assert result["external"] == [
        {"host": "mail.example.com", "referenced_by": ["app/Deployment/shipping"]},
        {"host": "pay.example.com", "referenced_by": ["app/Deployment/shipping"]},
        {"host": "zipkin.jaeger.svc.cluster.local", "referenced_by": ["app/Deployment/shipping"]},
    ]
    assert all(d["external"] and d["via"] is None for d in result["dependencies"])
    hard = {d["to"]: d["hard"] for d in result["dependencies"]}
    assert hard == {"mail.example.com": False, "pay.example.com": True, "zipkin.jaeger.svc.cluster.local": False}


def test_a_service_selecting_several_workloads_gives_one_edge_each_and_no_self_edge():
    result = topology(
        deployment("reviews-v1", labels={"app": "reviews", "v": "1"}, env=env(RATINGS_URL="http://ratings:9080")),
        deployment("reviews-v2", labels={"app": "reviews", "v": "2"}, env=env(SELF_URL="http://reviews:9080")),
        deployment("ratings"), service("ratings"), service("reviews"),
        deployment("page", env=env(REVIEWS_HOST="reviews")),
    )
    assert edges(result) == {("reviews-v1", "ratings"), ("page", "reviews-v1"), ("page", "reviews-v2"),
                             ("reviews-v2", "reviews-v1")}
    assert {d["via"] for d in result["dependencies"] if d["from"].endswith("page")} == {"app/Service/reviews"}


def test_externalname_and_selectorless_services_are_external_with_via():
    result = topology(deployment("api", env=env(DB_HOST="db", LEGACY_URL="http://legacy")),
                      service("db", selector={}, type="ExternalName", externalName="db.example.com"),
                      service("legacy", selector={}))
    assert {(d["to"], d["via"], d["external"]) for d in result["dependencies"]} == {
        ("db.example.com", "app/Service/db", True), ("legacy", "app/Service/legacy", True)}


def test_mounted_config_files_give_edges_only_to_known_services():
    web = deployment("web", image="nginx:1.27", volumes=[{"name": "conf", "configMap": {"name": "nginx"}}])
    conf = config_map("nginx", {"nginx.conf": "proxy_pass http://api:8000;\nreturn 301 https://docs.example.com;"})
    result = topology(web, conf, deployment("api"), service("api"))
    assert edges(result) == {("web", "api")}
    assert result["dependencies"][0]["evidence"] == ["spec.template.spec.volumes[conf].configMap[nginx].nginx.conf"]


def test_secret_values_are_never_read_or_output():
    api = deployment("api", env=env(DB_PASSWORD="hunter2", DATABASE_URL="postgres://u:dsn-pass@db:5432/x"),
                     container={"envFrom": [{"configMapRef": {"name": "cfg"}}]})
    text = json.dumps(topology(api, config_map("cfg", {"API_TOKEN": "tok-123"}), deployment("db"), service("db")))
    assert "hunter2" not in text and "dsn-pass" not in text and "tok-123" not in text


@pytest.mark.parametrize("value, hosts", [
    ("mongodb://a:1,b:2/db", ["a", "b"]),
    ("redis://:pw@cache:6379/0", ["cache"]),
    ("-Dx.y=http://zipkin:9411", ["zipkin"]),
    ("Error:1 file:/dev/urandom /tmp/logs", []),
])
def test_hosts_in_value(value, hosts):
    assert [ref.host for ref in hosts_in_value(value)] == hosts


# --- tiers, criticality, risks ---

def test_tiers_from_labels_images_ports_exposure_and_names():
    result = topology(
        deployment("session-db", image="redis:alpine"), deployment("things-db", image="example/things-db:1",
                                                                   container={"ports": [{"containerPort": 3306}]}),
        deployment("broker", image="rabbitmq:3"), deployment("rabbitmq-exporter", image="kbudde/rabbitmq-exporter"),
        deployment("shop", labels={"app": "shop", "tier": "frontend"}), deployment("edge"), service("edge", type="LoadBalancer"),
        deployment("productpage-v1"), service("productpage-v1"), deployment("queue-master"), service("queue-master"),
    )
    tiers = {w["name"]: w["tier"] for w in result["workloads"]}
    assert tiers == {"session-db": "cache", "things-db": "database", "broker": "queue", "rabbitmq-exporter": "other",
                     "shop": "frontend", "edge": "frontend", "productpage-v1": "frontend", "queue-master": "backend"}
    assert workload(result, "session-db")["tier_reasons"][0] == "image redis:alpine"


def test_tools_that_are_not_the_application_get_tier_other_with_their_role():
    """Recognised by image, command, well-known port, component label and by what calls them; names are arbitrary."""
    result = topology(
        deployment("swarm", image="locustio/locust:2.31", env=env(TARGET_HOST="http://shop")),
        deployment("hammer", image="example/tools:1", container={"command": ["/usr/bin/k6", "run", "script.js"]}),
        deployment("clicker", image="example/clicker:1", env=env(FRONTEND_ADDR="shop:80")),
        deployment("shop"), service("shop", type="LoadBalancer"),
        deployment("collector", image="otel/opentelemetry-collector-contrib:0.110.0"), service("collector", port=4317),
        deployment("traces", image="jaegertracing/all-in-one:1.62"),
        deployment("scraper", image="example/scraper:1", container={"ports": [{"containerPort": 9090}]}),
        deployment("dashboards", image="example/ui:1", labels={"app": "dashboards", "app.kubernetes.io/component": "monitoring"}),
        deployment("shipper", image="fluent/fluent-bit:3.1", env=env(LOG_STORE="http://logs:9200")),
        deployment("logs", image="opensearchproject/opensearch:2.17"), service("logs", port=9200),
        deployment("registry", image="hashicorp/consul:1.19"),
        deployment("kv", image="quay.io/coreos/etcd:v3.5.15"), service("kv", port=2379),
        deployment("orders", env=env(REGISTRY_ADDRESS="kv:2379", DB_HOST="orders-db")),
        deployment("orders-db", image="mongo:7"), service("orders-db", port=27017),
    )
    roles = {w["name"]: (w["tier"], w.get("role")) for w in result["workloads"]}
    assert roles == {
        "swarm": ("other", "load-generator"), "hammer": ("other", "load-generator"),
        "clicker": ("other", "load-generator"), "shop": ("frontend", None),
        "collector": ("other", "observability"), "traces": ("other", "observability"),
        "scraper": ("other", "observability"), "dashboards": ("other", "observability"),
        "shipper": ("other", "observability"), "logs": ("other", "observability"),
        "registry": ("other", "service-discovery"), "kv": ("other", "service-discovery"),
        "orders": ("backend", None), "orders-db": ("database", None),
    }
    assert workload(result, "logs")["tier_reasons"][0].startswith("a store only observability workloads call (shipper)")
    assert workload(result, "kv")["tier_reasons"][0].startswith("named as a service registry by orders")
    assert workload(result, "clicker")["tier_reasons"][0].endswith("(shop): a traffic client")


def test_criticality_grows_with_transitive_fan_in():
    chain = [deployment("a", env=env(B_HOST="b")), deployment("b", env=env(C_HOST="c")), deployment("c")]
    result = topology(*chain, service("b"), service("c"))
    scores = {w["name"]: w["criticality"]["score"] for w in result["workloads"]}
    assert scores["c"] > scores["b"] > scores["a"]
    assert workload(result, "c")["criticality"]["reasons"][0] == "2 workloads depend on it (1 directly)"


def test_transitive_callers_through_a_cycle():
    objects = [deployment("a", env=env(B_HOST="b")), deployment("b", env=env(A_HOST="a")),
               deployment("c", env=env(A_HOST="a")), service("a"), service("b")]
    result = topology(*objects)
    reasons = {w["name"]: w["criticality"]["reasons"][0] for w in result["workloads"]}
    assert reasons["a"] == "2 workloads depend on it (2 directly)"
    assert reasons["b"] == "2 workloads depend on it (1 directly)"


def test_risks_of_a_bare_deployment_and_a_well_protected_one():
    weak = deployment("weak", image="example/weak", replicas=3)
    probes = {"readinessProbe": {"tcpSocket": {"port": 80}}, "livenessProbe": {"tcpSocket": {"port": 80}},
              "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}
    strong = deployment("strong", image="example/strong:1.2", replicas=3, container=probes,
                        topologySpreadConstraints=[{"maxSkew": 1}])
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "strong", "namespace": "app"},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "strong"}}}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "s", "namespace": "app"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "strong"}, "minReplicas": 2, "maxReplicas": 5}}
    result = topology(weak, strong, pdb, hpa)
    assert risk_ids(result, "weak") == ["image-latest-or-untagged", "no-anti-affinity", "no-liveness-probe", "no-pdb",
                                        "no-readiness-probe", "no-resource-limits", "no-resource-requests"]
    assert risk_ids(result, "strong") == []
    assert workload(result, "strong")["protection"] == {"pdb": "strong", "hpa": "s", "min_replicas": 2, "max_replicas": 5}


def test_stateful_risks_and_blocking_pdb():
    db = deployment("db", image="postgres:16", volumes=[{"name": "data", "emptyDir": {}}])
    claimed = deployment("pg", image="postgres:16", kind="StatefulSet")
    claimed["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pg", "namespace": "app"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "pg"}}}}
    result = topology(db, claimed, pdb)
    assert "stateful-data-on-emptydir" in risk_ids(result, "db")
    assert "stateful-data-on-emptydir" not in risk_ids(result, "pg")
    assert {"pdb-blocks-eviction", "single-replica"} <= set(risk_ids(result, "pg"))
    assert workload(result, "pg")["stateful"] and workload(result, "db")["stateful"]


# --- runtime facts from a live cluster ---

def pod(name: str, app: str, node: str, ready: bool = True, restarts: int = 0) -> dict:
    return {"metadata": {"name": name, "namespace": "app", "labels": {"app": app}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_runtime_facts_and_risks():
    runtime = {
        "pods": [pod("api-1", "api", "n1"), pod("api-2", "api", "n1", restarts=3), pod("db-1", "db", "n2", ready=False)],
        "endpointslices": [{"metadata": {"namespace": "app", "labels": {"kubernetes.io/service-name": "db"}},
                            "endpoints": [{"conditions": {"ready": False}}]}],
        "nodes": [{"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}},
                  {"metadata": {"name": "n2", "labels": {"topology.kubernetes.io/zone": "z2"}}}],
    }
    result = topology(deployment("api", replicas=2), deployment("db"), service("db"), runtime=runtime)
    assert workload(result, "api")["runtime"] == {"ready_replicas": 2, "restarts": 3, "pods": 2, "nodes": ["n1"],
                                                   "zones": ["z1"]}
    assert {"all-replicas-one-node", "all-replicas-one-zone"} <= set(risk_ids(result, "api"))
    assert {"no-ready-endpoints", "not-ready"} <= set(risk_ids(result, "db"))
    assert result["services"][0]["ready_endpoints"] == 0


# --- shape errors, ownership and determinism ---

@pytest.mark.parametrize("mutate, path", [
    (lambda o: o["spec"]["template"]["spec"].update(containers="oops"), "$.spec.template.spec.containers"),
    (lambda o: o["metadata"].pop("name"), "$.metadata.name"),
    (lambda o: o["metadata"].update(name="Bad_Name"), "$.metadata.name"),
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(env=[{"name": "A"}, "x"]),
     "$.spec.template.spec.containers[0].env[1]"),
    (lambda o: o["spec"].update(replicas="3"), "$.spec.replicas"),
    (lambda o: o["spec"]["template"]["metadata"].update(labels={"app": 1}), "$.spec.template.metadata.labels.app"),
])
def test_malformed_objects_are_rejected_with_their_path_and_index(mutate, path):
    broken = deployment("api")
    mutate(broken)
    with pytest.raises(core.MalformedObject) as caught:
        core.build_topology([service("x"), broken], SOURCE)
    assert caught.value.path == path and caught.value.index == 1


def test_owned_replicasets_and_pods_are_not_workloads():
    owned = deployment("api-5d9", kind="ReplicaSet")
    owned["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "api", "controller": True}]
    assert topology(deployment("api"), owned)["summary"]["workloads"] == 1


def test_same_objects_in_any_order_give_the_same_topology():
    objects = [deployment("api", env=env(DB_HOST="db:5432", CACHE_URL="redis://cache")), deployment("db"),
               deployment("cache", image="redis:7"), service("db"), service("cache"), config_map("c", {"a": "b"})]
    expected = json.dumps(topology(*objects))
    for seed in range(5):
        shuffled = objects[:]
        random.Random(seed).shuffle(shuffled)
        assert json.dumps(topology(*shuffled)) == expected


def test_args_name_hosts_in_urls_flags_and_after_host_taking_programs_only():
    api = deployment("api", container={
        "command": ["/app", "db"],
        "args": ["--payments=https://pay.example.com/v1", "--cache-host", "cache", "--mode", "db"],
    })
    result = topology(api, *(x for name in ("db", "cache") for x in (deployment(name), service(name))))
    assert edges(result) == {("api", "pay.example.com"), ("api", "cache")}
    assert {d["to"]: d["evidence"] for d in result["dependencies"]}["pay.example.com"] == [
        "spec.template.spec.containers[api].args[0]"]
