"""A deterministic, realistic N-workload multi-document manifest for the offline pipeline benchmark.

Called by benchmarks/pipeline_offline.py (generate()) and by people who want a big input to try:

    python benchmarks/gen_manifest.py -n 5000 --seed 7 -o /tmp/big.yaml

Each namespace holds a few small applications: stateless frontends and backends (Deployments) in front of
stateful stores (StatefulSets with a headless Service), every workload with a Service. Callers name their
dependencies the ways real manifests do: bare names, name:port, name.namespace, FQDNs, URLs and DSNs (some with
credentials), ConfigMaps read through envFrom, and a few external SaaS hosts. Some workloads get a
PodDisruptionBudget or an HPA, some miss probes or limits, a few use `latest`. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_WORKLOADS = 5_000
DEFAULT_SEED = 7
WORKLOADS_PER_NAMESPACE = 100
WORKLOADS_PER_APP = 10

# kind of store -> (image, port, URL scheme or None when callers use host:port, tier)
STORES = {
    "postgres": ("postgres:16.4", 5432, "postgresql", "database"),
    "mysql": ("mysql:8.4.2", 3306, "mysql", "database"),
    "redis": ("redis:7.4.1", 6379, "redis", "cache"),
    "mongodb": ("mongo:7.0.14", 27017, "mongodb", "database"),
    "rabbitmq": ("rabbitmq:3.13.7-management", 5672, "amqp", "queue"),
    "kafka": ("bitnami/kafka:3.8.0", 9092, None, "queue"),
    "elasticsearch": ("elasticsearch:8.15.2", 9200, "http", "database"),
}
SERVICE_IMAGES = ("python:3.12-slim", "node:20.18-alpine", "eclipse-temurin:21-jre", "golang:1.23-alpine",
                  "ghcr.io/acme/{name}:1.{minor}.{patch}", "registry.example.com/{ns}/{name}:{minor}.{patch}")
FRONTEND_IMAGES = ("nginx:1.27.2", "httpd:2.4.62", "ghcr.io/acme/{name}-web:2.{minor}.{patch}")
EXTERNAL_HOSTS = ("api.stripe.com", "hooks.slack.com", "smtp.sendgrid.net:587", "sqs.eu-west-1.amazonaws.com",
                  "oauth2.googleapis.com", "api.github.com")
ROLES = ("orders", "payments", "catalog", "cart", "users", "search", "shipping", "inventory", "reviews", "auth",
         "billing", "notifications", "recommendations", "pricing", "media", "reports", "ledger", "gateway")
ENV_PREFIX = {"postgres": "DATABASE", "mysql": "MYSQL", "redis": "REDIS", "mongodb": "MONGO",
              "rabbitmq": "AMQP", "kafka": "KAFKA", "elasticsearch": "SEARCH"}


@dataclass
class Workload:
    """One generated workload and how its callers may address it."""

    namespace: str
    name: str
    kind: str
    tier: str
    port: int
    store: str | None = None
    dependencies: list[Workload] = field(default_factory=list)


class _PlainDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes shared objects out in full: hand-written and kubectl-made manifests carry no anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def generate(workloads: int = DEFAULT_WORKLOADS, seed: int = DEFAULT_SEED) -> str:
    """The whole manifest as one YAML stream."""
    documents = list(iter_documents(workloads, seed))
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=120)


def iter_documents(workloads: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    plan = plan_workloads(workloads, rng)
    namespaces = sorted({w.namespace for w in plan})
    for namespace in namespaces:
        yield {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    for workload in plan:
        yield from workload_documents(workload, rng)


def plan_workloads(count: int, rng: random.Random) -> list[Workload]:
    """Apps of WORKLOADS_PER_APP: two stores, backends calling stores and each other, one frontend on top."""
    plan: list[Workload] = []
    index = 0
    while index < count:
        namespace = f"team-{index // WORKLOADS_PER_NAMESPACE:03d}"
        app = f"{rng.choice(ROLES)}{index // WORKLOADS_PER_APP:04d}"
        size = min(WORKLOADS_PER_APP, count - index)
        plan.extend(plan_app(namespace, app, size, rng, plan))
        index += size
    return plan


def plan_app(namespace: str, app: str, size: int, rng: random.Random, earlier: list[Workload]) -> list[Workload]:
    members: list[Workload] = []
    stores = rng.sample(sorted(STORES), 2)
    for position in range(size):
        if position < min(2, size - 1):
            store = stores[position]
            members.append(Workload(namespace, f"{app}-{store}", "StatefulSet", STORES[store][3], STORES[store][1],
                                    store))
        elif position == size - 1 and size > 2:
            frontend = Workload(namespace, f"{app}-web", "Deployment", "frontend", 80)
            frontend.dependencies = rng.sample([m for m in members if m.tier == "backend"], k=min(2, size - 3))
            members.append(frontend)
        else:
            backend = Workload(namespace, f"{app}-{rng.choice(ROLES)}-{position}", "Deployment", "backend",
                               rng.choice((8080, 8000, 9000, 3000)))
            callees = [m for m in members if m.tier != "frontend"]
            backend.dependencies = rng.sample(callees, k=min(len(callees), rng.randint(1, 3)))
            # A few calls cross namespaces, as shared platform services do.
            foreign = [w for w in earlier[-200:] if w.tier == "backend" and w.namespace != namespace]
            if foreign and rng.random() < 0.1:
                backend.dependencies.append(rng.choice(foreign))
            members.append(backend)
    return members


def workload_documents(workload: Workload, rng: random.Random) -> Iterator[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": workload.name, "app.kubernetes.io/component": workload.tier,
              "app.kubernetes.io/part-of": workload.name.split("-")[0], "tier": workload.tier}
    selector = {"app.kubernetes.io/name": workload.name}
    env, config = dependency_env(workload, rng)
    envfrom = []
    if config:
        envfrom = [{"configMapRef": {"name": f"{workload.name}-config"}}]
        yield metadata_object("v1", "ConfigMap", workload, labels) | {"data": config}
    container = container_spec(workload, env, envfrom, rng)
    pod = {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}}
    if workload.store is None and rng.random() < 0.3:
        pod["metadata"]["annotations"] = {"prometheus.io/scrape": "true", "prometheus.io/port": str(workload.port)}
    if rng.random() < 0.25:
        pod["spec"]["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": selector}}}]}}
    spec: dict[str, Any] = {"replicas": replicas(workload, rng), "selector": {"matchLabels": selector},
                            "template": pod}
    port = [{"name": "main", "port": workload.port, "targetPort": workload.port}]
    if workload.kind == "StatefulSet":
        spec["serviceName"] = f"{workload.name}-headless"
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{rng.choice((1, 5, 20))}Gi"}}}}]
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        yield metadata_object("v1", "Service", workload, labels, f"{workload.name}-headless") | {
            "spec": {"clusterIP": "None", "selector": selector, "ports": port}}
    yield metadata_object("apps/v1", workload.kind, workload, labels) | {"spec": spec}
    yield metadata_object("v1", "Service", workload, labels) | {"spec": {"selector": selector, "ports": port}}
    if rng.random() < 0.2:
        budget = {"maxUnavailable": 0} if rng.random() < 0.15 else {"minAvailable": 1}
        yield metadata_object("policy/v1", "PodDisruptionBudget", workload, labels) | {
            "spec": budget | {"selector": {"matchLabels": selector}}}
    if workload.kind == "Deployment" and rng.random() < 0.15:
        yield metadata_object("autoscaling/v2", "HorizontalPodAutoscaler", workload, labels) | {"spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
            "minReplicas": rng.choice((1, 2, 3)), "maxReplicas": rng.choice((5, 10, 20)),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 70}}}]}}


def metadata_object(api_version: str, kind: str, workload: Workload, labels: dict[str, str],
                    name: str | None = None) -> dict[str, Any]:
    suffix = "-config" if kind == "ConfigMap" else ""
    return {"apiVersion": api_version, "kind": kind, "metadata": {
        "name": name or workload.name + suffix, "namespace": workload.namespace, "labels": dict(labels)}}


def replicas(workload: Workload, rng: random.Random) -> int:
    if workload.store:
        return rng.choice((1, 1, 1, 3))
    return rng.choice((1, 2, 2, 3, 3, 4, 6))


def container_spec(workload: Workload, env: list[dict[str, Any]], envfrom: list[dict[str, Any]],
                   rng: random.Random) -> dict[str, Any]:
    container: dict[str, Any] = {"name": workload.store or "main",
                                 "image": image(workload, rng),
                                 "ports": [{"name": "main", "containerPort": workload.port}]}
    if env:
        container["env"] = env
    if envfrom:
        container["envFrom"] = envfrom
    if rng.random() < 0.8:
        container["readinessProbe"] = {"tcpSocket": {"port": workload.port}, "periodSeconds": 5}
    if rng.random() < 0.7:
        container["livenessProbe"] = {"tcpSocket": {"port": workload.port}, "initialDelaySeconds": 15}
    resources: dict[str, Any] = {}
    if rng.random() < 0.85:
        resources["requests"] = {"cpu": f"{rng.choice((50, 100, 250, 500))}m",
                                 "memory": f"{rng.choice((64, 128, 256, 512))}Mi"}
    if rng.random() < 0.6:
        resources["limits"] = {"cpu": "1", "memory": f"{rng.choice((256, 512, 1024, 2048))}Mi"}
    if resources:
        container["resources"] = resources
    return container


def image(workload: Workload, rng: random.Random) -> str:
    if workload.store:
        return STORES[workload.store][0]
    choices = FRONTEND_IMAGES if workload.tier == "frontend" else SERVICE_IMAGES
    name = rng.choice(choices).format(name=workload.name, ns=workload.namespace, minor=rng.randint(0, 30),
                                      patch=rng.randint(0, 9))
    return name.rsplit(":", 1)[0] + ":latest" if rng.random() < 0.03 else name


def dependency_env(workload: Workload, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Env vars naming the workload's dependencies; about a fifth go to a ConfigMap read through envFrom."""
    env: list[dict[str, Any]] = [{"name": "LOG_LEVEL", "value": rng.choice(("info", "debug", "warn"))},
                                 {"name": "PORT", "value": str(workload.port)}]
    config: dict[str, str] = {}
    for callee in workload.dependencies:
        name, value = reference(workload, callee, rng)
        if rng.random() < 0.2:
            config[name] = value
        else:
            env.append({"name": name, "value": value})
        if callee.store in ("postgres", "mysql", "mongodb"):
            env.append({"name": f"{ENV_PREFIX[callee.store]}_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": f"{callee.name}-credentials", "key": "password"}}})
    if workload.tier == "backend" and rng.random() < 0.15:
        host = rng.choice(EXTERNAL_HOSTS)
        env.append({"name": "UPSTREAM_" + host.split(".")[0].upper().replace("-", "_") + "_URL",
                    "value": f"https://{host}/v1"})
    if workload.store:
        env.append({"name": "DATA_DIR", "value": "/data"})
    return env, config


def reference(caller: Workload, callee: Workload, rng: random.Random) -> tuple[str, str]:
    """(env name, value) addressing callee the way a hand-written manifest would."""
    host = callee.name
    if callee.namespace != caller.namespace:
        host = f"{callee.name}.{callee.namespace}" + (".svc.cluster.local" if rng.random() < 0.5 else "")
    elif rng.random() < 0.2:
        host = f"{callee.name}.{callee.namespace}.svc.cluster.local"
    if callee.store:
        prefix = ENV_PREFIX[callee.store]
        scheme = STORES[callee.store][2]
        style = rng.random()
        if scheme and style < 0.5:
            password = "$(" + prefix + "_PASSWORD)" if rng.random() < 0.7 else f"s3cr3t-{rng.randint(1000, 9999)}"
            return f"{prefix}_URL", f"{scheme}://app:{password}@{host}:{callee.port}/{caller.name.split('-')[0]}"
        if style < 0.8:
            return f"{prefix}_HOST", host
        return f"{prefix}_ADDR", f"{host}:{callee.port}"
    env_name = callee.name.split("-", 1)[-1].upper().replace("-", "_")
    if rng.random() < 0.6:
        return f"{env_name}_URL", f"http://{host}:{callee.port}/api"
    return f"{env_name}_SERVICE", f"{host}:{callee.port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--workloads", type=int, default=DEFAULT_WORKLOADS, help="number of workloads")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (same seed, same bytes)")
    parser.add_argument("-o", "--output", default="-", help="file to write, - for stdout")
    args = parser.parse_args(argv)
    if args.workloads < 1:
        parser.error("--workloads must be at least 1")
    text = generate(args.workloads, args.seed)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
