"""chaos-suggest's built-in planner and plan assembly on plain dicts: which fault tests which weakness, ranking,
determinism, uniqueness, and the safety policy."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from chaos_suggest import core, promql
from chaosgen.errors import PolicyViolation
from chaosgen.policy import DEFAULT_POLICY, load_policy, violations
from chaosgen.schemas import validate

NS = "shop"


def workload(name: str, kind: str = "Deployment", replicas: int = 2, score: int = 50, tier: str = "backend",
             risks: tuple[tuple[str, str], ...] = (), namespace: str = NS, **extra: Any) -> dict[str, Any]:
    """A Topology workload whose one container is well configured unless extra says otherwise."""
    container = {"name": name, "image": f"example/{name}:1.0", "readiness_probe": True, "liveness_probe": True,
                 "requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    container.update(extra.pop("container", {}))
    return {
        "id": f"{namespace}/{kind}/{name}", "namespace": namespace, "kind": kind, "name": name, "replicas": replicas,
        "labels": {"app": name}, "selector": {"app": name}, "containers": [container], "tier": tier,
        "criticality": {"score": score, "reasons": ["test"]},
        "risks": [{"id": rid, "severity": severity, "message": rid} for rid, severity in risks],
        **extra,
    }


def edge(caller: dict[str, Any], callee: dict[str, Any]) -> dict[str, Any]:
    return {"from": caller["id"], "to": callee["id"], "external": False,
            "via": f"{callee['namespace']}/Service/{callee['name']}", "port": 8080,
            "evidence": [f"spec.template.spec.containers[{caller['name']}].env[{callee['name'].upper()}_URL]"],
            "confidence": 0.9, "hard": True}


def topology(workloads: list[dict[str, Any]], edges: list[dict[str, Any]] = (), check: bool = True) -> dict[str, Any]:
    services = [{"id": f"{w['namespace']}/Service/{w['name']}", "namespace": w["namespace"], "name": w["name"],
                 "type": "ClusterIP", "ports": [{"port": 8080}], "selects": [w["id"]]} for w in workloads]
    doc = {"apiVersion": "chaosgen.dev/v1", "kind": "Topology",
           "metadata": {"generator": "test", "source": {"type": "files", "files": ["test.yaml"]}},
           "workloads": workloads, "services": services, "dependencies": list(edges)}
    if check:
        validate(doc, "Topology", "test")
    return doc


def three_tier() -> dict[str, Any]:
    db = workload("postgres", kind="StatefulSet", replicas=1, score=92, tier="database", stateful=True,
                  risks=(("single-replica", "high"),))
    api = workload("api", replicas=2, score=74, risks=(("no-resource-limits", "medium"),),
                   container={"limits": {}})
    web = workload("frontend", replicas=2, score=55, tier="frontend")
    return topology([web, api, db], [edge(api, db), edge(web, api)])


def plan(topo: dict[str, Any], count: int = 3, **policy_overrides: Any) -> list[dict[str, Any]]:
    return core.plan_builtin(topo, {**load_policy(None), **policy_overrides}, count)


def by_target(experiments: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["target"]["name"], e["fault"]["type"]): e for e in experiments}


# --- fault per weakness ---------------------------------------------------------------------------------------

def test_single_replica_database_gets_pod_delete_first_with_its_callers_error_rate() -> None:
    first = plan(three_tier())[0]
    assert first["id"] == "01-pod-delete-postgres"
    assert first["target"]["label_selector"] == "app=postgres"
    assert first["hypothesis"].startswith("When the only pod of StatefulSet postgres is deleted, the StatefulSet "
                                          "controller recreates it and it is ready again within 60s")
    assert "the error rate of its callers api stays below 5%" in first["hypothesis"]
    assert first["blast_radius"]["total_loss"] is True
    assert first["blast_radius"]["workloads"] == ["shop/StatefulSet/postgres", "shop/Deployment/api", "shop/Deployment/frontend"]
    names = [t["name"] for t in first["abort_thresholds"]]
    assert names == ["api-error-rate", "postgres-replicas-unavailable"]
    assert "service='api',code=~'5..'" in first["abort_thresholds"][0]["query"]
    assert first["rationale"]["risks"] == ["single-replica"]
    assert first["rationale"]["dependencies"] == ["shop/Deployment/api -> shop/StatefulSet/postgres"]


def test_deployment_without_memory_limit_gets_a_memory_hog_on_half_its_pods() -> None:
    hog = by_target(plan(three_tier(), count=10))[("api", "pod-memory-hog")]
    assert hog["parameters"]["pods_affected_percent"] == 50
    assert hog["blast_radius"]["max_pods"] == 1
    assert "which sets no memory limit" in hog["hypothesis"]
    assert hog["rationale"]["risks"] == ["no-resource-limits"]


def test_node_drain_only_where_it_cannot_take_every_replica() -> None:
    # Issue 13: a drain of the only node a replicated workload may be on is an outage, which the guard rejects
    # (total-loss-replicated); the planner drains only replicas known to be spread, and claims what that takes.
    risk = (("no-anti-affinity", "medium"),)
    placement_unknown = workload("api", replicas=3, risks=risk)
    seen_on_one_node = workload("web", replicas=2, risks=risk, runtime={"nodes": ["node-1"]})
    spread_and_flagged = workload("cart", replicas=3, risks=risk, runtime={"nodes": ["node-2", "node-1", "node-3"]})
    spread = workload("ok", replicas=2, runtime={"nodes": ["node-1", "node-2"]})
    experiments = by_target(plan(topology([placement_unknown, seen_on_one_node, spread_and_flagged, spread]), count=20))
    assert {target for target, fault in experiments if fault == "node-drain"} == {"cart"}
    drain = experiments[("cart", "node-drain")]
    assert drain["target"]["node"] == "node-1"
    assert drain["blast_radius"]["pods_affected_percent"] == 34 and drain["blast_radius"]["max_pods"] == 1
    assert "total_loss" not in drain["blast_radius"]
    assert drain["expected_recovery_seconds"] == 120


def test_missing_readiness_probe_gets_container_kill_with_error_checks() -> None:
    api = workload("api", replicas=2, container={"readiness_probe": False})
    web = workload("web", replicas=2)
    kill = by_target(plan(topology([api, web], [edge(web, api)]), count=20))[("api", "container-kill")]
    assert kill["parameters"]["container"] == "api"
    assert [t["name"] for t in kill["abort_thresholds"]] == ["web-error-rate", "api-replicas-unavailable"]


def test_hpa_gets_a_cpu_hog_that_names_the_autoscaler() -> None:
    api = workload("api", replicas=2, protection={"hpa": "shop/api", "min_replicas": 2, "max_replicas": 6})
    hog = by_target(plan(topology([api]), count=20))[("api", "pod-cpu-hog")]
    assert "HorizontalPodAutoscaler shop/api scales it out" in hog["hypothesis"]
    assert hog["parameters"]["duration"] == "2m"


def test_dependency_gets_latency_on_the_callee_with_a_latency_threshold_on_the_caller() -> None:
    api = workload("api", replicas=2)
    web = workload("web", replicas=2, labels={"app.kubernetes.io/name": "website"}, selector={"app": "web"})  # name wins
    latency = by_target(plan(topology([api, web], [edge(web, api)]), count=20))[("api", "pod-network-latency")]
    thresholds = {t["name"]: t for t in latency["abort_thresholds"]}
    web_peer, api_peer = promql.Peer(NS, "Deployment", "web", "website"), promql.Peer(NS, "Deployment", "api", "api")
    assert thresholds["web-p99-latency"]["query"] == promql.p99_latency("app", web_peer, api_peer).query
    assert thresholds["web-p99-latency"]["value"] == promql.P99_LATENCY_LIMIT_SECONDS
    assert latency["parameters"]["latency_ms"] == 300
    assert latency["rationale"]["dependencies"] == ["shop/Deployment/web -> shop/Deployment/api"]


def test_a_target_without_callers_watches_its_own_error_rate() -> None:
    alone = plan(topology([workload("solo", replicas=1)]))[0]
    assert alone["hypothesis"].endswith("and its own error rate stays below 5%.")
    assert alone["abort_thresholds"][0]["name"] == "solo-error-rate"


def test_emptydir_data_is_never_deleted_only_degraded() -> None:
    db = workload("cache-db", replicas=1, tier="database", risks=(("stateful-data-on-emptydir", "high"), ("single-replica", "high")),
                  container={"limits": {}})
    experiments = plan(topology([db]), count=5)
    assert [e["fault"]["type"] for e in experiments] == ["pod-cpu-hog"]
    assert experiments[0]["parameters"]["pods_affected_percent"] == 100
    assert "total_loss" not in experiments[0]["blast_radius"]


@pytest.mark.parametrize("kind", ["DaemonSet", "Job", "CronJob", "Pod"])
def test_workloads_without_a_recreating_controller_are_not_targeted(kind: str) -> None:
    assert plan(topology([workload("x", kind=kind, replicas=1)])) == []


# --- the shape of every experiment ----------------------------------------------------------------------------

def test_every_experiment_fills_every_field_and_the_plan_validates() -> None:
    topo = three_tier()
    experiments = plan(topo, count=20)
    document = core.assemble_plan(topo, experiments, load_policy(None), "chaos-suggest test")
    validate(document, "ExperimentPlan", "plan")
    for experiment in experiments:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", experiment["id"]) and len(experiment["id"]) <= 50
        assert experiment["abort_thresholds"] and experiment["steady_state"]
        assert experiment["parameters"]["duration"]
        assert experiment["blast_radius"]["workloads"][0] == experiment["target"]["workload"]


def test_every_query_returns_one_series_even_without_data() -> None:
    """A top-level aggregation or `or vector(0)` around every operand: never an empty or multi-series result."""
    for experiment in plan(three_tier(), count=20):
        for check in experiment["abort_thresholds"] + [s for s in experiment["steady_state"] if s["type"] == "prometheus"]:
            assert "or vector(0)" in check["query"]
            assert re.search(r"\b(sum|max|histogram_quantile)\(", check["query"])


def test_ids_are_dns_labels_cut_to_fifty_characters() -> None:
    assert core.experiment_id(1, "pod-network-latency", "a" * 60) == "01-pod-network-latency-" + "a" * 27
    assert core.experiment_id(12, "pod-delete", "web.v2") == "12-pod-delete-web-v2"
    assert core.experiment_id(3, "pod-delete", "x" * 35 + "-y") == "03-pod-delete-" + "x" * 35


# --- ranking, determinism, uniqueness -------------------------------------------------------------------------

def test_no_two_experiments_are_the_same_test_and_ranks_count_up() -> None:
    experiments = plan(three_tier(), count=50)
    tests = [(e["target"]["workload"], e["fault"]["type"]) for e in experiments]
    assert len(tests) == len(set(tests))
    assert [e["rank"] for e in experiments] == list(range(1, len(experiments) + 1))


def test_plans_spread_over_targets_before_repeating_one() -> None:
    targets = [e["target"]["name"] for e in plan(three_tier(), count=3)]
    assert targets[:2] == ["postgres", "api"]


def test_same_input_in_any_order_gives_the_same_plan() -> None:
    topo = three_tier()
    shuffled = copy.deepcopy(topo)
    shuffled["workloads"].reverse()
    shuffled["dependencies"].reverse()
    shuffled["services"].reverse()
    assert plan(topo, count=20) == plan(shuffled, count=20)


def test_more_requested_than_possible_gives_what_there_is_and_warns() -> None:
    topo = three_tier()
    experiments = plan(topo, count=100)
    assert 3 < len(experiments) <= DEFAULT_POLICY["max_experiments"]
    document = core.assemble_plan(topo, experiments, load_policy(None), "chaos-suggest test", requested=100)
    assert core.plan_warnings(document) == [
        f"only {len(experiments)} of 100 requested experiments are possible within the safety policy "
        "(-v lists the candidates it skipped)"
    ]


def test_plan_records_generator_source_digest_and_effective_policy() -> None:
    topo = three_tier()
    policy = {**load_policy(None), "max_duration": "5m"}
    document = core.assemble_plan(topo, plan(topo), policy, "chaos-suggest 9.9")
    assert document["metadata"]["generator"] == "chaos-suggest 9.9"
    assert re.fullmatch(r"Topology sha256:[0-9a-f]{12}", document["metadata"]["source"]["document"])
    assert document["policy"]["max_duration"] == "5m"
    assert "warnings" not in document["metadata"]
    reordered = json.loads(json.dumps(topo, sort_keys=True))
    assert core.topology_digest(reordered) == document["metadata"]["source"]["document"]


# --- the policy inside the planner ----------------------------------------------------------------------------

def test_planner_never_proposes_what_the_policy_forbids() -> None:
    topo = three_tier()
    for overrides in ({"allow_total_loss": False}, {"allowed_faults": ["pod-delete"]}, {"max_duration": "20s"},
                      {"denied_namespaces": [NS]}, {"allowed_namespaces": ["other"]}, {"max_pods_affected_percent": 30}):
        policy = {**load_policy(None), **overrides}
        for experiment in core.plan_builtin(topo, policy, 20):
            assert violations(experiment, policy, {w["id"] for w in topo["workloads"]}) == [], overrides


def test_without_total_loss_single_replicas_are_only_degraded() -> None:
    experiments = plan(three_tier(), count=20, allow_total_loss=False)
    assert {e["fault"]["type"] for e in experiments if e["target"]["name"] == "postgres"} == {"pod-network-latency"}
    assert not any(e["blast_radius"].get("total_loss") for e in experiments)


def test_without_either_allowance_single_replicas_are_left_alone() -> None:
    experiments = plan(three_tier(), count=20, allow_total_loss=False, allow_single_replica_degradation=False)
    assert "postgres" not in {e["target"]["name"] for e in experiments}
    assert all(e["blast_radius"]["pods_affected_percent"] <= 50 for e in experiments)


def test_durations_are_clamped_to_the_policy_maximum() -> None:
    experiments = plan(three_tier(), count=20, max_duration="20s")
    assert experiments and {e["parameters"]["duration"] for e in experiments} == {"20s"}


def test_denied_namespaces_are_skipped_with_an_info_log(caplog: pytest.LogCaptureFixture) -> None:
    system = workload("coredns", namespace="kube-system", replicas=1, score=100)
    app = workload("api", replicas=2)
    with caplog.at_level("INFO"):
        experiments = plan(topology([system, app]), count=5)
    assert {e["target"]["namespace"] for e in experiments} == {NS}
    assert "not targeting kube-system/Deployment/coredns: policy rule denied-namespace" in caplog.text


def test_a_caller_in_a_denied_namespace_keeps_the_callee_out() -> None:
    api = workload("api", replicas=2)
    scraper = workload("scraper", namespace="monitoring", replicas=1)
    assert plan(topology([api, scraper], [edge(scraper, api)]), count=20) == []


def test_max_experiments_caps_the_count() -> None:
    assert len(plan(three_tier(), count=10, max_experiments=2)) == 2


def test_assemble_plan_rejects_an_experiment_that_breaks_the_policy() -> None:
    topo = three_tier()
    experiments = plan(topo)
    experiments[1] = {**experiments[1], "abort_thresholds": []}
    with pytest.raises(PolicyViolation) as caught:
        core.assemble_plan(topo, experiments, load_policy(None), "chaos-suggest test")
    assert caught.value.rule == "abort-thresholds-required"
    assert caught.value.path == "$.experiments[1]"


def test_assemble_plan_rejects_a_target_missing_from_the_topology() -> None:
    topo = three_tier()
    experiments = plan(topology([workload("elsewhere")]))
    with pytest.raises(PolicyViolation) as caught:
        core.assemble_plan(topo, experiments, load_policy(None), "chaos-suggest test")
    assert caught.value.rule == "unknown-target"


# --- scale ----------------------------------------------------------------------------------------------------

def test_a_long_dependency_chain_is_walked_once_per_target() -> None:
    """Transitive callers of a 3,000-deep chain: linear work, no recursion limit."""
    chain = [workload(f"w{i}", replicas=2, score=i % 100) for i in range(3000)]
    edges = [edge(chain[i + 1], chain[i]) for i in range(len(chain) - 1)]
    experiments = plan(topology(chain, edges, check=False), count=3)
    assert len(experiments) == 3
    assert all(len(e["blast_radius"]["workloads"]) >= 1 for e in experiments)


def test_a_pdb_that_blocks_evictions_rules_out_node_drain_only() -> None:
    api = workload("api", replicas=2, risks=(("all-replicas-one-node", "high"), ("pdb-blocks-eviction", "high")))
    faults = {e["fault"]["type"] for e in plan(topology([api]), count=20)}
    assert "node-drain" not in faults and "pod-delete" in faults


@pytest.mark.parametrize("risk", ["not-ready", "no-ready-endpoints"])
def test_a_workload_that_is_failing_already_is_left_alone(risk: str) -> None:
    assert plan(topology([workload("api", replicas=2, risks=((risk, "high"),))])) == []


def test_odd_but_valid_names_still_give_a_valid_plan() -> None:
    # Workload names may hold dots; container names are DNS labels, which the plan's schema holds them to.
    odd = workload("web--v2.beta", replicas=1, container={"name": "web"})
    caller = workload("a.b", replicas=2, container={"name": "a"})
    topo = topology([odd, caller], [edge(caller, odd), edge(odd, odd)])
    experiments = plan(topo, count=20)
    validate(core.assemble_plan(topo, experiments, load_policy(None), "chaos-suggest test"), "ExperimentPlan", "plan")
    first = experiments[0]
    assert first["id"] == "01-pod-delete-web--v2-beta"
    assert [t["name"] for t in first["abort_thresholds"]] == ["a-b-error-rate", "web-v2-beta-replicas-unavailable"]
    assert first["rationale"]["dependencies"] == ["shop/Deployment/a.b -> shop/Deployment/web--v2.beta"]


def test_soft_dependency_gets_packet_loss_with_its_callers_error_rate() -> None:
    tracing = workload("tracing", replicas=2)
    api = workload("api", replicas=2)
    topo = topology([tracing, api], [{**edge(api, tracing), "hard": False}])
    loss = by_target(plan(topo, count=20))[("tracing", "pod-network-loss")]
    assert loss["parameters"]["loss_percent"] == 50
    assert "its callers api, which can serve without it, degrade gracefully" in loss["hypothesis"]
    assert [t["name"] for t in loss["abort_thresholds"]] == ["api-error-rate", "tracing-replicas-unavailable"]


def test_autoscaler_headroom_gets_pod_autoscaler_to_its_maximum() -> None:
    api = workload("api", replicas=2, protection={"hpa": "shop/api", "min_replicas": 2, "max_replicas": 6})
    scale = by_target(plan(topology([api]), count=20))[("api", "pod-autoscaler")]
    assert scale["parameters"] == {"duration": "1m", "replica_count": 6}
    assert scale["blast_radius"]["pods_affected_percent"] == 0 and scale["blast_radius"]["max_pods"] == 0
    assert scale["hypothesis"].startswith("When Deployment api is scaled from 2 to 6 replicas for 1m")
    assert scale["abort_thresholds"][-1]["value"] == 2


# --- families of hypotheses, tiers that are not the application -----------------------------------------------

def test_a_plan_spans_the_families_before_repeating_one() -> None:
    experiments = plan(three_tier(), count=5)
    faults = [e["fault"]["type"] for e in experiments]
    assert faults == ["pod-delete", "pod-memory-hog", "pod-network-latency", "pod-network-latency", "pod-delete"]
    assert len(set(faults)) >= 3
    assert all(" Score " in e["rationale"]["summary"] for e in experiments)
    assert experiments[0]["rationale"]["summary"].endswith(
        "every family gets an experiment before any repeats.")


def test_a_slow_single_replica_database_is_judged_by_its_callers() -> None:
    slow = by_target(plan(three_tier(), count=5))[("postgres", "pod-network-latency")]
    assert slow["parameters"]["pods_affected_percent"] == 100 and slow["blast_radius"]["max_pods"] == 1
    assert "total_loss" not in slow["blast_radius"]
    assert "its callers api" in slow["blast_radius"]["description"]
    assert [t["name"] for t in slow["abort_thresholds"]] == ["api-error-rate", "api-p99-latency", "postgres-replicas-unavailable"]
    assert [c["name"] for c in slow["steady_state"]][-1] == "api-error-rate-normal"
    assert "its callers api absorb the delay" in slow["hypothesis"]
    assert slow["rationale"]["dependencies"] == ["shop/Deployment/api -> shop/StatefulSet/postgres"]


def test_degradation_bounds_of_the_policy_hold_for_the_planner() -> None:
    for experiment in plan(three_tier(), count=20, max_latency_ms=100):
        assert experiment["fault"]["type"] != "pod-network-latency"


def test_tier_other_is_targeted_only_when_the_policy_names_it() -> None:
    loadgen = workload("loadgen", replicas=1, tier="other", role="load-generator")
    web = workload("web", replicas=1, tier="frontend")
    topo = topology([loadgen, web], [edge(loadgen, web)])
    assert "loadgen" not in {e["target"]["name"] for e in plan(topo, count=10)}
    everything = ["backend", "cache", "database", "frontend", "other", "queue"]
    assert "loadgen" in {e["target"]["name"] for e in plan(topo, count=10, target_tiers=everything)}


def test_what_the_observability_stack_depends_on_is_never_targeted() -> None:
    grafana = workload("grafana", replicas=1, tier="other", role="observability")
    prometheus = workload("prometheus", replicas=1, tier="other", role="observability")
    store = workload("metrics-store", replicas=1, tier="database", stateful=True)
    topo = topology([grafana, prometheus, store], [edge(grafana, prometheus), edge(prometheus, store)])
    everything = ["backend", "cache", "database", "frontend", "other", "queue"]
    assert {e["target"]["name"] for e in plan(topo, count=10, target_tiers=everything)} == {"grafana"}


def test_node_drain_names_the_workloads_on_the_drained_node_and_watches_their_callers() -> None:
    # Issue 14 point 5: the drain evicts every pod on its node; the plan says whose, and their callers' errors abort.
    risk = (("no-anti-affinity", "medium"),)
    cart = workload("cart", replicas=2, risks=risk, runtime={"nodes": ["node-1", "node-2"]})
    db = workload("db", kind="StatefulSet", replicas=1, tier="database", runtime={"nodes": ["node-1"]})
    orders = workload("orders", replicas=2, runtime={"nodes": ["node-3", "node-2"]})
    agent = workload("agent", kind="DaemonSet", replicas=1, runtime={"nodes": ["node-1", "node-2"]})
    experiments = by_target(plan(topology([cart, db, orders, agent], [edge(orders, db)]), count=20))
    drain = experiments[("cart", "node-drain")]
    assert (drain["target"]["node"], drain["target"]["litmus_node"]) == ("node-1", "node-2")
    assert f"{NS}/StatefulSet/db" in drain["blast_radius"]["description"]
    assert "agent" not in drain["blast_radius"]["description"]  # a drain leaves DaemonSet pods in place
    assert {f"{NS}/StatefulSet/db", f"{NS}/Deployment/orders"} <= set(drain["blast_radius"]["workloads"])
    assert any("orders" in threshold["description"] for threshold in drain["abort_thresholds"])


def test_faults_litmus_aims_by_one_label_need_a_label_unique_to_the_target() -> None:
    risk = (("no-anti-affinity", "medium"),)
    shared = {"app.kubernetes.io/part-of": "shop"}
    web = workload("web", replicas=2, risks=risk, runtime={"nodes": ["node-1", "node-2"]})
    web["selector"] = web["labels"] = {**shared, "app": "web"}
    twin = workload("twin", replicas=2, risks=risk, runtime={"nodes": ["node-1", "node-2"]})
    twin["selector"] = twin["labels"] = dict(shared)
    experiments = by_target(plan(topology([web, twin]), count=20))
    assert experiments[("web", "node-drain")]["target"]["label_selector"].startswith("app=web,")
    assert ("twin", "node-drain") not in experiments  # its only label is shared: rule first-label-not-unique
