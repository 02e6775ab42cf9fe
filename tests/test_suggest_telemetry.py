"""chaos-suggest on a Topology with telemetry (chaos-inventory --prometheus-url): abort thresholds and steady state
read the family that measured the caller -> target edge, the app convention only where its series exist, and
nothing but the replicas (said in the rationale and on stderr) when no family measures the callers."""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

import pytest
from test_suggest_planner import edge, plan, topology, workload

from chaos_suggest import promql
from chaos_suggest.llm.guard import Guard, answer_schema
from chaos_suggest.llm.prompt import PromptBuilder
from chaosgen.policy import load_policy
from chaosgen.schemas import validate
from fakes import answers

ISTIO_REQUESTS = "istio_requests_total"


def observed(family: str, metric: str, requests: int = 1200) -> dict[str, Any]:
    return {"source": family, "metric": metric, "requests": requests, "error_ratio": 0.0, "window": "1h",
            "summary": f"observed: {requests} requests, 0.00% errors in 1h"}


def with_telemetry(families: dict[str, list[str]], coverage: dict[str, list[str]],
                   evidence: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """web -> api -> db, with the families Prometheus has, which cover each workload, and traffic evidence per
    caller name."""
    db = workload("db", kind="StatefulSet", replicas=1, score=90, tier="database", stateful=True,
                  risks=(("single-replica", "high"),))
    api = workload("api", replicas=2, score=70)
    web = workload("web", replicas=2, score=50, tier="frontend", labels={"app": "web", "app.kubernetes.io/name": "webshop"})
    edges = [edge(api, db), edge(web, api)]
    for dependency in edges:
        caller = dependency["from"].rpartition("/")[2]
        dependency["evidence"] += evidence.get(caller, [])
    for w in (db, api, web):
        if w["name"] in coverage:
            w["telemetry"] = coverage[w["name"]]
    doc = topology([web, api, db], edges, check=False)
    doc["telemetry"] = {"window": "1h", "families": {f: {"metrics": m} for f, m in families.items()}, "queries": 4}
    validate(doc, "Topology", "test")
    return doc


def thresholds(experiments: list[dict[str, Any]], target: str, fault: str) -> dict[str, dict[str, Any]]:
    experiment = next(e for e in experiments if e["target"]["name"] == target and e["fault"]["type"] == fault)
    return {t["name"]: t for t in experiment["abort_thresholds"]}


def test_istio_edges_are_watched_from_the_callers_sidecar() -> None:
    doc = with_telemetry({"istio": [ISTIO_REQUESTS]}, {"api": ["istio"], "db": ["istio"], "web": ["istio"]},
                         {"api": [observed("istio", ISTIO_REQUESTS)], "web": [observed("istio", ISTIO_REQUESTS)]})
    experiments = plan(doc, count=20)
    found = thresholds(experiments, "db", "pod-delete")
    selector = ("istio_requests_total{reporter='source',source_workload_namespace='shop',source_workload='api',"
                "destination_workload_namespace='shop',destination_workload='db'}")
    assert found["api-error-rate"]["series"] == [selector]
    assert found["api-error-rate"]["query"] == (
        f"((sum(rate({selector[:-1]},response_code=~'5..'}}[1m])) / sum(rate({selector}[1m]))) >= 0) or vector(0)")
    latency = thresholds(experiments, "api", "pod-network-latency")
    assert latency["web-p99-latency"]["query"].startswith(
        "((histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter='source',")
    assert "[1m]))) / 1000) >= 0) or vector(0)" in latency["web-p99-latency"]["query"]
    assert not any("http_requests_total" in t["query"] for e in experiments for t in e["abort_thresholds"])
    assert all("http_requests_total" not in c.get("query", "") for e in experiments for c in e["steady_state"])


def test_linkerd_and_servicegraph_edges_use_their_own_labels() -> None:
    sg = ["otel_traces_service_graph_request_failed_total", "otel_traces_service_graph_request_total"]
    doc = with_telemetry({"linkerd": ["response_total"], "servicegraph": sg},
                         {"api": ["linkerd"], "db": ["linkerd"], "web": ["servicegraph"]},
                         {"api": [observed("linkerd", "response_total")],
                          "web": [observed("servicegraph", "otel_traces_service_graph_request_total")]})
    experiments = plan(doc, count=20)
    linkerd = thresholds(experiments, "db", "pod-delete")["api-error-rate"]
    assert linkerd["series"] == ["response_total{direction='outbound',namespace='shop',deployment='api',"
                                 "dst_namespace='shop',dst_statefulset='db'}"]
    assert "classification='failure'" in linkerd["query"]
    servicegraph = thresholds(experiments, "api", "pod-network-latency")
    assert servicegraph["web-error-rate"]["series"] == ["otel_traces_service_graph_request_total{client='webshop',server='api'}"]
    assert "otel_traces_service_graph_request_failed_total{client='webshop',server='api'}" in servicegraph["web-error-rate"]["query"]
    assert "otel_traces_service_graph_request_client_seconds_bucket{client='webshop',server='api'}" in (
        servicegraph["web-p99-latency"]["query"])


def test_the_app_convention_only_where_its_series_name_the_caller() -> None:
    doc = with_telemetry({"app": ["http_requests_total"]}, {"api": ["app"]}, {})
    experiments = plan(doc, count=20)
    assert thresholds(experiments, "db", "pod-delete")["api-error-rate"]["series"] == [
        "http_requests_total{namespace='shop',service='api'}"]
    latency = next(e for e in experiments if e["target"]["name"] == "api" and e["fault"]["type"] == "pod-network-latency")
    assert [t["name"] for t in latency["abort_thresholds"]] == ["api-replicas-unavailable"]
    assert "No request telemetry measures shop/Deployment/web (families in Prometheus: app)" in latency["rationale"]["summary"]
    assert "error rate" not in latency["hypothesis"].rpartition(",")[2]


def test_without_caller_telemetry_only_replicas_are_watched_and_a_warning_says_so(caplog: pytest.LogCaptureFixture) -> None:
    doc = with_telemetry({"istio": [ISTIO_REQUESTS]}, {"db": ["istio"]}, {})
    with caplog.at_level(logging.WARNING):
        experiments = plan(doc, count=20)
    for experiment in experiments:
        assert all(t["name"].endswith("replicas-unavailable") for t in experiment["abort_thresholds"]), experiment["id"]
        assert all(c["type"] == "k8s" or "kube_" in c["query"] for c in experiment["steady_state"])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("No request telemetry measures shop/Deployment/api" in m for m in warned)


def test_the_cli_warns_on_stderr_and_keeps_stdout_a_plan(tmp_path: Any) -> None:
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(with_telemetry({"istio": [ISTIO_REQUESTS]}, {}, {})))
    result = subprocess.run(["chaos-suggest", "-f", str(path), "-n", "3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "No request telemetry measures" in result.stderr
    validate(json.loads(result.stdout), "ExperimentPlan", "stdout")


@pytest.mark.parametrize("family", ["app", *promql.EDGE_FAMILIES])
def test_every_family_writes_nan_safe_single_quoted_queries(family: str) -> None:
    web, api = promql.Peer("shop", "Deployment", "web", "web"), promql.Peer("shop", "StatefulSet", "api", "api")
    for signal in (promql.error_rate(family, web, api), promql.p99_latency(family, web, api)):
        assert signal.query.startswith("((") and signal.query.endswith(") >= 0) or vector(0)")
        assert '"' not in signal.query
        assert all(series in signal.query for series in signal.series)


def istio_topology() -> dict[str, Any]:
    """The guard's fixture Topology as chaos-inventory --prometheus-url writes it for an Istio-only mesh."""
    doc = answers.topology()
    doc["telemetry"] = {"window": "1h", "families": {"istio": {"metrics": [ISTIO_REQUESTS]}}, "queries": 3}
    for w in doc["workloads"]:
        w["telemetry"] = ["istio"]
    validate(doc, "Topology", "test")
    return doc


def test_the_guard_rejects_a_threshold_on_a_family_the_telemetry_did_not_find() -> None:
    verdict = Guard(istio_topology(), load_policy(None), "llm:openai/test").check([answers.postgres_pod_delete()])
    assert [p.rule for r in verdict.rejected for p in r.problems] == ["metric-not-in-telemetry"]
    assert verdict.rejected[0].problems[0].message.startswith(
        "abort_thresholds[0] reads http_requests_total (app), which the Topology's telemetry did not find in Prometheus "
        "(it has: istio)")


def test_the_guard_accepts_the_family_that_exists_and_any_query_without_telemetry() -> None:
    on_istio = answers.postgres_pod_delete()
    on_istio["abort_thresholds"][0]["query"] = (
        "sum(rate(istio_requests_total{reporter='source',source_workload='api',destination_workload='postgres',"
        "response_code=~'5..'}[1m])) / sum(rate(istio_requests_total{reporter='source',source_workload='api',"
        "destination_workload='postgres'}[1m]))")
    assert Guard(istio_topology(), load_policy(None), "llm:openai/test").check([on_istio]).clean
    assert Guard(answers.topology(), load_policy(None), "llm:openai/test").check([answers.postgres_pod_delete()]).clean


def test_the_prompt_lists_each_workloads_families_and_the_traffic_evidence() -> None:
    doc = istio_topology()
    for dependency in doc["dependencies"]:
        dependency["evidence"] = [f"spec.env[X{n}]" for n in range(6)] + [observed("istio", ISTIO_REQUESTS, 42)]
    prompt = PromptBuilder(doc, load_policy(None), 3, answer_schema(3)).build()
    assert '"telemetry":["istio"]' in prompt.user
    assert "observed: 42 requests" in prompt.user
    assert "metric families found in Prometheus: istio" in prompt.user
