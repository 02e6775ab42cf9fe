"""The PromQL of abort thresholds and steady-state checks, and the metric-name convention behind it.

Who reads this: the built-in planner (every query it writes comes from here), chaos-litmus (turns the queries into
promProbes), chaos-watch (evaluates them and, in its sandbox, exports the same metric names from its traffic
simulator) and whoever instruments an application for ChaosGen.

Convention (what an application and the cluster must expose):

- Application traffic, one family per HTTP server, Prometheus client-library defaults:
    http_requests_total{namespace, service, code}                   counter, code = HTTP status ("200", "503")
    http_request_duration_seconds_bucket{namespace, service, le}    histogram of the request duration
  `namespace` is the workload's namespace and `service` is the workload's NAME (the Deployment/StatefulSet
  name: service="api" for shop/Deployment/api), whatever its Kubernetes Services are called. The app can set it
  itself, or the scrape config relabels it from a pod label that carries the workload name: k8s/observability.yaml
  copies app.kubernetes.io/name, which the demo app sets to the workload name; chaos-watch's sandbox traffic
  simulator exports the same.
- Replica availability from kube-state-metrics:
    kube_deployment_status_replicas_available{namespace, deployment}
    kube_statefulset_status_replicas_ready{namespace, statefulset}
    kube_replicaset_status_ready_replicas{namespace, replicaset}

Every query returns exactly one series with no labels, also when the app has no traffic yet or the metric is
absent: aggregations are wrapped in sum()/max() and completed with `or vector(0)`; ratios divide by
clamp_min(..., 1e-9) so that an idle service reads 0, not NaN.
"""

from __future__ import annotations

# The error rate a caller may show during an experiment before it is aborted (and the hypothesis fails).
ERROR_RATE_LIMIT = 0.05
# The p99 request latency a caller may show during a latency experiment.
P99_LATENCY_LIMIT_SECONDS = 1.0
RATE_WINDOW = "1m"

_READY_REPLICAS = {
    "Deployment": ("kube_deployment_status_replicas_available", "deployment"),
    "StatefulSet": ("kube_statefulset_status_replicas_ready", "statefulset"),
    "ReplicaSet": ("kube_replicaset_status_ready_replicas", "replicaset"),
}
READY_REPLICA_KINDS = tuple(_READY_REPLICAS)


def _requests(namespace: str, service: str, extra: str = "") -> str:
    return f'sum(rate(http_requests_total{{namespace="{namespace}",service="{service}"{extra}}}[{RATE_WINDOW}]))'


def error_rate(namespace: str, service: str) -> str:
    """The share of 5xx responses of one service, 0 when it has no traffic."""
    errors = _requests(namespace, service, ',code=~"5.."')
    total = _requests(namespace, service)
    return f"({errors} or vector(0)) / clamp_min({total} or vector(0), 1e-9)"


def p99_latency(namespace: str, service: str) -> str:
    """The 99th percentile request duration of one service in seconds, 0 when it has no traffic."""
    buckets = f'http_request_duration_seconds_bucket{{namespace="{namespace}",service="{service}"}}'
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{RATE_WINDOW}]))) or vector(0)"


def ready_replicas(namespace: str, kind: str, name: str) -> str:
    """The ready (available) replicas of a workload from kube-state-metrics, 0 when it has none or is gone."""
    metric, label = _READY_REPLICAS[kind]
    return f'max({metric}{{namespace="{namespace}",{label}="{name}"}}) or vector(0)'
