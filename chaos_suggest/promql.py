"""The PromQL of abort thresholds and steady-state checks, per metric family, and the names behind each.

Who reads this: the built-in planner (every query it writes comes from here), chaos-litmus (turns the queries into
promProbes), chaos-watch (evaluates them and, in its sandbox, exports the same metric names from its traffic
simulator) and whoever instruments an application for ChaosGen.

Families (chaos-inventory's --prometheus-url records which cover each workload; names checked against each
project's reference, see chaos_inventory/telemetry.py):

- istio: the caller's sidecar (reporter="source") counts the caller -> target edge, also while the target's own
  proxy is gone: istio_requests_total{reporter, source_workload(_namespace), destination_workload(_namespace),
  response_code} and istio_request_duration_milliseconds_bucket (https://istio.io/latest/docs/reference/config/metrics/).
- linkerd: the caller's proxy, direction="outbound": response_total{namespace, deployment|statefulset|...,
  dst_namespace, dst_deployment|..., classification="failure"} and response_latency_ms_bucket
  (https://linkerd.io/2/reference/proxy-metrics/).
- servicegraph: the OpenTelemetry Collector servicegraph connector / Tempo's metrics-generator:
  traces_service_graph_request_total and _failed_total{client, server} (OpenTelemetry service.name values) and
  traces_service_graph_request_client_seconds_bucket, the caller's side of the call, which includes the network a
  latency fault slows (the _server_seconds twin is measured inside the target and would not see it). An exporter
  `namespace:` prefixes the names; the Topology records the names found.
- app: the application's own convention, Prometheus client-library defaults:
    http_requests_total{namespace, service, code}                   counter, code = HTTP status ("200", "503")
    http_request_duration_seconds_bucket{namespace, service, le}    histogram of the request duration
  `service` is the workload's NAME (service="api" for shop/Deployment/api). It has no caller label, so it reads a
  caller's own error rate, not the edge: k8s/observability.yaml relabels it from app.kubernetes.io/name and the
  sandbox's traffic simulator exports it.
- Replica availability from kube-state-metrics:
    kube_deployment_status_replicas_available{namespace, deployment}
    kube_statefulset_status_replicas_ready{namespace, statefulset}
    kube_replicaset_status_ready_replicas{namespace, replicaset}

Every query returns exactly one series with no labels, also with no traffic or no series at all: aggregations
are wrapped in sum()/max(), and a value that can be NaN (0/0 of an idle edge, histogram_quantile of empty buckets)
is written `((x) >= 0) or vector(0)`: `or vector(0)` alone keeps a NaN, and a NaN compares false with everything.
Label values are single-quoted PromQL strings, which survive the double-quoted shell word Litmus puts a
promProbe query in.

Each Signal also names the selectors that must have series for its query to mean anything (`series` of a
threshold): the totals, not the error selectors, which have none until the first error.
"""

from __future__ import annotations

from dataclasses import dataclass

# The error rate a caller may show during an experiment before it is aborted (and the hypothesis fails).
ERROR_RATE_LIMIT = 0.05
# The p99 request latency a caller may show during a latency experiment.
P99_LATENCY_LIMIT_SECONDS = 1.0
RATE_WINDOW = "1m"
# Families that name both ends of a call, most precise first: a threshold on one watches the caller -> target edge.
EDGE_FAMILIES = ("istio", "linkerd", "servicegraph")
SERVICEGRAPH_REQUESTS = "traces_service_graph_request_total"

_READY_REPLICAS = {
    "Deployment": ("kube_deployment_status_replicas_available", "deployment"),
    "StatefulSet": ("kube_statefulset_status_replicas_ready", "statefulset"),
    "ReplicaSet": ("kube_replicaset_status_ready_replicas", "replicaset"),
}
READY_REPLICA_KINDS = tuple(_READY_REPLICAS)


@dataclass(frozen=True)
class Peer:
    """One end of a watched call as the metric families name it."""

    namespace: str
    kind: str
    name: str
    service: str  # its OpenTelemetry service.name, for servicegraph


@dataclass(frozen=True)
class Signal:
    """A query and the selectors that must match series now for it to be able to fire."""

    query: str
    series: tuple[str, ...]


def selector(metric: str, labels: dict[str, str], extra: str = "") -> str:
    """metric{a='x',b='y'<extra>} with single-quoted values (PromQL string literals; no quote to escape in names)."""
    matchers = ",".join(f"{key}={_quoted(value)}" for key, value in labels.items())
    return f"{metric}{{{matchers}{extra}}}"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _non_negative(expression: str) -> str:
    """expression, or 0 where it is NaN or has no series: the NaN-safe form of every ratio and quantile."""
    return f"(({expression}) >= 0) or vector(0)"


def _rate(selector_text: str) -> str:
    return f"sum(rate({selector_text}[{RATE_WINDOW}]))"


@dataclass(frozen=True)
class _Family:
    requests: str  # the counter of every request
    failed: str | None  # a separate counter of failed requests (servicegraph), else None
    error_matcher: str  # the matcher that keeps failed requests of `requests`
    buckets: str  # the latency histogram's _bucket series
    seconds_per_unit: float

    def labels(self, watched: Peer, target: Peer) -> dict[str, str]:
        raise NotImplementedError


class _Istio(_Family):
    def labels(self, watched: Peer, target: Peer) -> dict[str, str]:
        return {"reporter": "source", "source_workload_namespace": watched.namespace, "source_workload": watched.name,
                "destination_workload_namespace": target.namespace, "destination_workload": target.name}


class _Linkerd(_Family):
    def labels(self, watched: Peer, target: Peer) -> dict[str, str]:
        return {"direction": "outbound", "namespace": watched.namespace, watched.kind.lower(): watched.name,
                "dst_namespace": target.namespace, f"dst_{target.kind.lower()}": target.name}


class _Servicegraph(_Family):
    def labels(self, watched: Peer, target: Peer) -> dict[str, str]:
        # No namespace: client_/server_k8s_namespace_name exist only where the connector is configured with them.
        return {"client": watched.service, "server": target.service}


class _App(_Family):
    def labels(self, watched: Peer, target: Peer) -> dict[str, str]:
        return {"namespace": watched.namespace, "service": watched.name}


def _family(name: str, prefix: str = "") -> _Family:
    if name == "istio":
        return _Istio("istio_requests_total", None, ",response_code=~'5..'", "istio_request_duration_milliseconds_bucket", 1000)
    if name == "linkerd":
        return _Linkerd("response_total", None, ",classification='failure'", "response_latency_ms_bucket", 1000)
    if name == "servicegraph":
        return _Servicegraph(f"{prefix}traces_service_graph_request_total", f"{prefix}traces_service_graph_request_failed_total",
                             "", f"{prefix}traces_service_graph_request_client_seconds_bucket", 1)
    if name == "app":
        return _App("http_requests_total", None, ",code=~'5..'", "http_request_duration_seconds_bucket", 1)
    raise ValueError(f"no metric family {name}")


def error_rate(family: str, watched: Peer, target: Peer, prefix: str = "") -> Signal:
    """The share of failed requests of the watched caller's calls to target (app: of everything the watched
    workload serves, the convention has no caller label); 0 with no traffic. prefix: servicegraph's exporter
    namespace."""
    spec = _family(family, prefix)
    labels = spec.labels(watched, target)
    total = selector(spec.requests, labels)
    errors = selector(spec.failed, labels) if spec.failed else selector(spec.requests, labels, spec.error_matcher)
    return Signal(_non_negative(f"{_rate(errors)} / {_rate(total)}"), (total,))


def p99_latency(family: str, watched: Peer, target: Peer, prefix: str = "") -> Signal:
    """The 99th percentile duration in seconds of the watched caller's calls to target (app: of the watched
    workload's requests); 0 with no traffic."""
    spec = _family(family, prefix)
    buckets = selector(spec.buckets, spec.labels(watched, target))
    quantile = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{RATE_WINDOW}])))"
    if spec.seconds_per_unit != 1:
        quantile = f"{quantile} / {spec.seconds_per_unit:g}"
    return Signal(_non_negative(quantile), (buckets,))


def ready_replicas(namespace: str, kind: str, name: str) -> Signal:
    """The ready (available) replicas of a workload from kube-state-metrics, 0 when it has none or is gone."""
    metric, label = _READY_REPLICAS[kind]
    replicas = selector(metric, {"namespace": namespace, label: name})
    return Signal(f"max({replicas}) or vector(0)", (replicas,))


def family_of(metric: str) -> str | None:
    """The telemetry family a metric name belongs to (None: kube-state-metrics or anything else); the LLM guard
    rejects a query on a family the Topology's telemetry did not find."""
    if metric.startswith("istio_"):
        return "istio"
    if metric in ("request_total", "response_total", "tcp_open_total", "tcp_close_total") or metric.startswith("response_latency_ms"):
        return "linkerd"
    if "traces_service_graph_" in metric:
        return "servicegraph"
    if metric == "http_requests_total" or metric.startswith("http_request_duration_seconds"):
        return "app"
    return None


def servicegraph_prefix(metric_names: list[str]) -> str:
    """The exporter namespace in front of the servicegraph names the Topology recorded ("" for none)."""
    found = [name[: -len(SERVICEGRAPH_REQUESTS)] for name in metric_names if name.endswith(SERVICEGRAPH_REQUESTS)]
    return min(found, default="")
