"""The safety policy (chaosgen.policy): loading --policy files over the defaults, and every rule it enforces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chaosgen.errors import InputRejected, PolicyViolation
from chaosgen.faults import FAULT_TYPES
from chaosgen.policy import DEFAULT_POLICY, enforce, enforce_plan, load_policy, tier_violations, violations

TARGET = "shop/Deployment/api"


def experiment(**changes: Any) -> dict[str, Any]:
    """A valid experiment on 1 of 2 pods of shop/Deployment/api; changes replace top-level fields."""
    base = {
        "id": "01-pod-delete-api",
        "target": {"workload": TARGET, "namespace": "shop", "kind": "Deployment", "name": "api", "label_selector": "app=api"},
        "fault": {"type": "pod-delete"},
        "parameters": {"duration": "30s", "interval": "10s", "pods_affected_percent": 50},
        "blast_radius": {"namespaces": ["shop"], "workloads": [TARGET], "pods_affected_percent": 50, "max_pods": 1},
        "abort_thresholds": [{"name": "api-error-rate", "query": "vector(0)", "operator": ">", "value": 0.05, "for": "30s"}],
    }
    base.update(changes)
    return base


def rules(candidate: dict[str, Any], policy: dict[str, Any] | None = None, known: set[str] | None = None) -> list[str]:
    return [rule for rule, _ in violations(candidate, policy or load_policy(None), known)]


def test_a_bounded_experiment_passes() -> None:
    assert rules(experiment(), known={TARGET}) == []


def test_defaults_deny_system_chaos_and_monitoring_namespaces() -> None:
    denied = set(load_policy(None)["denied_namespaces"])
    assert {"kube-system", "kube-public", "kube-node-lease", "litmus", "monitoring"} <= denied


@pytest.mark.parametrize("where", ["target", "blast_radius"])
def test_denied_namespace_in_target_or_blast_radius(where: str) -> None:
    candidate = experiment()
    if where == "target":
        candidate["target"] = {**candidate["target"], "namespace": "kube-system", "workload": "kube-system/Deployment/api"}
    else:
        candidate["blast_radius"] = {**candidate["blast_radius"], "namespaces": ["shop", "monitoring"]}
    assert "denied-namespace" in rules(candidate)


def test_namespace_not_allowed() -> None:
    policy = {**load_policy(None), "allowed_namespaces": ["staging"]}
    assert rules(experiment(), policy) == ["namespace-not-allowed"]


def test_fault_not_allowed() -> None:
    policy = {**load_policy(None), "allowed_faults": ["pod-cpu-hog"]}
    assert rules(experiment(), policy) == ["fault-not-allowed"]


def test_target_mismatch() -> None:
    candidate = experiment()
    candidate["target"] = {**candidate["target"], "name": "web"}
    assert "target-mismatch" in rules(candidate)


def test_unknown_target_only_when_the_known_workloads_are_given() -> None:
    assert rules(experiment(), known={"shop/Deployment/web"}) == ["unknown-target"]
    assert rules(experiment()) == []


def test_blast_radius_must_list_the_target() -> None:
    candidate = experiment()
    candidate["blast_radius"] = {**candidate["blast_radius"], "workloads": ["shop/Deployment/web"]}
    assert rules(candidate) == ["blast-radius-target"]


@pytest.mark.parametrize("field", ["parameters", "blast_radius"])
def test_max_pods_affected_counts_parameters_and_blast_radius(field: str) -> None:
    candidate = experiment()
    candidate[field] = {**candidate[field], "pods_affected_percent": 60}
    assert rules(candidate) == ["max-pods-affected"]


def total_loss(fault: str = "pod-delete", declared: bool = True) -> dict[str, Any]:
    candidate = experiment(fault={"type": fault})
    if fault == "node-drain":
        candidate["target"] = {**candidate["target"], "node": "worker-1", "litmus_node": "worker-2"}
    candidate["parameters"] = {**candidate["parameters"], "pods_affected_percent": 100}
    candidate["blast_radius"] = {**candidate["blast_radius"], "pods_affected_percent": 100, "max_pods": 2}
    if declared:
        candidate["blast_radius"]["total_loss"] = True
    return candidate


def test_total_loss_is_allowed_for_a_declared_pod_removing_fault() -> None:
    for fault in ("pod-delete", "container-kill", "node-drain"):
        assert rules(total_loss(fault)) == []


@pytest.mark.parametrize(
    ("candidate", "policy_change", "reason"),
    [
        (total_loss(declared=False), {}, "needs blast_radius.total_loss"),
        (total_loss("pod-memory-hog"), {}, "total loss is allowed only for pod-delete, container-kill, node-drain"),
        (total_loss(), {"allow_total_loss": False}, "allow_total_loss is false"),
    ],
    ids=["undeclared", "degrading-fault", "not-allowed"],
)
def test_total_loss_refusals_say_why(candidate: dict[str, Any], policy_change: dict[str, Any], reason: str) -> None:
    found = violations(candidate, {**load_policy(None), **policy_change})
    assert [rule for rule, _ in found] == ["max-pods-affected"]
    assert reason in found[0][1]


def test_max_duration() -> None:
    candidate = experiment(parameters={"duration": "11m", "pods_affected_percent": 50})
    assert rules(candidate) == ["max-duration"]
    assert rules(candidate, {**load_policy(None), "max_duration": "1h"}) == []


def test_abort_thresholds_required_unless_switched_off() -> None:
    candidate = experiment(abort_thresholds=[])
    assert rules(candidate) == ["abort-thresholds-required"]
    assert rules(candidate, {**load_policy(None), "require_abort_thresholds": False}) == []


def test_enforce_raises_the_first_rule_with_its_path() -> None:
    with pytest.raises(PolicyViolation) as caught:
        enforce(experiment(abort_thresholds=[]), load_policy(None), "plan.json", "$.experiments[0]")
    assert caught.value.rule == "abort-thresholds-required"
    assert str(caught.value) == (
        "plan.json at $.experiments[0]: policy rule abort-thresholds-required: an experiment needs at least one abort threshold"
    )
    assert caught.value.exit_code == 3


def test_enforce_plan_checks_count_and_every_experiment() -> None:
    policy = {**load_policy(None), "max_experiments": 1}
    with pytest.raises(PolicyViolation) as caught:
        enforce_plan([experiment(), experiment()], policy, "plan.json")
    assert (caught.value.rule, caught.value.path) == ("max-experiments", "$.experiments")
    with pytest.raises(PolicyViolation) as caught:
        enforce_plan([experiment(), experiment(fault={"type": "pod-autoscaler"})], {**policy, "max_experiments": 5,
                     "allowed_faults": ["pod-delete"]}, "plan.json")
    assert (caught.value.rule, caught.value.path) == ("fault-not-allowed", "$.experiments[1]")
    enforce_plan([experiment()], load_policy(None), "plan.json", {TARGET})


# --- loading ---------------------------------------------------------------------------------------------------

def test_defaults_are_a_fresh_sorted_copy() -> None:
    policy = load_policy(None)
    policy["denied_namespaces"].append("mine")
    assert "mine" not in load_policy(None)["denied_namespaces"]
    assert load_policy(None)["allowed_faults"] == sorted(FAULT_TYPES)
    assert set(load_policy(None)) == set(DEFAULT_POLICY)


def test_policy_file_overrides_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "apiVersion: chaosgen.dev/v1\nkind: SafetyPolicy\nmax_duration: 2m\n"
        "denied_namespaces: [prod, kube-system, prod]\nallow_total_loss: false\n"
    )
    policy = load_policy(str(path))
    assert policy["max_duration"] == "2m"
    assert policy["denied_namespaces"] == ["kube-system", "prod"]
    assert policy["allow_total_loss"] is False
    assert policy["max_pods_affected_percent"] == DEFAULT_POLICY["max_pods_affected_percent"]
    assert "kind" not in policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_pods_affected_percent: 150\n", "SafetyPolicy schema"),
        ("max_duration: forever\n", "SafetyPolicy schema"),
        ("denied_namespace: [prod]\n", "SafetyPolicy schema"),
        ("kind: Topology\n", "SafetyPolicy schema"),
        ("- a\n- b\n", "a policy file holds one YAML or JSON mapping"),
        ("a: 1\n---\nb: 2\n", "a policy file holds one YAML or JSON mapping"),
        ("a: b: c\n", "not valid YAML"),
        ("", "empty input"),
    ],
    ids=["percent", "duration", "unknown-field", "kind", "list", "two-docs", "yaml", "empty"],
)
def test_bad_policy_files_are_rejected_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(InputRejected) as caught:
        load_policy(str(path))
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_missing_policy_file() -> None:
    with pytest.raises(InputRejected, match="no such file"):
        load_policy("/nonexistent/policy.yaml")


def test_violations_do_not_modify_their_inputs() -> None:
    candidate, policy = experiment(), load_policy(None)
    before = copy.deepcopy((candidate, policy))
    violations(candidate, policy, {TARGET})
    assert (candidate, policy) == before


# --- degradation faults: intensity bounds, the only pod of a single replica, target tiers ---

def degradation(fault: str = "pod-network-latency", callers_watched: bool = True, **parameters: Any) -> dict[str, Any]:
    """A degradation of the only pod of shop/StatefulSet/db, which shop/Deployment/api calls."""
    db = "shop/StatefulSet/db"
    watched = 'service="api"' if callers_watched else 'statefulset="db"'
    return experiment(
        target={"workload": db, "namespace": "shop", "kind": "StatefulSet", "name": "db", "label_selector": "app=db"},
        fault={"type": fault},
        parameters={"duration": "60s", "pods_affected_percent": 100, **parameters},
        blast_radius={"namespaces": ["shop"], "workloads": [db, TARGET], "pods_affected_percent": 100, "max_pods": 1},
        abort_thresholds=[{"name": "watch", "query": f"sum(rate(x{{{watched}}}[1m]))", "operator": ">", "value": 1, "for": "30s"}],
    )


@pytest.mark.parametrize("fault, parameters", [
    ("pod-network-latency", {"latency_ms": 300, "jitter_ms": 50}),
    ("pod-network-loss", {"loss_percent": 50}),
    ("pod-cpu-hog", {"cpu_cores": 1}),
    ("pod-memory-hog", {"memory_mb": 500}),
])
def test_a_bounded_degradation_may_take_the_only_pod_of_a_single_replica(fault: str, parameters: dict[str, Any]) -> None:
    assert rules(degradation(fault, **parameters)) == []


@pytest.mark.parametrize("fault, parameters, rule, message", [
    ("pod-network-latency", {"latency_ms": 1900, "jitter_ms": 200}, "max-latency",
     "latency_ms 1900 + jitter_ms 200 exceeds max_latency_ms 2000ms"),
    ("pod-network-loss", {"loss_percent": 80}, "max-packet-loss", "loss_percent 80 exceeds max_packet_loss_percent 50%"),
    ("pod-cpu-hog", {"cpu_cores": 4}, "max-cpu-cores", "cpu_cores 4 exceeds max_cpu_cores 2 cores"),
    ("pod-memory-hog", {"memory_mb": 4096}, "max-memory", "memory_mb 4096 exceeds max_memory_mb 1024 MiB"),
])
def test_every_intensity_bound_names_itself(fault: str, parameters: dict[str, Any], rule: str, message: str) -> None:
    assert violations(degradation(fault, **parameters), load_policy(None)) == [(rule, message)]


def test_intensity_bounds_come_from_the_policy() -> None:
    policy = {**load_policy(None), "max_latency_ms": 200, "max_cpu_cores": 1}
    assert rules(degradation(latency_ms=300), policy) == ["max-latency"]
    assert rules(degradation("pod-cpu-hog", cpu_cores=1), policy) == []


def test_a_degraded_single_replica_must_be_watched_through_its_callers() -> None:
    assert rules(degradation(callers_watched=False, latency_ms=300)) == ["degradation-unwatched"]
    lonely = degradation(callers_watched=False, latency_ms=300)
    lonely["blast_radius"]["workloads"] = [lonely["target"]["workload"]]
    assert rules(lonely) == []  # no callers: its own thresholds are all there is to watch


def test_whole_single_replica_degradation_can_be_switched_off_and_needs_a_single_replica() -> None:
    policy = {**load_policy(None), "allow_single_replica_degradation": False}
    assert violations(degradation(latency_ms=300), policy)[0] == (
        "max-pods-affected", "100% of pods affected exceeds 50% and allow_single_replica_degradation is false")
    replicated = degradation(latency_ms=300)
    replicated["blast_radius"]["max_pods"] = 3
    assert rules(replicated) == ["max-pods-affected"]


def test_tier_not_targeted_unless_the_policy_names_it() -> None:
    policy = load_policy(None)
    assert "other" not in policy["target_tiers"]
    assert tier_violations("database", policy) == []
    assert tier_violations("other", policy) == [
        ("tier-not-targeted", "tier other is not in target_tiers (backend, cache, database, frontend, queue)")]
    assert tier_violations("other", {**policy, "target_tiers": ["other"]}) == []
