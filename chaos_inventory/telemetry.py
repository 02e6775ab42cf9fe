"""Who calls whom, as the traffic in Prometheus shows it: the queries to send and what their answers mean.

Pure: chaos-inventory's CLI detects the metric names Prometheus has, sends plan(names, window)'s queries (a handful
of aggregates per family over the window, never one per edge) and hands the answers to observe(), which maps the
series onto the Topology's workloads. dependencies.merge_observed() then adds, confirms or demotes edges.

Families and the facts each mapping relies on (checked against each project's source or reference):

- istio: istio_requests_total and istio_tcp_connections_opened_total with source_workload(_namespace),
  destination_workload(_namespace), destination_service_name, reporter and response_code
  (https://istio.io/latest/docs/reference/config/metrics/). Both proxies of an edge report it (reporter="source"
  from the client, "destination" from the server): the client's count is used, the server's only when the client
  has no proxy. Peers it cannot name are `unknown`; PassthroughCluster, BlackHoleCluster and
  InboundPassthroughClusterIpv4 are traffic to or from outside the mesh, not an edge.
- linkerd: response_total and tcp_open_total with direction, classification ("success"/"failure") and the
  outbound labels dst_namespace, dst_deployment, dst_statefulset... beside the scrape config's namespace,
  deployment, statefulset... (https://linkerd.io/2/reference/proxy-metrics/). Only direction="outbound" series
  name both ends: inbound ones carry the client's service account only.
- servicegraph: the OpenTelemetry Collector servicegraph connector and Tempo's metrics-generator emit
  traces_service_graph_request_total and _failed_total{client, server, connection_type}
  (opentelemetry-collector-contrib connector/servicegraphconnector/README.md and connector.go; grafana/tempo
  docs/sources/tempo/metrics-generator/service_graphs). client and server are OpenTelemetry service.name values,
  not workloads, and carry a namespace only when the dimension k8s.namespace.name is configured (then as
  client_k8s_namespace_name / server_k8s_namespace_name: dimensions get the client_/server_ prefix). A caller
  without instrumentation is the virtual node `user` (connector.go onExpire, connection_type="virtual_node").
  connection_type="messaging_system" edges run producer -> consumer through a broker (asynchronous, not hard);
  "database" edges name the server by db.name. An exporter `namespace:` prefixes the metric names, so names
  are matched by suffix.
- app: chaos_suggest/promql.py's convention http_requests_total{namespace, service, code}. It has no caller
  label, so it covers workloads (thresholds can use it) but shows no edge.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from chaos_inventory.model import Workload

FAMILIES = ("istio", "linkerd", "servicegraph", "app")
# Families whose series name both ends of a call: only these show edges and can prove an edge idle.
EDGE_FAMILIES = ("istio", "linkerd", "servicegraph")
DURATION = re.compile(r"^([0-9]+(ms|[smhdwy]))+$")

ISTIO_REQUESTS, ISTIO_TCP = "istio_requests_total", "istio_tcp_connections_opened_total"
LINKERD_RESPONSES, LINKERD_TCP = "response_total", "tcp_open_total"
SERVICEGRAPH_REQUESTS, SERVICEGRAPH_FAILED = "traces_service_graph_request_total", "traces_service_graph_request_failed_total"
APP_REQUESTS = "http_requests_total"

_ISTIO_NOT_PEERS = frozenset({"", "unknown", "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughClusterIpv4",
                              "InboundPassthroughClusterIpv6"})
_ISTIO_LABELS = ("reporter", "source_workload", "source_workload_namespace", "destination_workload",
                 "destination_workload_namespace", "destination_service_name")
# Linkerd's workload labels (the Prometheus scrape config of linkerd-viz adds them from the pod's owner).
LINKERD_KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet",
                 "replicaset": "ReplicaSet", "job": "Job", "cronjob": "CronJob"}
_LINKERD_LABELS = ("namespace", *LINKERD_KINDS, "dst_namespace", *(f"dst_{kind}" for kind in LINKERD_KINDS))
_SERVICEGRAPH_LABELS = ("client", "server", "connection_type", "client_k8s_namespace_name", "server_k8s_namespace_name")
# Workload kinds in the order a bare workload name (Istio's source_workload) is resolved when several share it.
_NAME_PRIORITY = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "CronJob", "Job", "Pod")
OBSERVED_CONFIDENCE = 0.99
IDLE_CONFIDENCE = 0.4


@dataclass(frozen=True, slots=True)
class Query:
    """One aggregate query: which family, which metric it reads, what its values count, and the PromQL."""

    id: str
    family: str
    metric: str
    counts: str  # "requests", "errors" or "connections"
    promql: str


@dataclass(frozen=True, slots=True)
class Traffic:
    """What one metric of one family shows of one caller -> target edge in the window."""

    family: str
    metric: str
    requests: int
    errors: int | None  # None for connection counts, which know no errors
    hard: bool  # a synchronous call or a database; messaging edges are not


@dataclass(frozen=True, slots=True)
class Readings:
    """What the CLI read from Prometheus: the detected metrics, the queries sent and their answers by query id."""

    window: str
    metrics: dict[str, list[str]]
    queries: list[Query]
    answers: dict[str, list[dict]]


@dataclass(slots=True)
class Observation:
    """observe()'s answer: traffic per (caller id, target id), the families that cover each workload, noise."""

    window: str
    metrics: dict[str, list[str]]
    queries: int
    edges: dict[tuple[str, str], list[Traffic]] = field(default_factory=dict)
    coverage: dict[str, set[str]] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)


def detected(metric_names: list[str]) -> dict[str, list[str]]:
    """The families whose metrics Prometheus has, with those metric names; called with label_values("__name__")."""
    names = set(metric_names)
    found: dict[str, list[str]] = {}
    for family, wanted in (("istio", (ISTIO_REQUESTS, ISTIO_TCP)), ("linkerd", (LINKERD_RESPONSES, LINKERD_TCP)),
                           ("app", (APP_REQUESTS,))):
        present = [name for name in wanted if name in names]
        if present:
            found[family] = present
    servicegraph = sorted(n for n in names if n.endswith(SERVICEGRAPH_REQUESTS) or n.endswith(SERVICEGRAPH_FAILED))
    if any(n.endswith(SERVICEGRAPH_REQUESTS) for n in servicegraph):
        found["servicegraph"] = servicegraph
    return found


def plan(metrics: dict[str, list[str]], window: str) -> list[Query]:
    """The aggregate queries for the detected families: at most three per family whatever the cluster's size."""

    def total(metric: str, labels: tuple[str, ...], matchers: str = "") -> str:
        return f"sum by ({', '.join(labels)}) (increase({metric}{matchers}[{window}]))"

    queries: list[Query] = []
    for metric in metrics.get("istio", ()):
        counts = "requests" if metric == ISTIO_REQUESTS else "connections"
        queries.append(Query(f"istio:{counts}", "istio", metric, counts, total(metric, _ISTIO_LABELS)))
        if metric == ISTIO_REQUESTS:
            queries.append(Query("istio:errors", "istio", metric, "errors",
                                 total(metric, _ISTIO_LABELS, '{response_code=~"5.."}')))
    for metric in metrics.get("linkerd", ()):
        counts = "requests" if metric == LINKERD_RESPONSES else "connections"
        queries.append(Query(f"linkerd:{counts}", "linkerd", metric, counts,
                             total(metric, _LINKERD_LABELS, '{direction="outbound"}')))
        if metric == LINKERD_RESPONSES:
            queries.append(Query("linkerd:errors", "linkerd", metric, "errors",
                                 total(metric, _LINKERD_LABELS, '{direction="outbound",classification="failure"}')))
    for metric in metrics.get("servicegraph", ()):
        counts = "errors" if metric.endswith(SERVICEGRAPH_FAILED) else "requests"
        queries.append(Query(f"servicegraph:{counts}:{metric}", "servicegraph", metric, counts,
                             total(metric, _SERVICEGRAPH_LABELS)))
    if "app" in metrics:
        queries.append(Query("app:requests", "app", APP_REQUESTS, "requests",
                             total(APP_REQUESTS, ("namespace", "service"))))
    return queries


class WorkloadNames:
    """The names telemetry uses for the Topology's workloads: Kubernetes names and OpenTelemetry service names."""

    def __init__(self, workloads: list[Workload]) -> None:
        self.by_kind: dict[tuple[str, str, str], str] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.by_service: dict[str, list[tuple[str, str]]] = {}  # service.name -> [(namespace, workload id)]
        ranked = sorted(workloads, key=lambda w: (_NAME_PRIORITY.index(w.kind) if w.kind in _NAME_PRIORITY else 99, w.id))
        for workload in ranked:
            self.by_kind[(workload.namespace, workload.kind, workload.name)] = workload.id
            self.by_name.setdefault((workload.namespace, workload.name), workload.id)
            self.by_service.setdefault(service_name(workload), []).append((workload.namespace, workload.id))

    def named(self, namespace: str | None, name: str | None) -> str | None:
        return self.by_name.get((namespace, name)) if namespace and name else None

    def service(self, name: str | None, namespace: str | None) -> str | None:
        """The one workload whose service.name this is (in namespace when the series has one); None if not one."""
        candidates = [w for ns, w in self.by_service.get(name or "", ()) if namespace in (None, "", ns)]
        return candidates[0] if len(candidates) == 1 else None


def service_name(workload: Workload) -> str:
    """The service.name a workload's spans carry: OTEL_SERVICE_NAME, service.name in OTEL_RESOURCE_ATTRIBUTES
    (literal env values only, the SDKs' order), the app.kubernetes.io/name label, else the workload's name.
    The values stay inside chaos-inventory: they are matched, never written out."""
    for container in workload.app_containers:
        values: dict[str, str] = {item["name"]: item["value"] for item in container.env if isinstance(item.get("value"), str)}
        name = values.get("OTEL_SERVICE_NAME", "").strip()
        if name and "$(" not in name:
            return name
        for pair in values.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
            key, _, value = pair.partition("=")
            if key.strip() == "service.name" and value.strip() and "$(" not in value:
                return value.strip()
    return workload.labels.get("app.kubernetes.io/name") or workload.name


def observe(readings: Readings, workloads: list[Workload]) -> Observation:
    """The traffic the readings show between the Topology's workloads; called by core.build_topology.

    readings.answers maps each query id to its series as {"labels": {...}, "value": float}. Noise is counted in `ignored`
    by reason, never made an edge: unknown or outside callers (Prometheus scrapes, kube-probe), mesh passthrough,
    the `user` virtual node, self-loops and ends that are not workloads of the Topology."""
    names = WorkloadNames(workloads)
    observation = Observation(readings.window, readings.metrics, len(readings.queries) + 1)  # + the name look-up
    # (from, to, family, metric) -> reporter -> [requests, errors]; reporter is "" outside Istio.
    counted: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    hard_of: dict[tuple[str, str, str, str], bool] = {}
    for query in readings.queries:
        for series in readings.answers.get(query.id, ()):
            labels, value = series["labels"], float(series["value"])
            if query.family == "app":
                workload = names.named(labels.get("namespace"), labels.get("service"))
                if workload:
                    observation.coverage.setdefault(workload, set()).add("app")
                continue
            source, target, hard, noise = _ends(query.family, labels, names)
            for workload in (source, target):
                if workload is not None:
                    observation.coverage.setdefault(workload, set()).add(query.family)
            if noise or source is None or target is None:
                observation.ignored[noise or "caller or target not a workload of the topology"] += 1
                continue
            if source == target:
                observation.ignored["self-loop"] += 1
                continue
            metric = query.metric.replace("_failed_total", "_total") if query.family == "servicegraph" else query.metric
            key = (source, target, query.family, metric)
            reporter = labels.get("reporter", "") if query.family == "istio" else ""
            slot = counted.setdefault(key, {}).setdefault(reporter, [0.0, 0.0])
            slot[1 if query.counts == "errors" else 0] += value
            hard_of[key] = hard_of.get(key, False) or hard
    for key, by_reporter in sorted(counted.items()):
        # Both Istio proxies report an edge: the client's count when it has a proxy, else the server's.
        requests, errors = next((by_reporter[r] for r in ("", "source", "destination") if by_reporter.get(r, [0])[0] > 0),
                                (0.0, 0.0))
        total = round(requests)
        if total <= 0:
            continue
        source, target, family, metric = key
        connections = metric in (ISTIO_TCP, LINKERD_TCP)
        observation.edges.setdefault((source, target), []).append(
            Traffic(family, metric, total, None if connections else min(round(errors), total), hard_of[key]))
    return observation


def _ends(family: str, labels: dict[str, str], names: WorkloadNames) -> tuple[str | None, str | None, bool, str | None]:
    """(caller id, target id, hard, why it is no edge) of one series; an end that is no workload of the Topology
    is None. An end that resolves is covered by the family even when the other end is noise."""
    if family == "istio":
        source_name, target_name = labels.get("source_workload", ""), labels.get("destination_workload", "")
        source = names.named(labels.get("source_workload_namespace"), source_name)
        target = names.named(labels.get("destination_workload_namespace"), target_name)
        peers = {source_name, target_name, *filter(None, [labels.get("destination_service_name")])}
        noise = "unknown or passthrough peer" if peers & _ISTIO_NOT_PEERS else None
        return source, target, True, noise
    if family == "linkerd":
        return _linkerd_workload(labels, "", names), _linkerd_workload(labels, "dst_", names), True, None
    connection = labels.get("connection_type", "")
    client = labels.get("client", "")
    source = names.service(client, labels.get("client_k8s_namespace_name"))
    target = names.service(labels.get("server", ""), labels.get("server_k8s_namespace_name"))
    noise = None
    if client == "user" and (connection == "virtual_node" or source is None):
        noise = "uninstrumented caller (user)"
        source = None
    return source, target, connection != "messaging_system", noise


def _linkerd_workload(labels: dict[str, str], prefix: str, names: WorkloadNames) -> str | None:
    namespace = labels.get(f"{prefix}namespace")
    for label, kind in LINKERD_KINDS.items():
        name = labels.get(f"{prefix}{label}")
        if name:
            return names.by_kind.get((namespace or "", kind, name))
    return None


def traffic_evidence(traffic: Traffic, window: str) -> dict:
    """The evidence record of observed traffic on a dependency, as the topology schema defines it."""
    ratio = None if traffic.errors is None else round(traffic.errors / traffic.requests, 4)
    unit = "connections" if traffic.errors is None else "requests"
    errors = "" if ratio is None else f", {ratio:.2%} errors"
    return {"source": traffic.family, "metric": traffic.metric, "requests": traffic.requests, "error_ratio": ratio,
            "window": window, "summary": f"observed: {traffic.requests} {unit}{errors} in {window}"}


def idle_evidence(family: str, metrics: dict[str, list[str]], window: str) -> dict:
    """The evidence that a configured dependency carried no traffic although `family` covers both its ends."""
    return {"source": family, "metric": metrics[family][0].replace("_failed_total", "_total"), "requests": 0,
            "error_ratio": None, "window": window, "summary": f"configured, no traffic in {window}"}


def summary(observation: Observation, added: int, idle: int) -> dict:
    """The Topology's `telemetry` record: what was read and what it changed."""
    return {
        "window": observation.window,
        "families": {family: {"metrics": observation.metrics[family]} for family in FAMILIES if family in observation.metrics},
        "queries": observation.queries,
        "observed_dependencies": len(observation.edges),
        "added_dependencies": added,
        "idle_dependencies": idle,
        "ignored_series": dict(sorted(observation.ignored.items())),
    }
