"""Tiers (database, cache, queue, frontend, backend, other) from a workload's labels, image, ports, exposure, name and
place in the dependency graph; the strongest signal wins and its reasons are kept.

Tier `other` with a role marks what is not the application: a load generator, the observability stack, service
discovery, a chaos engine. They are recognised from general signals (the tool's image, command, well-known ports,
component labels) and from the graph: a data store only observability calls is a log or trace store, a store that
callers name as their registry is service discovery, and a workload that serves nothing and only calls what is
exposed outside the cluster is a traffic client. chaos-suggest never targets them by default.
"""

from __future__ import annotations

import re

from chaos_inventory.dependencies import Edge
from chaos_inventory.model import DATA_TIERS, TIER_ORDER, Container, Workload

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
    **dict.fromkeys(("busybox",), "other"),
}
LOAD_GENERATOR, OBSERVABILITY, DISCOVERY, CHAOS_ENGINE = "load-generator", "observability", "service-discovery", "chaos-engine"
# Words of a tool's image, command or name that say what it is; matched as whole words or whole path segments.
_ROLE_WORDS = {
    **dict.fromkeys((
        "locust", "locustio", "loadgenerator", "load-generator", "loadgen", "k6", "vegeta", "jmeter", "gatling",
        "wrk", "wrk2", "artillery", "siege", "loadtest", "load-test", "loadtester",
    ), LOAD_GENERATOR),
    **dict.fromkeys((
        "prometheus", "grafana", "alertmanager", "exporter", "node-exporter", "pushgateway", "kube-state-metrics",
        "thanos", "mimir", "victoriametrics", "fluentd", "fluent-bit", "fluentbit", "promtail", "logstash",
        "filebeat", "metricbeat", "kibana", "opensearch-dashboards", "loki", "tempo", "jaeger", "jaegertracing",
        "zipkin", "openzipkin", "otel", "otelcol", "otelcol-contrib", "opentelemetry", "opentelemetry-collector",
        "opentelemetry-collector-contrib",
    ), OBSERVABILITY),
    **dict.fromkeys(("consul", "eureka", "nacos"), DISCOVERY),
    **dict.fromkeys((
        "litmuschaos", "chaos-operator", "chaos-runner", "chaos-exporter", "chaos-mesh", "chaos-daemon",
        "chaos-controller-manager", "chaostoolkit",
    ), CHAOS_ENGINE),
}
# Ports only these tools serve: Prometheus, Alertmanager, node exporter, Zipkin, Jaeger, OTLP, Loki, Fluentd
# forward; Consul; the Locust web UI and master.
_ROLE_PORTS = {
    **dict.fromkeys((9090, 9093, 9100, 9411, 16686, 14250, 14268, 4317, 4318, 3100, 24224), OBSERVABILITY),
    8500: DISCOVERY, 8089: LOAD_GENERATOR, 5557: LOAD_GENERATOR,
}
_ROLE_LABEL_KEYS = ("app.kubernetes.io/component", "component", "tier", "app.kubernetes.io/part-of")
_ROLE_LABELS = {
    **dict.fromkeys(("monitoring", "metrics", "logging", "tracing", "observability", "telemetry"), OBSERVABILITY),
    **dict.fromkeys(("load-generator", "loadgenerator", "loadgen", "load-test", "loadtest", "load-testing"),
                    LOAD_GENERATOR),
    **dict.fromkeys(("service-discovery", "discovery"), DISCOVERY),
    **dict.fromkeys(("chaos", "chaos-engine", "litmus"), CHAOS_ENGINE),
}
_REGISTRY_WORDS = ("registry", "discovery")
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


_Vote = tuple[int, str, str, str | None]  # weight, tier, reason, role (what a tier `other` workload is)


def assign_tiers(workloads: list[Workload], edges: dict[tuple, Edge]) -> None:
    """Tier from the strongest signal: labels, then image, ports, exposure, name, position in the graph; then the
    graph's second look at what only tools call (role_from_callers)."""
    callers: dict[str, int] = {}
    callees: dict[str, list[Workload]] = {}
    for edge in edges.values():
        if edge.target is not None:
            callers[edge.target.id] = callers.get(edge.target.id, 0) + 1
            callees.setdefault(edge.source.id, []).append(edge.target)
    for workload in workloads:
        votes = _tier_votes(workload, callers.get(workload.id, 0), callees.get(workload.id, []))
        best = max(votes, key=lambda v: (v[0], -TIER_ORDER.index(v[1])))
        workload.tier = best[1]
        workload.role = best[3] if best[1] == "other" else None
        workload.tier_reasons = [reason for weight, tier, reason, _ in sorted(votes, key=lambda v: (-v[0], v[2]))
                                 if tier == best[1]]
    _roles_from_callers(workloads, edges)


def _roles_from_callers(workloads: list[Workload], edges: dict[tuple, Edge]) -> None:
    """What calls a workload can say what it is: a store that only observability tools call keeps logs or traces,
    one that its callers configure as their registry is service discovery. Neither is application data."""
    incoming: dict[str, list[Edge]] = {}
    for edge in edges.values():
        if edge.target is not None and edge.target is not edge.source:
            incoming.setdefault(edge.target.id, []).append(edge)
    for workload in workloads:
        into = sorted(incoming.get(workload.id, []), key=lambda e: e.source.id)
        if not into or workload.role is not None:
            continue
        registry = [e for e in into if any(w in ev.lower() for ev in e.evidence for w in _REGISTRY_WORDS)]
        if registry:
            _make_other(workload, DISCOVERY, f"named as a service registry by {registry[0].source.name} "
                                             f"({min(registry[0].evidence)})")
        elif workload.tier in DATA_TIERS and all(e.source.role == OBSERVABILITY for e in into):
            names = ", ".join(sorted({e.source.name for e in into}))
            _make_other(workload, OBSERVABILITY, f"a store only observability workloads call ({names}): "
                                                 "logs, metrics or traces, not application data")


def _make_other(workload: Workload, role: str, reason: str) -> None:
    workload.tier, workload.role = "other", role
    workload.tier_reasons = [reason, *workload.tier_reasons]


def _image_words(image: str) -> list[str]:
    """The path segments of an image without registry host and tag, and their words: quay.io/prometheus/node-exporter
    -> prometheus, node-exporter, node, exporter."""
    segments = image.partition("@")[0].lower().split("/")
    if len(segments) > 1 and ("." in segments[0] or ":" in segments[0] or segments[0] == "localhost"):
        segments = segments[1:]
    segments[-1] = segments[-1].partition(":")[0]
    return [word for segment in segments for word in (segment, *_WORD_SPLIT.split(segment))]


def _command_words(container: Container) -> list[str]:
    """The program a container runs, from the first word of its command and of its args (/bin/prometheus, locust)."""
    words = []
    for key in ("command", "args"):
        first = container.command_words[key][:1]
        if first and isinstance(first[0], str):
            program = first[0].rpartition("/")[2].lower()
            words += [program, *_WORD_SPLIT.split(program)]
    return words


def _role_votes(workload: Workload, callers: int, callees: list[Workload]) -> list[_Vote]:
    votes: list[_Vote] = []
    for key in _ROLE_LABEL_KEYS:
        value = (workload.labels.get(key) or workload.metadata_labels.get(key) or "").lower()
        if value in _ROLE_LABELS:
            votes.append((100, "other", f"label {key}={value} ({_ROLE_LABELS[value]})", _ROLE_LABELS[value]))
    # The first container is the workload; a sidecar (a metrics exporter next to a broker) is not.
    primary = workload.app_containers[0]
    image_roles = [_ROLE_WORDS[w] for w in _image_words(primary.image) if w in _ROLE_WORDS]
    command_roles = [(w, _ROLE_WORDS[w]) for w in _command_words(primary) if w in _ROLE_WORDS]
    if image_roles:
        votes.append((85, "other", f"image {primary.image} ({image_roles[0]})", image_roles[0]))
    elif command_roles:
        word, role = command_roles[0]
        votes.append((85, "other", f"container {primary.name} runs {word} ({role})", role))
    ports = sorted({p for c in workload.app_containers for p in c.ports} | {
        p["port"] for s in workload.services for p in s.ports})
    port_roles = [(p, _ROLE_PORTS[p]) for p in ports if p in _ROLE_PORTS]
    if port_roles:
        port, role = port_roles[0]
        votes.append((60, "other", f"serves port {port}, well known for {role}", role))
    words = [w for w in workload.name.split("-") if not _VERSION_WORD.match(w)] or [workload.name]
    named = next((w for w in ("-".join(words), words[0]) if w in _ROLE_WORDS), None)
    if named:
        votes.append((40, "other", f"name {workload.name} ({_ROLE_WORDS[named]})", _ROLE_WORDS[named]))
    serves = workload.services or any(c.ports for c in workload.app_containers)
    if callees and not callers and not serves and all(any(s.exposed for s in c.services) for c in callees):
        names = ", ".join(sorted({c.name for c in callees}))
        votes.append((45, "other", f"serves nothing and only calls what users reach ({names}): a traffic client",
                      LOAD_GENERATOR))
    return votes


def _tier_votes(workload: Workload, callers: int, callees: list[Workload]) -> list[_Vote]:
    votes = _role_votes(workload, callers, callees)
    for key in _LABEL_KEYS:
        value = workload.labels.get(key) or workload.metadata_labels.get(key)
        if value and value.lower() in _LABEL_TIERS:
            votes.append((100, _LABEL_TIERS[value.lower()], f"label {key}={value}", None))
    primary = workload.app_containers[0]
    image_name = primary.image.partition("@")[0].rpartition("/")[2].partition(":")[0].lower()
    image_words = [image_name, *_WORD_SPLIT.split(image_name)]
    image_tiers = [_WORD_TIERS[w] for w in image_words if w in _WORD_TIERS]
    if image_tiers:
        tier = "other" if "other" in image_tiers else image_tiers[0]
        votes.append((80 if tier != "frontend" else 60, tier, f"image {primary.image}", None))
    elif "db" in image_words:
        votes.append((50, "database", f"image {primary.image} is named as a database", None))
    for container in workload.app_containers:
        for number, port_name in zip(container.ports, container.port_names, strict=True):
            port_tier = _WELL_KNOWN_PORTS.get(number) or _WORD_TIERS.get(port_name.lower())
            if port_tier in DATA_TIERS:
                votes.append((70, port_tier, f"serves port {number}{f' ({port_name})' if port_name else ''}", None))
    for service in workload.services:
        for port in service.ports:
            service_tier = _WELL_KNOWN_PORTS.get(port["port"])
            if service_tier:
                votes.append((70, service_tier, f"Service {service.name} serves port {port['port']}", None))
        if service.exposed:
            how = service.type if service.type in ("NodePort", "LoadBalancer") else "an Ingress"
            votes.append((65, "frontend", f"exposed outside the cluster by Service {service.name} ({how})", None))
    role_tier, role_reason = _name_role(workload.name)
    if role_tier:
        votes.append((35, role_tier, role_reason, None))
    if callers or callees:
        what = f"called by {callers} workload{'s' if callers != 1 else ''}" if callers else "calls other workloads"
        votes.append((30, "backend", f"{what} in the dependency graph", None))
    if workload.kind in ("Job", "CronJob", "DaemonSet"):
        votes.append((32, "other", f"a {workload.kind}, not a long-running service", None))
    elif workload.services or any(c.ports for c in workload.app_containers):
        votes.append((20, "backend", "serves traffic inside the cluster", None))
    else:
        votes.append((10, "other", "serves no port", None))
    return votes


def _name_role(name: str) -> tuple[str | None, str]:
    words = [w for w in name.split("-") if not _VERSION_WORD.match(w)] or [name]
    base = "-".join(words)
    if base.startswith("front") or base.endswith("page"):
        return "frontend", f"name {name} names a user-facing part"
    tier = _NAME_ROLE_TIERS.get(words[-1])
    return tier, f"name {name}" if len(words) == 1 else f"name {name} ends in {words[-1]}"
