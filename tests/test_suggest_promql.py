"""Every PromQL query chaos-suggest writes, evaluated by Debian's real Prometheus: exactly one series without labels,
with the metric names of the convention (chaos_suggest.promql) exported, and also when nothing is exported."""

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
    for service in ("api", "frontend", "postgres"):
        labels = f'namespace="shop",service="{service}"'
        ok, errors = OK_PER_SECOND * elapsed, ERRORS_PER_SECOND * elapsed
        lines += [
            f'http_requests_total{{{labels},code="200"}} {ok:.3f}',
            f'http_requests_total{{{labels},code="503"}} {errors:.3f}',
            f'http_request_duration_seconds_bucket{{{labels},le="0.1"}} 0',
            f'http_request_duration_seconds_bucket{{{labels},le="0.25"}} {ok + errors:.3f}',
            f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {ok + errors:.3f}',
            f"http_request_duration_seconds_count{{{labels}}} {ok + errors:.3f}",
        ]
    lines += [
        'kube_statefulset_status_replicas_ready{namespace="shop",statefulset="postgres"} 1',
        'kube_deployment_status_replicas_available{namespace="shop",deployment="api"} 2',
        'kube_deployment_status_replicas_available{namespace="shop",deployment="frontend"} 2',
        'kube_replicaset_status_ready_replicas{namespace="shop",replicaset="api-5d9c"} 2',
    ]
    return "\n".join(lines) + "\n"


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
        query = promql.error_rate("shop", "api")
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
    for query in plan_queries() + [promql.ready_replicas("shop", "ReplicaSet", "api-5d9c")]:
        result = prometheus.query(query)
        assert len(result) == 1 and result[0]["metric"] == {}, (query, result)


def test_queries_measure_what_their_names_say(prometheus: prom.Prometheus) -> None:
    def value(query: str) -> float:
        return float(prometheus.query(query)[0]["value"][1])

    assert value(promql.error_rate("shop", "api")) == pytest.approx(EXPECTED_ERROR_RATE, rel=0.05)
    assert 0.1 < value(promql.p99_latency("shop", "api")) <= 0.25
    assert value(promql.ready_replicas("shop", "StatefulSet", "postgres")) == 1
    assert value(promql.ready_replicas("shop", "Deployment", "api")) == 2
    assert value(promql.ready_replicas("shop", "ReplicaSet", "api-5d9c")) == 2


@pytest.mark.parametrize("query", [
    promql.error_rate("elsewhere", "api"),
    promql.p99_latency("elsewhere", "api"),
    promql.ready_replicas("elsewhere", "StatefulSet", "postgres"),
    promql.ready_replicas("elsewhere", "Deployment", "api"),
], ids=["error-rate", "p99-latency", "statefulset-ready", "deployment-available"])
def test_without_series_a_query_reads_zero_not_nothing(prometheus: prom.Prometheus, query: str) -> None:
    result = prometheus.query(query)
    assert len(result) == 1 and result[0]["metric"] == {}
    assert float(result[0]["value"][1]) == 0
