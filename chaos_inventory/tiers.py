"""Tiers (database, cache, queue, frontend, backend, other) from a workload's labels, image, ports, exposure, name and
place in the dependency graph; the strongest signal wins and its reasons are kept."""

from __future__ import annotations

import re

from chaos_inventory.dependencies import Edge
from chaos_inventory.model import DATA_TIERS, TIER_ORDER, Workload

_WORD_TIERS = {
    **dict.fromkeys((
        "postgres", "postgresql", "postgis", "mysql", "mariadb", "mongo", "mongodb", "cassandra", "scylla",
        "cockroach", "cockroachdb", "couchdb", "couchbase", "influxdb", "neo4j", "clickhouse", "timescaledb",
        "percona", "mssql", "elasticsearch", "opensearch", "yugabyte", "tidb", "etcd", "pgbouncer",
    ), "database"),
    **dict.fromkeys(("redis", "memcached", "valkey", "keydb", "hazelcast", "dragonfly"), "cache"),
    **dict.fromkeys((
        "rabbitmq", "kafka", "nats", "activemq", "artemis", "pulsar", "nsq", "mosquitto", "emqx", "redpanda", "amqp",
    ), "queue"),
    **dict.fromkeys(("nginx", "httpd", "apache", "envoy", "haproxy", "traefik", "caddy", "openresty"), "frontend"),
    **dict.fromkeys((
        "prometheus", "grafana", "alertmanager", "exporter", "fluentd", "fluent-bit", "jaeger", "zipkin", "loki",
        "promtail", "otel", "kube-state-metrics", "busybox",
    ), "other"),
}
_WELL_KNOWN_PORTS = {
    5432: "database", 3306: "database", 27017: "database", 9042: "database", 26257: "database", 5984: "database",
    7687: "database", 6379: "cache", 11211: "cache", 5672: "queue", 5671: "queue", 9092: "queue", 4222: "queue",
    1883: "queue", 61616: "queue", 6650: "queue",
}
_LABEL_KEYS = ("tier", "app.kubernetes.io/component", "component")
_LABEL_TIERS = {
    **dict.fromkeys(("frontend", "front-end", "web", "ui", "webapp", "www", "client"), "frontend"),
    **dict.fromkeys(("backend", "back-end", "api", "server", "service", "worker", "microservice"), "backend"),
    **dict.fromkeys(("database", "db", "datastore", "storage", "postgres", "postgresql", "mysql", "mongodb"),
                    "database"),
    **dict.fromkeys(("cache", "redis", "memcached"), "cache"),
    **dict.fromkeys(("queue", "broker", "messaging", "mq", "message-queue", "rabbitmq", "kafka"), "queue"),
}
_NAME_ROLE_TIERS = {
    **dict.fromkeys(("web", "ui", "www", "frontend", "portal", "site", "webapp", "storefront", "gui"), "frontend"),
    **dict.fromkeys(("db", "database", "sql", "pg", "postgres", "postgresql", "mysql", "mariadb", "mongo", "mongodb"),
                    "database"),
    **dict.fromkeys(("cache", "redis", "memcached"), "cache"),
    **dict.fromkeys(("mq", "broker", "rabbitmq", "kafka", "nats"), "queue"),
    **dict.fromkeys(("api", "backend", "server", "service", "svc", "worker"), "backend"),
}
_VERSION_WORD = re.compile(r"^(v[0-9]+[a-z0-9]*|[0-9]+|canary|stable|primary|blue|green)$")
_WORD_SPLIT = re.compile(r"[-_.]")


def assign_tiers(workloads: list[Workload], edges: dict[tuple, Edge]) -> None:
    """Tier from the strongest signal: labels, then image, ports, exposure, name, position in the graph."""
    callers: dict[str, int] = {}
    calls: set[str] = set()
    for edge in edges.values():
        if edge.target is not None:
            callers[edge.target.id] = callers.get(edge.target.id, 0) + 1
            calls.add(edge.source.id)
    for workload in workloads:
        votes = _tier_votes(workload, callers.get(workload.id, 0), workload.id in calls)
        best = max(votes, key=lambda v: (v[0], -TIER_ORDER.index(v[1])))
        workload.tier = best[1]
        workload.tier_reasons = [reason for weight, tier, reason in sorted(votes, key=lambda v: (-v[0], v[2]))
                                 if tier == best[1]]


def _tier_votes(workload: Workload, callers: int, calls: bool) -> list[tuple[int, str, str]]:
    votes: list[tuple[int, str, str]] = []
    for key in _LABEL_KEYS:
        value = workload.labels.get(key) or workload.metadata_labels.get(key)
        if value and value.lower() in _LABEL_TIERS:
            votes.append((100, _LABEL_TIERS[value.lower()], f"label {key}={value}"))
    primary = workload.app_containers[0]
    image_name = primary.image.partition("@")[0].rpartition("/")[2].partition(":")[0].lower()
    image_words = [image_name, *_WORD_SPLIT.split(image_name)]
    image_tiers = [_WORD_TIERS[w] for w in image_words if w in _WORD_TIERS]
    if image_tiers:
        # An exporter or agent next to a data store's name is not the data store (rabbitmq-exporter).
        tier = "other" if "other" in image_tiers else image_tiers[0]
        votes.append((80 if tier != "frontend" else 60, tier, f"image {primary.image}"))
    elif "db" in image_words:
        votes.append((50, "database", f"image {primary.image} is named as a database"))
    for container in workload.app_containers:
        for number, port_name in zip(container.ports, container.port_names, strict=True):
            port_tier = _WELL_KNOWN_PORTS.get(number) or _WORD_TIERS.get(port_name.lower())
            if port_tier in DATA_TIERS:
                votes.append((70, port_tier, f"serves port {number}{f' ({port_name})' if port_name else ''}"))
    for service in workload.services:
        for port in service.ports:
            service_tier = _WELL_KNOWN_PORTS.get(port["port"])
            if service_tier:
                votes.append((70, service_tier, f"Service {service.name} serves port {port['port']}"))
        if service.exposed:
            how = service.type if service.type in ("NodePort", "LoadBalancer") else "an Ingress"
            votes.append((65, "frontend", f"exposed outside the cluster by Service {service.name} ({how})"))
    role_tier, role_reason = _name_role(workload.name)
    if role_tier:
        votes.append((35, role_tier, role_reason))
    if callers or calls:
        what = f"called by {callers} workload{'s' if callers != 1 else ''}" if callers else "calls other workloads"
        votes.append((30, "backend", f"{what} in the dependency graph"))
    if workload.kind in ("Job", "CronJob", "DaemonSet"):
        votes.append((32, "other", f"a {workload.kind}, not a long-running service"))
    elif workload.services or any(c.ports for c in workload.app_containers):
        votes.append((20, "backend", "serves traffic inside the cluster"))
    else:
        votes.append((10, "other", "serves no port"))
    return votes


def _name_role(name: str) -> tuple[str | None, str]:
    words = [w for w in name.split("-") if not _VERSION_WORD.match(w)] or [name]
    base = "-".join(words)
    if base.startswith("front") or base.endswith("page"):
        return "frontend", f"name {name} names a user-facing part"
    tier = _NAME_ROLE_TIERS.get(words[-1])
    return tier, f"name {name}" if len(words) == 1 else f"name {name} ends in {words[-1]}"
