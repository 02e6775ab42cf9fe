"""A traffic simulator that plays the application in the sandbox, where kwok's pods run no code.

From a Topology (services, hard dependencies) and the live EndpointSlices (watch API), each service answers when
it has a ready endpoint and every service it hard-depends on answers. Steady synthetic traffic hits every
service; the outcomes are exported on 127.0.0.1:<port>/metrics in Prometheus's text format with the names of the
convention in chaos_suggest/promql.py:

    http_requests_total{namespace, service, code}            counter (code "200" or "503")
    http_request_duration_seconds_bucket/_sum/_count{namespace, service, le}   histogram

`service` is the workload name, as the convention says. Hand-rolled exposition (a few lines) instead of
prometheus_client, so the tests need no extra package.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("traffic-sim")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_SECONDS = 0.1
OK_LATENCY, FAILED_LATENCY, HOP_LATENCY = 0.004, 0.03, 0.003


class Application:
    """Who answers, from the dependency graph and which services have ready endpoints. Pure; the simulator feeds it."""

    def __init__(self, topology: dict[str, Any]) -> None:
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
        for dependency in topology.get("dependencies", []):
            if dependency.get("hard", True) and not dependency.get("external") and dependency["to"] in self.workloads:
                self.hard[dependency["from"]].append(dependency["to"])

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


class Metrics:
    """Counters and histograms in memory, rendered in the text exposition format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], float] = defaultdict(float)
        self.buckets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(BUCKETS))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, namespace: str, service: str, code: str, latency: float, count: int) -> None:
        with self.lock:
            self.requests[(namespace, service, code)] += count
            key = (namespace, service)
            for index, bound in enumerate(BUCKETS):
                if latency <= bound:
                    self.buckets[key][index] += count
            self.sums[key] += latency * count
            self.counts[key] += count

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP http_requests_total Requests served, by status code.", "# TYPE http_requests_total counter"]
            for (namespace, service, code), value in sorted(self.requests.items()):
                lines.append(f'http_requests_total{{namespace="{namespace}",service="{service}",code="{code}"}} {value:g}')
            lines += ["# HELP http_request_duration_seconds Request duration.", "# TYPE http_request_duration_seconds histogram"]
            for key in sorted(self.counts):
                namespace, service = key
                labels = f'namespace="{namespace}",service="{service}"'
                for bound, value in zip(BUCKETS, self.buckets[key]):
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound:g}"}} {value:g}')
                lines.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {self.counts[key]:g}')
                lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self.sums[key]:.6f}")
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {self.counts[key]:g}")
        return "\n".join(lines) + "\n"


class TrafficSim:
    """The running simulator: an EndpointSlice watch, a traffic loop and the /metrics server. start() returns at once."""

    def __init__(self, kubeconfig: str, topology: dict[str, Any], requests_per_second: int = 20) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.discovery = client.DiscoveryV1Api(self.api_client)
        self.app = Application(topology)
        self.namespaces = sorted({ns for ns, _ in self.app.workloads.values()})
        self.per_tick = max(1, round(requests_per_second * TICK_SECONDS))
        self.metrics = Metrics()
        self.ready_endpoints: dict[str, tuple[str, int]] = {}  # slice uid -> (service id, ready endpoints)
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.synced = threading.Event()
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
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
        self.threads += [threading.Thread(target=self._watch, args=(ns,), daemon=True, name=f"sim-watch-{ns}")
                         for ns in self.namespaces]

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
        next_tick = time.monotonic()
        while not self.halt.is_set():
            answering = self.app.answering(self.ready_services())
            for workload, up in answering.items():
                namespace, name = self.app.workloads[workload]
                depth = self.app.depth(workload)
                latency = OK_LATENCY + HOP_LATENCY * depth if up else FAILED_LATENCY
                self.metrics.observe(namespace, name, "200" if up else "503", latency, self.per_tick)
            next_tick += TICK_SECONDS
            self.halt.wait(max(0.0, next_tick - time.monotonic()))

    def _record(self, event_type: str, endpoint_slice: dict[str, Any]) -> None:
        metadata = endpoint_slice["metadata"]
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        if not service:
            return
        ready = sum(1 for e in endpoint_slice.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))
        with self.lock:
            if event_type == "DELETED":
                self.ready_endpoints.pop(metadata["uid"], None)
            else:
                self.ready_endpoints[metadata["uid"]] = (f"{metadata['namespace']}/Service/{service}", ready)

    def _watch(self, namespace: str) -> None:
        version = None
        while not self.halt.is_set():
            try:
                if version is None:
                    listing = self.discovery.list_namespaced_endpoint_slice(namespace, _preload_content=False)
                    body = json.loads(listing.data)
                    with self.lock:
                        for uid in [u for u, (s, _) in self.ready_endpoints.items() if s.startswith(namespace + "/")]:
                            del self.ready_endpoints[uid]
                    for item in body["items"]:
                        self._record("ADDED", item)
                    version = body["metadata"]["resourceVersion"]
                    self.synced.set()
                stream = watch.Watch().stream(self.discovery.list_namespaced_endpoint_slice, namespace,
                                              resource_version=version, timeout_seconds=30, deserialize=False)
                for event in stream:
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._record(event["type"], event["object"])
                    if self.halt.is_set():
                        return
            except ApiException as e:
                version = None if e.status == 410 else version
                self.halt.wait(0.5)
            except Exception as e:  # noqa: BLE001 - the apiserver may restart under us; keep watching
                log.info("EndpointSlice watch lost (%s); resuming", type(e).__name__)
                self.halt.wait(0.5)
