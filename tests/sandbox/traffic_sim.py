"""A traffic simulator that plays the application in the sandbox, where kwok's pods run no code.

From a Topology (services, hard dependencies) and the live EndpointSlices (watch API), each service answers when
it has a ready endpoint and every service it hard-depends on answers. Steady synthetic traffic hits every
service; the outcomes are exported on 127.0.0.1:<port>/metrics in Prometheus's text format with the names of the
convention in chaos_suggest/promql.py:

    http_requests_total{namespace, service, code}            counter (code "200" or "503")
    http_request_duration_seconds_bucket/_sum/_count{namespace, service, le}   histogram

`service` is the workload name, as the convention says. That is the `app` family; per namespace the simulator
can export instead what a mesh or a tracing pipeline would (families=), for every call a caller makes to a
workload it hard-depends on, in the caller's namespace's family (its proxy or its client spans count the call):

    istio           istio_requests_total{reporter, source_workload(_namespace), destination_workload(_namespace),
                    destination_service_name, response_code} (both reporters) and
                    istio_request_duration_milliseconds_bucket{reporter="source", ...}
    linkerd         response_total{direction="outbound", namespace, <kind>, dst_namespace, dst_<kind>,
                    classification} and response_latency_ms_bucket{...}
    servicegraph    traces_service_graph_request_total / _failed_total{client, server, connection_type} and
                    traces_service_graph_request_client_seconds_bucket{client, server}

A call no manifest shows (code_only=[(caller id, callee id)]) is made like the others and the caller needs it;
a configured edge in never_called=[...] is never called (the shared-ConfigMap address nobody uses).

It also stands in for kube-state-metrics, from the live
Deployments, StatefulSets and ReplicaSets of the same namespaces (watch API, so a scrape costs no API call):

    kube_deployment_status_replicas_available{namespace, deployment}    gauge (status.availableReplicas)
    kube_statefulset_status_replicas_ready{namespace, statefulset}      gauge (status.readyReplicas)
    kube_replicaset_status_ready_replicas{namespace, replicaset}        gauge (status.readyReplicas)

Hand-rolled exposition (a few lines) instead of prometheus_client, so the tests need no extra package.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("traffic-sim")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_SECONDS = 0.1
OK_LATENCY, FAILED_LATENCY, HOP_LATENCY = 0.004, 0.03, 0.003
# Watched kind -> (AppsV1Api list method, kube-state-metrics gauge, its object label, the status field it reports).
REPLICA_GAUGES = {
    "Deployment": ("list_namespaced_deployment", "kube_deployment_status_replicas_available", "deployment",
                   "availableReplicas"),
    "StatefulSet": ("list_namespaced_stateful_set", "kube_statefulset_status_replicas_ready", "statefulset",
                    "readyReplicas"),
    "ReplicaSet": ("list_namespaced_replica_set", "kube_replicaset_status_ready_replicas", "replicaset",
                   "readyReplicas"),
}
GaugeKey = tuple[str, str, str, str]  # (metric, namespace, object label, object name)


def replica_gauge(kind: str, obj: dict[str, Any]) -> tuple[GaugeKey, float]:
    """The kube-state-metrics series of a live workload object (raw JSON) and its value; absent status reads 0."""
    _, metric, label, field = REPLICA_GAUGES[kind]
    metadata = obj["metadata"]
    return (metric, metadata["namespace"], label, metadata["name"]), float((obj.get("status") or {}).get(field) or 0)


class Application:
    """Who answers, from the dependency graph and which services have ready endpoints. Pure; the simulator feeds it."""

    def __init__(self, topology: dict[str, Any], code_only: Iterable[tuple[str, str]] = (),
                 never_called: Iterable[tuple[str, str]] = ()) -> None:
        self.workloads: dict[str, tuple[str, str]] = {}  # workload id -> (namespace, name)
        for service in topology.get("services", []):
            for workload in service.get("selects", []):
                namespace, _, name = workload.split("/")
                self.workloads[workload] = (namespace, name)
        self.serving: dict[str, list[str]] = defaultdict(list)  # workload id -> its services' ids
        for service in topology.get("services", []):
            for workload in service.get("selects", []):
                self.serving[workload].append(service["id"])
        self.hard: dict[str, list[str]] = defaultdict(list)
        idle = set(never_called)
        for dependency in topology.get("dependencies", []):
            edge = (dependency["from"], dependency["to"])
            if dependency.get("hard", True) and not dependency.get("external") and dependency["to"] in self.workloads \
                    and edge not in idle:
                self.hard[dependency["from"]].append(dependency["to"])
        for caller, callee in code_only:
            self.hard[caller].append(callee)

    def answering(self, ready_services: set[str]) -> dict[str, bool]:
        """workload id -> whether a request to it succeeds, given the ids of services with a ready endpoint."""
        memo: dict[str, bool] = {}

        def answers(workload: str, path: tuple[str, ...]) -> bool:
            if workload in memo:
                return memo[workload]
            if workload in path:  # a cycle: nothing more to learn on this path
                return True
            up = any(s in ready_services for s in self.serving[workload]) and all(
                answers(d, path + (workload,)) for d in self.hard[workload])
            memo[workload] = up
            return up

        return {workload: answers(workload, ()) for workload in self.workloads}

    def depth(self, workload: str, path: tuple[str, ...] = ()) -> int:
        """Hops below a workload, for a plausible latency."""
        if workload in path:
            return 0
        return 1 + max((self.depth(d, path + (workload,)) for d in self.hard[workload]), default=0)


FAMILIES = ("app", "istio", "linkerd", "servicegraph")
Labels = tuple[tuple[str, str], ...]


def _peer(workload: str) -> tuple[str, str, str]:
    namespace, kind, name = workload.split("/")
    return namespace, kind, name


def edge_series(family: str, caller: str, callee: str, ok: bool) -> tuple[str, Labels, str, Labels, float]:
    """(counter, its labels, histogram, its labels, histogram unit in seconds) of one call in a mesh family; the
    counter of a failed servicegraph call is _failed_total (counted beside the _total every call adds)."""
    (cns, ckind, cname), (tns, tkind, tname) = _peer(caller), _peer(callee)
    if family == "istio":
        ends = (("source_workload", cname), ("source_workload_namespace", cns), ("destination_workload", tname),
                ("destination_workload_namespace", tns), ("destination_service_name", tname))
        return ("istio_requests_total", (("reporter", "source"), *ends, ("response_code", "200" if ok else "503")),
                "istio_request_duration_milliseconds_bucket", (("reporter", "source"), *ends), 0.001)
    if family == "linkerd":
        ends = (("direction", "outbound"), ("namespace", cns), (ckind.lower(), cname), ("dst_namespace", tns),
                (f"dst_{tkind.lower()}", tname))
        return ("response_total", (*ends, ("classification", "success" if ok else "failure")),
                "response_latency_ms_bucket", ends, 0.001)
    if family == "servicegraph":
        ends = (("client", cname), ("server", tname))
        return ("traces_service_graph_request_total", (*ends, ("connection_type", "")),
                "traces_service_graph_request_client_seconds_bucket", ends, 1.0)
    raise ValueError(f"no edge family {family}")


class Metrics:
    """Counters and histograms in memory, rendered in the text exposition format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[tuple[str, Labels], float] = defaultdict(float)  # the mesh families' series
        self.histograms: dict[tuple[str, Labels], list[float]] = {}  # per bound of BUCKETS, then +Inf
        self.requests: dict[tuple[str, str, str], float] = defaultdict(float)
        self.buckets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(BUCKETS))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[GaugeKey, float] = {}
        self._units: dict[str, float] = {}

    def set_gauge(self, key: GaugeKey, value: float | None) -> None:
        """Set a gauge series, or drop it with None (its object is gone)."""
        with self.lock:
            if value is None:
                self.gauges.pop(key, None)
            else:
                self.gauges[key] = value

    def observe(self, namespace: str, service: str, code: str, latency: float, count: int) -> None:
        with self.lock:
            self.requests[(namespace, service, code)] += count
            key = (namespace, service)
            for index, bound in enumerate(BUCKETS):
                if latency <= bound:
                    self.buckets[key][index] += count
            self.sums[key] += latency * count
            self.counts[key] += count

    def observe_call(self, family: str, caller: str, callee: str, ok: bool, latency: float, count: int) -> None:
        """count calls caller -> callee (workload ids) as the family's proxies or spans would count them."""
        counter, labels, histogram, histogram_labels, unit = edge_series(family, caller, callee, ok)
        with self.lock:
            self.counters[(counter, labels)] += count
            if family == "istio":  # the destination's proxy reports the call too
                self.counters[(counter, (("reporter", "destination"), *labels[1:]))] += count
            if family == "servicegraph" and not ok:
                self.counters[("traces_service_graph_request_failed_total", labels)] += count
            buckets = self.histograms.setdefault((histogram, histogram_labels), [0.0] * (len(BUCKETS) + 1))
            for index, bound in enumerate((*BUCKETS, float("inf"))):
                if latency <= bound:
                    buckets[index] += count
            self._units[histogram] = unit

    def _render_mesh(self) -> list[str]:
        lines = []
        for metric in sorted({name for name, _ in self.counters}):
            lines.append(f"# TYPE {metric} counter")
            lines += [f"{metric}{{{_labels(labels)}}} {value:g}" for (name, labels), value in sorted(self.counters.items())
                      if name == metric]
        for metric in sorted({name for name, _ in self.histograms}):
            unit = self._units[metric]
            lines.append(f"# TYPE {metric.removesuffix('_bucket')} histogram")
            for (name, labels), buckets in sorted(self.histograms.items()):
                if name == metric:
                    bounds = [f"{bound / unit:g}" for bound in BUCKETS] + ["+Inf"]
                    lines += [f'{metric}{{{_labels(labels)},le="{bound}"}} {value:g}' for bound, value in zip(bounds, buckets, strict=True)]
        return lines

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP http_requests_total Requests served, by status code.", "# TYPE http_requests_total counter"]
            for (namespace, service, code), value in sorted(self.requests.items()):
                lines.append(f'http_requests_total{{namespace="{namespace}",service="{service}",code="{code}"}} {value:g}')
            lines += ["# HELP http_request_duration_seconds Request duration.", "# TYPE http_request_duration_seconds histogram"]
            for key in sorted(self.counts):
                namespace, service = key
                labels = f'namespace="{namespace}",service="{service}"'
                for bound, value in zip(BUCKETS, self.buckets[key], strict=True):
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound:g}"}} {value:g}')
                lines.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {self.counts[key]:g}')
                lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self.sums[key]:.6f}")
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {self.counts[key]:g}")
            lines += self._render_mesh()
            for metric in sorted({key[0] for key in self.gauges}):
                lines += [f"# HELP {metric} As kube-state-metrics reports it.", f"# TYPE {metric} gauge"]
                for (name, namespace, label, value_of), value in sorted(self.gauges.items()):
                    if name == metric:
                        lines.append(f'{metric}{{namespace="{namespace}",{label}="{value_of}"}} {value:g}')
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    return ",".join(f'{key}="{value}"' for key, value in labels)


class TrafficSim:
    """The running simulator: watches (EndpointSlices, and the workloads for the replica gauges), a traffic loop and
    the /metrics server. start() returns once every watch has listed its objects."""

    def __init__(self, kubeconfig: str, topology: dict[str, Any], requests_per_second: int = 20,
                 families: dict[str, str] | None = None, code_only: Iterable[tuple[str, str]] = (),
                 never_called: Iterable[tuple[str, str]] = ()) -> None:
        """families: namespace -> the family its request metrics are exported in (default app)."""
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        discovery, apps = client.DiscoveryV1Api(self.api_client), client.AppsV1Api(self.api_client)
        self.listers = {"EndpointSlice": discovery.list_namespaced_endpoint_slice,
                        **{kind: getattr(apps, method) for kind, (method, *_) in REPLICA_GAUGES.items()}}
        self.app = Application(topology, code_only, never_called)
        self.families = families or {}
        assert set(self.families.values()) <= set(FAMILIES), self.families
        self.namespaces = sorted({ns for ns, _ in self.app.workloads.values()})
        self.per_tick = max(1, round(requests_per_second * TICK_SECONDS))
        self.metrics = Metrics()
        self.ready_endpoints: dict[str, tuple[str, int]] = {}  # slice uid -> (service id, ready endpoints)
        self.gauge_keys: dict[str, GaugeKey] = {}  # workload uid -> its replica gauge
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.unsynced = {(ns, kind) for ns in self.namespaces for kind in self.listers}
        self.synced = threading.Event()
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.render().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True, name="sim-http"),
                        threading.Thread(target=self._traffic, daemon=True, name="sim-traffic")]
        self.threads += [threading.Thread(target=self._watch, args=(ns, kind), daemon=True, name=f"sim-{kind}-{ns}")
                         for ns, kind in sorted(self.unsynced)]

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> TrafficSim:
        for thread in self.threads:
            thread.start()
        self.synced.wait(30)
        return self

    def close(self) -> None:
        self.halt.set()
        self.server.shutdown()
        self.server.server_close()

    def ready_services(self) -> set[str]:
        with self.lock:
            return {service for service, ready in self.ready_endpoints.values() if ready > 0}

    def _traffic(self) -> None:
        # Before the first lists every service would look down and the first scrapes would show a burst of errors.
        self.synced.wait(30)
        next_tick = time.monotonic()
        while not self.halt.is_set():
            answering = self.app.answering(self.ready_services())
            ready = self.ready_services()
            for workload, up in answering.items():
                namespace, name = self.app.workloads[workload]
                family = self.families.get(namespace, "app")
                if family == "app":
                    self.metrics.observe(namespace, name, "200" if up else "503", self._latency(workload, up), self.per_tick)
                    continue
                if not any(s in ready for s in self.app.serving[workload]):
                    continue  # a caller with no pod calls nobody
                for callee in self.app.hard[workload]:
                    callee_up = answering.get(callee, False)
                    self.metrics.observe_call(family, workload, callee, callee_up, self._latency(callee, callee_up),
                                              self.per_tick)
            next_tick += TICK_SECONDS
            self.halt.wait(max(0.0, next_tick - time.monotonic()))

    def _latency(self, workload: str, up: bool) -> float:
        return OK_LATENCY + HOP_LATENCY * self.app.depth(workload) if up else FAILED_LATENCY

    def _record(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        if kind in REPLICA_GAUGES:
            key, value = replica_gauge(kind, obj)
            with self.lock:
                if event_type == "DELETED":
                    self.gauge_keys.pop(uid, None)
                else:
                    self.gauge_keys[uid] = key
            self.metrics.set_gauge(key, None if event_type == "DELETED" else value)
            return
        metadata = obj["metadata"]
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        if not service:
            return
        ready = sum(1 for e in obj.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))
        with self.lock:
            if event_type == "DELETED":
                self.ready_endpoints.pop(uid, None)
            else:
                self.ready_endpoints[uid] = (f"{metadata['namespace']}/Service/{service}", ready)

    def _forget(self, namespace: str, kind: str) -> None:
        """Before a fresh list: drop what an earlier list or watch of (namespace, kind) recorded."""
        with self.lock:
            if kind in REPLICA_GAUGES:
                metric = REPLICA_GAUGES[kind][1]
                stale = [u for u, key in self.gauge_keys.items() if key[0] == metric and key[1] == namespace]
                keys = [self.gauge_keys.pop(u) for u in stale]
            else:
                for uid in [u for u, (s, _) in self.ready_endpoints.items() if s.startswith(namespace + "/")]:
                    del self.ready_endpoints[uid]
                keys = []
        for key in keys:
            self.metrics.set_gauge(key, None)

    def _watch(self, namespace: str, kind: str) -> None:
        lister = self.listers[kind]
        version = None
        while not self.halt.is_set():
            try:
                if version is None:
                    body = json.loads(lister(namespace, _preload_content=False).data)
                    self._forget(namespace, kind)
                    for item in body["items"]:
                        item["metadata"].setdefault("namespace", namespace)
                        self._record(kind, "ADDED", item)
                    version = body["metadata"]["resourceVersion"]
                    with self.lock:
                        self.unsynced.discard((namespace, kind))
                        if not self.unsynced:
                            self.synced.set()
                stream = watch.Watch().stream(lister, namespace, resource_version=version, timeout_seconds=30,
                                              deserialize=False)
                for event in stream:
                    if event["type"] == "ERROR":  # typically 410 Gone: list afresh
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._record(kind, event["type"], event["object"])
                    if self.halt.is_set():
                        return
            except ApiException as e:
                version = None if e.status == 410 else version
                self.halt.wait(0.5)
            except Exception as e:  # noqa: BLE001 - the apiserver may restart under us; keep watching
                log.info("%s watch lost (%s); resuming", kind, type(e).__name__)
                self.halt.wait(0.5)
