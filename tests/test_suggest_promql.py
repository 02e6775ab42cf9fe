"""Every PromQL query chaos-suggest writes, evaluated by Debian's real Prometheus: exactly one series without labels,
with the metric names of each family (chaos_suggest.promql) exported, also when nothing is exported, and 0 rather
than NaN when the series exist but carry no traffic (0/0, histogram_quantile of empty buckets)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chaos_suggest import core, promql
from chaosgen.policy import load_policy
from tests.sandbox import prometheus as prom

pytestmark = pytest.mark.prometheus

THREE_TIER = Path(__file__).resolve().parent / "golden" / "suggest" / "3tier.topology.json"
STARTED = time.time()
# 10 requests/s per service, one in eleven a 503; every request lands in the 0.25s bucket.
OK_PER_SECOND, ERRORS_PER_SECOND = 10, 1
EXPECTED_ERROR_RATE = ERRORS_PER_SECOND / (OK_PER_SECOND + ERRORS_PER_SECOND)


def exposition() -> str:
    """Counters growing with time, as an app under steady traffic and kube-state-metrics expose them."""
    elapsed = time.time() - STARTED
    lines = []
    for service, running in (("api", elapsed), ("frontend", elapsed), ("postgres", elapsed), ("cache", 0.0)):
        labels = f'namespace="shop",service="{service}"'
        ok, errors = 5 + OK_PER_SECOND * running, ERRORS_PER_SECOND * running
        lines += [
            f'http_requests_total{{{labels},code="200"}} {ok:.3f}',
            f'http_requests_total{{{labels},code="503"}} {errors:.3f}',
            f'http_request_duration_seconds_bucket{{{labels},le="0.1"}} 0',
            f'http_request_duration_seconds_bucket{{{labels},le="0.25"}} {ok + errors:.3f}',
            f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {ok + errors:.3f}',
            f"http_request_duration_seconds_count{{{labels}}} {ok + errors:.3f}",
        ]
    lines += mesh_lines(elapsed)
    lines += [
        'kube_statefulset_status_replicas_ready{namespace="shop",statefulset="postgres"} 1',
        'kube_deployment_status_replicas_available{namespace="shop",deployment="api"} 2',
        'kube_deployment_status_replicas_available{namespace="shop",deployment="frontend"} 2',
        'kube_replicaset_status_ready_replicas{namespace="shop",replicaset="api-5d9c"} 2',
    ]
    return "\n".join(lines) + "\n"


FRONTEND = promql.Peer("shop", "Deployment", "frontend", "frontend")
API = promql.Peer("shop", "Deployment", "api", "api")
POSTGRES = promql.Peer("shop", "StatefulSet", "postgres", "postgres")
CACHE = promql.Peer("shop", "Deployment", "cache", "cache")
# family -> (request counter, failed counter or None, (ok labels, failed labels), histogram, bucket bounds in its unit)
MESH = {
    "istio": ("istio_requests_total", None, ('response_code="200"', 'response_code="503"'),
              "istio_request_duration_milliseconds_bucket", ("100", "250")),
    "linkerd": ("response_total", None, ('classification="success"', 'classification="failure"'),
                "response_latency_ms_bucket", ("100", "250")),
    "servicegraph": ("traces_service_graph_request_total", "traces_service_graph_request_failed_total", ("", ""),
                     "traces_service_graph_request_client_seconds_bucket", ("0.1", "0.25")),
}


def edge_labels(family: str, caller: promql.Peer, target: promql.Peer) -> str:
    """The exporter's labels of one edge, written as each project does (double quotes, its label names)."""
    return ",".join(f'{key}="{value}"' for key, value in MESH_LABELS[family](caller, target).items())


MESH_LABELS = {
    "istio": lambda c, t: {"reporter": "source", "source_workload": c.name, "source_workload_namespace": c.namespace,
                           "destination_workload": t.name, "destination_workload_namespace": t.namespace,
                           "destination_service_name": t.name},
    "linkerd": lambda c, t: {"direction": "outbound", "namespace": c.namespace, c.kind.lower(): c.name,
                             "dst_namespace": t.namespace, f"dst_{t.kind.lower()}": t.name, "tls": "true"},
    "servicegraph": lambda c, t: {"client": c.service, "server": t.service, "connection_type": ""},
}


def mesh_lines(elapsed: float) -> list[str]:
    """frontend -> api under the same steady traffic in every mesh family, and frontend -> postgres idle (its
    counters never move: rates of 0, a ratio of 0/0 and a quantile of empty buckets)."""
    lines = []
    for family, (requests, failed, (ok_label, failed_label), buckets, bounds) in MESH.items():
        for target, scale in ((API, elapsed), (POSTGRES, 0.0)):
            labels = edge_labels(family, FRONTEND, target)
            ok, errors = 5 + OK_PER_SECOND * scale, 1 + ERRORS_PER_SECOND * scale
            if failed:
                lines += [f"{requests}{{{labels}}} {ok + errors:.3f}", f"{failed}{{{labels}}} {errors:.3f}"]
            else:
                lines += [f"{requests}{{{labels},{ok_label}}} {ok:.3f}", f"{requests}{{{labels},{failed_label}}} {errors:.3f}"]
            for bound, value in ((bounds[0], 0.0), (bounds[1], ok + errors), ("+Inf", ok + errors)):
                lines.append(f'{buckets}{{{labels},le="{bound}"}} {value:.3f}')
    return lines


class Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus() -> Iterator[prom.Prometheus]:
    try:
        prom.binary()
    except prom.PrometheusError as e:
        pytest.skip(str(e))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = prom.start([f"127.0.0.1:{server.server_address[1]}"])
    try:
        query = promql.error_rate("app", API, API).query
        deadline = time.monotonic() + 30
        while not (running.query(query) and float(running.query(query)[0]["value"][1]) > 0):
            assert time.monotonic() < deadline, "no rate after 30s"
            time.sleep(0.5)
        yield running
    finally:
        running.stop()
        server.shutdown()


def plan_queries() -> list[str]:
    topology = json.loads(THREE_TIER.read_text())
    experiments = core.plan_builtin(topology, load_policy(None), 20)
    checks = [c for e in experiments for c in e["abort_thresholds"] + e["steady_state"] if "query" in c]
    return sorted({c["query"] for c in checks})


def test_the_plan_uses_every_kind_of_query() -> None:
    queries = plan_queries()
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "kube_statefulset_status_replicas_ready", "kube_deployment_status_replicas_available"):
        assert any(metric in q for q in queries), metric


@pytest.mark.slow
def test_every_query_returns_one_unlabelled_series(prometheus: prom.Prometheus) -> None:
    extra = [promql.ready_replicas("shop", "ReplicaSet", "api-5d9c").query]
    extra += [signal(family, FRONTEND, API).query for family in MESH for signal in (promql.error_rate, promql.p99_latency)]
    for query in plan_queries() + extra:
        result = prometheus.query(query)
        assert len(result) == 1 and result[0]["metric"] == {}, (query, result)


def test_queries_measure_what_their_names_say(prometheus: prom.Prometheus) -> None:
    def value(query: str) -> float:
        return float(prometheus.query(query)[0]["value"][1])

    assert value(promql.error_rate("app", API, API).query) == pytest.approx(EXPECTED_ERROR_RATE, rel=0.05)
    assert 0.1 < value(promql.p99_latency("app", API, API).query) <= 0.25
    assert value(promql.ready_replicas("shop", "StatefulSet", "postgres").query) == 1
    assert value(promql.ready_replicas("shop", "Deployment", "api").query) == 2
    assert value(promql.ready_replicas("shop", "ReplicaSet", "api-5d9c").query) == 2


@pytest.mark.parametrize("family", list(MESH))
def test_each_family_measures_the_edge_in_seconds(prometheus: prom.Prometheus, family: str) -> None:
    def value(query: str) -> float:
        result = prometheus.query(query)
        assert len(result) == 1 and result[0]["metric"] == {}, (query, result)
        return float(result[0]["value"][1])

    assert value(promql.error_rate(family, FRONTEND, API).query) == pytest.approx(EXPECTED_ERROR_RATE, rel=0.05)
    assert 0.1 < value(promql.p99_latency(family, FRONTEND, API).query) <= 0.25
    for series in promql.error_rate(family, FRONTEND, API).series + promql.p99_latency(family, FRONTEND, API).series:
        assert prometheus.query(f"count({series})"), series  # the listed series are the ones exported


@pytest.mark.parametrize("family", ["app", *MESH])
def test_an_idle_edge_reads_zero_not_nan(prometheus: prom.Prometheus, family: str) -> None:
    """Series present, no traffic: 0/0 and histogram_quantile of empty buckets are NaN, which `or vector(0)`
    alone keeps and every comparison calls false; the queries read 0."""
    caller = FRONTEND if family in MESH else CACHE  # the app convention has no edge: cache serves nothing
    for signal in (promql.error_rate(family, caller, POSTGRES), promql.p99_latency(family, caller, POSTGRES)):
        if family in MESH:
            assert prometheus.query(f"count({signal.series[0]})"), "the idle edge's series exist"
        result = prometheus.query(signal.query)
        assert len(result) == 1 and result[0]["value"][1] == "0", (signal.query, result)


ELSEWHERE = promql.Peer("elsewhere", "Deployment", "api", "nothing")


@pytest.mark.parametrize("query", [
    *(signal(family, ELSEWHERE, ELSEWHERE).query for family in ["app", *MESH] for signal in (promql.error_rate, promql.p99_latency)),
    promql.ready_replicas("elsewhere", "StatefulSet", "postgres").query,
    promql.ready_replicas("elsewhere", "Deployment", "api").query,
])
def test_without_series_a_query_reads_zero_not_nothing(prometheus: prom.Prometheus, query: str) -> None:
    result = prometheus.query(query)
    assert len(result) == 1 and result[0]["metric"] == {}
    assert float(result[0]["value"][1]) == 0
