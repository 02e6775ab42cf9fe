"""The sandbox traffic simulator's kube-state-metrics replica gauges: the names and labels the planner's queries
read (chaos_suggest/promql.py), from the status field kube-state-metrics reports. Who answers and the request
metrics are tested in test_watch_core.py."""

from __future__ import annotations

import pytest

from chaos_suggest import promql
from tests.sandbox.traffic_sim import REPLICA_GAUGES, Application, Metrics, replica_gauge


def _workload(name: str, status: dict | None) -> dict:
    return {"metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
            **({"status": status} if status is not None else {})}


@pytest.mark.parametrize(("kind", "status", "series"), [
    ("Deployment", {"replicas": 3, "readyReplicas": 3, "availableReplicas": 2},
     'kube_deployment_status_replicas_available{namespace="shop",deployment="api"} 2'),
    ("StatefulSet", {"replicas": 1, "readyReplicas": 1, "availableReplicas": 0},
     'kube_statefulset_status_replicas_ready{namespace="shop",statefulset="api"} 1'),
    ("ReplicaSet", {"replicas": 2, "readyReplicas": 2}, 'kube_replicaset_status_ready_replicas{namespace="shop",replicaset="api"} 2'),
    ("Deployment", None, 'kube_deployment_status_replicas_available{namespace="shop",deployment="api"} 0'),
    ("StatefulSet", {"replicas": 1}, 'kube_statefulset_status_replicas_ready{namespace="shop",statefulset="api"} 0'),
], ids=["deployment-available", "statefulset-ready", "replicaset-ready", "no-status", "none-ready"])
def test_replica_gauges_come_from_the_status_field_kube_state_metrics_reports(kind: str, status: dict | None,
                                                                              series: str) -> None:
    metrics = Metrics()
    metrics.set_gauge(*replica_gauge(kind, _workload("api", status)))
    text = metrics.render()
    assert series in text.splitlines()
    assert f"# TYPE {REPLICA_GAUGES[kind][1]} gauge" in text


def test_a_deleted_workload_drops_its_series() -> None:
    metrics = Metrics()
    key, value = replica_gauge("Deployment", _workload("api", {"availableReplicas": 2}))
    metrics.set_gauge(key, value)
    metrics.set_gauge(key, None)
    assert "kube_deployment_status_replicas_available" not in metrics.render()


def test_replica_gauges_answer_the_planners_queries() -> None:
    """Names and labels as chaos_suggest.promql.ready_replicas selects them, one series per workload."""
    for kind, (_, metric, label, _) in REPLICA_GAUGES.items():
        assert promql.ready_replicas("shop", kind, "api").series == (f"{metric}{{namespace='shop',{label}='api'}}",)
    assert set(REPLICA_GAUGES) == set(promql.READY_REPLICA_KINDS)


def test_exposition_is_sorted_and_stable() -> None:
    metrics = Metrics()
    for name, ready in (("web", 3), ("api", 2)):
        metrics.set_gauge(*replica_gauge("Deployment", _workload(name, {"availableReplicas": ready})))
    lines = [line for line in metrics.render().splitlines() if line.startswith("kube_deployment")]
    assert lines == ['kube_deployment_status_replicas_available{namespace="shop",deployment="api"} 2',
                     'kube_deployment_status_replicas_available{namespace="shop",deployment="web"} 3']


@pytest.mark.parametrize("family", ["istio", "linkerd", "servicegraph"])
def test_each_mesh_family_exports_the_series_the_planner_reads(family: str) -> None:
    """A call api -> postgres as the family counts it: the selectors of the planner's edge thresholds match."""
    metrics = Metrics()
    metrics.observe_call(family, "shop/Deployment/api", "shop/StatefulSet/postgres", True, 0.01, 9)
    metrics.observe_call(family, "shop/Deployment/api", "shop/StatefulSet/postgres", False, 0.03, 1)
    text = metrics.render()
    api, postgres = promql.Peer("shop", "Deployment", "api", "api"), promql.Peer("shop", "StatefulSet", "postgres", "postgres")
    for signal in (promql.error_rate(family, api, postgres), promql.p99_latency(family, api, postgres)):
        metric, _, matchers = signal.series[0].partition("{")
        wanted = [m.replace("'", '"') for m in matchers.rstrip("}").split(",")]
        assert any(line.startswith(metric + "{") and all(m in line for m in wanted) for line in text.splitlines()), signal
    assert "http_requests_total{" not in text


def test_a_code_only_call_is_needed_and_a_never_called_edge_is_not() -> None:
    topology = {"services": [{"id": f"shop/Service/{n}", "selects": [f"shop/Deployment/{n}"]} for n in ("web", "api", "cache")],
                "dependencies": [{"from": "shop/Deployment/web", "to": "shop/Deployment/cache", "hard": True}]}
    app = Application(topology, code_only=[("shop/Deployment/web", "shop/Deployment/api")],
                      never_called=[("shop/Deployment/web", "shop/Deployment/cache")])
    assert app.hard["shop/Deployment/web"] == ["shop/Deployment/api"]
    answering = app.answering({"shop/Service/web", "shop/Service/cache"})
    assert answering["shop/Deployment/web"] is False  # api, which only its code calls, is down
    assert app.answering({"shop/Service/web", "shop/Service/api"})["shop/Deployment/web"] is True
