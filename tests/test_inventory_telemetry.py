"""chaos_inventory.telemetry and the merge of observed traffic into the dependency graph, on plain dicts: the
queries planned per family, reporter duplicates, noise, service-name mapping, added, confirmed and idle edges."""

from __future__ import annotations

import pytest
from test_inventory_core import SOURCE, deployment, env, service

from chaos_inventory import core, telemetry
from chaos_inventory.render import to_dot, to_mermaid
from chaosgen.boundary import validated_output

WINDOW = "1h"
APP = [
    deployment("web", env=env(API_URL="http://api:8080")),
    deployment("api", env=env(DB_HOST="db", CACHE_URL="redis://cache:6379")),
    deployment("worker", env=env(OTEL_SERVICE_NAME="jobs")),
    deployment("db", kind="StatefulSet"),
    deployment("cache", labels={"app": "cache", "app.kubernetes.io/name": "redis"}),
    service("web"), service("api", port=8080), service("worker"), service("db", port=5432), service("cache", port=6379),
]


def istio(source: str, target: str, value: float, reporter: str = "source", namespace: str = "app", **labels: str) -> dict:
    return {"labels": {"reporter": reporter, "source_workload": source, "source_workload_namespace": namespace,
                       "destination_workload": target, "destination_workload_namespace": namespace, **labels},
            "value": value}


def readings(metrics: dict[str, list[str]], answers: dict[str, list[dict]]) -> telemetry.Readings:
    return telemetry.Readings(WINDOW, metrics, telemetry.plan(metrics, WINDOW), answers)


ISTIO = {"istio": [telemetry.ISTIO_REQUESTS, telemetry.ISTIO_TCP]}
ISTIO_ANSWERS = {
    "istio:requests": [
        istio("web", "api", 1000.4), istio("web", "api", 990, reporter="destination"),
        istio("api", "worker", 50),  # in code only: no manifest names the worker
        istio("unknown", "api", 30, reporter="destination"),  # kube-probe, callers without a proxy
        istio("prometheus", "api", 300, reporter="destination", namespace="monitoring"),
        istio("api", "unknown", 12, destination_service_name="PassthroughCluster"),
        istio("web", "web", 7),
        istio("cache", "cache", 0),
    ],
    "istio:errors": [istio("web", "api", 10), istio("web", "api", 30, reporter="destination")],
    "istio:connections": [istio("api", "db", 40)],
}


def build(*extra: dict, metrics: dict | None = None, answers: dict | None = None) -> dict:
    given = readings(metrics or ISTIO, ISTIO_ANSWERS if answers is None else answers)
    return validated_output(core.build_topology(APP + list(extra), SOURCE, readings=given))


def edge(result: dict, source: str, target: str) -> dict:
    return next(d for d in result["dependencies"] if d["from"].endswith(f"/{source}") and d["to"].endswith(f"/{target}"))


def test_detection_finds_only_the_families_prometheus_has() -> None:
    names = ["up", "istio_requests_total", "http_requests_total", "servicegraph_traces_service_graph_request_total",
             "response_latency_ms_bucket"]
    assert telemetry.detected(names) == {
        "istio": ["istio_requests_total"], "app": ["http_requests_total"],
        "servicegraph": ["servicegraph_traces_service_graph_request_total"]}
    assert telemetry.detected(["up"]) == {}


def test_a_handful_of_aggregate_queries_over_the_window_whatever_the_size() -> None:
    metrics = {**ISTIO, "linkerd": ["response_total", "tcp_open_total"], "app": ["http_requests_total"],
               "servicegraph": ["traces_service_graph_request_failed_total", "traces_service_graph_request_total"]}
    queries = telemetry.plan(metrics, "30m")
    assert len(queries) == 9
    assert all("increase(" in q.promql and "[30m]" in q.promql and q.promql.startswith("sum by (") for q in queries)
    by_id = {q.id: q.promql for q in queries}
    assert 'response_code=~"5.."' in by_id["istio:errors"]
    assert 'direction="outbound",classification="failure"' in by_id["linkerd:errors"]


def test_observed_traffic_confirms_adds_and_demotes_edges() -> None:
    result = build()
    web_api = edge(result, "web", "api")
    # reporter duplicates counted once: the client's report wins
    assert web_api["evidence"][-1] == {
        "source": "istio", "metric": "istio_requests_total", "requests": 1000, "error_ratio": 0.01, "window": "1h",
        "summary": "observed: 1000 requests, 1.00% errors in 1h"}
    assert web_api["evidence"][0].endswith("env[API_URL]") and web_api["confidence"] == telemetry.OBSERVED_CONFIDENCE
    code_only = edge(result, "api", "worker")
    assert code_only["via"] == "app/Service/worker" and code_only["hard"] and len(code_only["evidence"]) == 1
    assert edge(result, "api", "db")["evidence"][-1]["error_ratio"] is None  # connections know no errors
    idle = edge(result, "api", "cache")
    assert idle["confidence"] < 0.5 and idle["evidence"][-1]["summary"] == "configured, no traffic in 1h"
    assert result["telemetry"] == {
        "window": "1h", "families": {"istio": {"metrics": ["istio_requests_total", "istio_tcp_connections_opened_total"]}},
        "queries": 4, "observed_dependencies": 3, "added_dependencies": 1, "idle_dependencies": 1,
        "ignored_series": {"caller or target not a workload of the topology": 1, "self-loop": 2,
                           "unknown or passthrough peer": 2}}


def test_noise_is_no_edge() -> None:
    result = build()
    pairs = {(d["from"].rpartition("/")[2], d["to"].rpartition("/")[2]) for d in result["dependencies"]}
    assert pairs == {("web", "api"), ("api", "worker"), ("api", "db"), ("api", "cache")}


def test_each_workload_records_the_families_that_cover_it() -> None:
    result = build()
    assert {w["name"]: w["telemetry"] for w in result["workloads"]} == {
        "api": ["istio"], "cache": ["istio"], "db": ["istio"], "web": ["istio"], "worker": ["istio"]}


def test_an_edge_is_not_demoted_when_telemetry_does_not_cover_both_ends() -> None:
    answers = {"istio:requests": [istio("web", "api", 5)]}
    result = build(answers=answers)
    assert edge(result, "api", "cache")["confidence"] == 0.95 and result["telemetry"]["idle_dependencies"] == 0


def test_the_app_convention_covers_workloads_but_shows_no_edge() -> None:
    metrics = {"app": ["http_requests_total"]}
    answers = {"app:requests": [{"labels": {"namespace": "app", "service": "api"}, "value": 10.0}]}
    result = build(metrics=metrics, answers=answers)
    assert [w["name"] for w in result["workloads"] if w["telemetry"] == ["app"]] == ["api"]
    assert all(isinstance(e, str) for d in result["dependencies"] for e in d["evidence"])


def sg(client: str, server: str, value: float, **labels: str) -> dict:
    return {"labels": {"client": client, "server": server, **labels}, "value": value}


SERVICEGRAPH = {"servicegraph": ["traces_service_graph_request_failed_total", "traces_service_graph_request_total"]}


def test_servicegraph_names_are_service_names_mapped_to_workloads() -> None:
    answers = {
        "servicegraph:requests:traces_service_graph_request_total": [
            sg("api", "jobs", 20),  # OTEL_SERVICE_NAME of the worker
            sg("web", "redis", 4),  # app.kubernetes.io/name of the cache
            sg("user", "web", 500, connection_type="virtual_node"),
            sg("api", "jobs", 6, connection_type="messaging_system"),
            sg("otel-collector", "api", 3),
        ],
        "servicegraph:errors:traces_service_graph_request_failed_total": [sg("api", "jobs", 2)],
    }
    result = build(metrics=SERVICEGRAPH, answers=answers)
    worker = edge(result, "api", "worker")
    assert worker["evidence"] == [{"source": "servicegraph", "metric": "traces_service_graph_request_total",
                                   "requests": 26, "error_ratio": 0.0769, "window": "1h",
                                   "summary": "observed: 26 requests, 7.69% errors in 1h"}]
    assert edge(result, "web", "cache")["evidence"][0]["requests"] == 4
    assert result["telemetry"]["ignored_series"] == {"caller or target not a workload of the topology": 1,
                                                     "uninstrumented caller (user)": 1}
    assert not any(d["from"].endswith("/web") and d["to"].endswith("/web") for d in result["dependencies"])


def test_a_workload_really_named_user_is_a_caller() -> None:
    answers = {"servicegraph:requests:traces_service_graph_request_total": [sg("user", "api", 9)]}
    result = build(deployment("user"), metrics=SERVICEGRAPH, answers=answers)
    assert edge(result, "user", "api")["evidence"][0]["requests"] == 9


def test_messaging_edges_are_not_hard() -> None:
    answers = {"servicegraph:requests:traces_service_graph_request_total": [
        sg("web", "jobs", 9, connection_type="messaging_system")]}
    assert edge(build(metrics=SERVICEGRAPH, answers=answers), "web", "worker")["hard"] is False


def test_servicegraph_namespace_dimension_tells_same_named_services_apart() -> None:
    twin = deployment("worker", namespace="other", env=env(OTEL_SERVICE_NAME="jobs"))
    plain = {"servicegraph:requests:traces_service_graph_request_total": [sg("api", "jobs", 5)]}
    assert build(twin, metrics=SERVICEGRAPH, answers=plain)["telemetry"]["observed_dependencies"] == 0
    scoped = {"servicegraph:requests:traces_service_graph_request_total": [
        sg("api", "jobs", 5, client_k8s_namespace_name="app", server_k8s_namespace_name="other")]}
    assert edge(build(twin, metrics=SERVICEGRAPH, answers=scoped), "api", "worker")["to"] == "other/Deployment/worker"


def test_linkerd_outbound_series_name_both_ends_by_kind() -> None:
    metrics = {"linkerd": ["response_total"]}
    labels = {"namespace": "app", "deployment": "api", "dst_namespace": "app", "dst_statefulset": "db"}
    answers = {"linkerd:requests": [{"labels": labels, "value": 80.0}],
               "linkerd:errors": [{"labels": labels, "value": 8.0}]}
    result = build(metrics=metrics, answers=answers)
    assert edge(result, "api", "db")["evidence"][-1]["error_ratio"] == 0.1


def test_secret_values_and_service_names_never_leave() -> None:
    hidden = deployment("billing", env=[{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=payments-7f3a"},
                                        {"name": "API_TOKEN", "value": "hunter2"}])
    answers = {"servicegraph:requests:traces_service_graph_request_total": [sg("api", "payments-7f3a", 5)]}
    result = build(hidden, metrics=SERVICEGRAPH, answers=answers)
    assert edge(result, "api", "billing")
    text = str(result)
    assert "payments-7f3a" not in text and "hunter2" not in text


def test_renderings_tell_observed_from_configured_only_edges() -> None:
    result = build()
    dot = to_dot(result)
    assert 'color="#1f77b4"' in dot and "no traffic" in dot
    mermaid = to_mermaid(result)
    assert "==>" in mermaid and "linkStyle" in mermaid


@pytest.mark.parametrize("window", ["1h", "90m", "1h30m", "7d"])
def test_windows_are_prometheus_durations(window: str) -> None:
    assert telemetry.DURATION.match(window)
