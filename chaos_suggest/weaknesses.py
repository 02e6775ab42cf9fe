"""The built-in planner's first half: the weak points of a Topology's workloads, as scored candidates (no I/O).

planner.select takes candidates() best first. A weakness is read from a workload's facts (replicas, containers,
protection, runtime) or from its risk ids, and names the fault (a chaosgen.faults type) that tests it and the
family of hypotheses it belongs to (FAMILIES): a plan spans the families before it repeats one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chaos_suggest import promql
from chaos_suggest.topology import TopologyIndex, app_containers, first_label_selector
from chaosgen.faults import TOTAL_LOSS_FAULTS, fault_named
from chaosgen.policy import namespace_violations, tier_violations

log = logging.getLogger(__name__)

TARGETABLE_KINDS = promql.READY_REPLICA_KINDS
DATA_TIERS = ("database", "cache", "queue")
SEVERITY_BONUS = {"low": 0, "medium": 5, "high": 10, "critical": 15}


# The families of hypotheses, with the words a rationale uses for them.
FAMILIES = {
    "replica": "replica and rescheduling",
    "dependency": "dependency failure",
    "data": "data store",
    "resources": "resource exhaustion",
    "node": "node failure",
}

Detector = Callable[[dict[str, Any], TopologyIndex, list[dict[str, Any]]], bool]


@dataclass(frozen=True)
class Weakness:
    """A weak point a fault tests: found from the workload's facts and risk ids, scored, told in the hypothesis."""

    key: str
    fault: str
    family: str
    weight: int
    risk_tokens: tuple[str, ...]
    applies: Detector  # (workload, index, its risks matching risk_tokens) -> shows the weakness


@dataclass(frozen=True)
class Candidate:
    score: int
    workload_id: str
    weakness: Weakness
    risks: list[str]
    score_parts: str  # how the score adds up, for the rationale

    def sort_key(self, penalty: int = 0) -> tuple[int, str, str]:
        """Best first; ties broken by target and fault so that the order never depends on input order."""
        return (penalty - self.score, self.workload_id, self.weakness.fault)



def _container_fact(test: Callable[[dict[str, Any]], bool]) -> Detector:
    """A weakness of some container; the risk ids decide only when the Topology does not list containers."""

    def applies(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
        if "containers" not in workload:
            return bool(risks)
        return any(test(container) for container in app_containers(workload))

    return applies


def _single_replica(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return bool(workload["replicas"] == 1)


def _has_hpa(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return bool(workload.get("protection", {}).get("hpa")) or bool(risks)


def _may_share_a_node(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """Replicas that nothing keeps apart (flagged by a risk), seen on several nodes: draining one of them shows
    whether the rest carry the load while its pods move. Replicas on one node, or on nodes the Topology does not
    know, are not drained: that could take every replica at once, an outage rather than a test."""
    nodes = workload.get("runtime", {}).get("nodes") or []
    return workload["replicas"] >= 2 and len(set(nodes)) >= 2 and bool(risks)


def _has_callers(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return workload["id"] in index.edges_into


def _is_data_store(workload: dict[str, Any]) -> bool:
    return bool(workload.get("stateful")) or workload["tier"] in DATA_TIERS


def _data_store_with_callers(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return _is_data_store(workload) and _has_callers(workload, index, risks)


def _data_store_alone(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """A store whose callers the Topology does not know: it is tested for itself, under CPU pressure."""
    return _is_data_store(workload) and not _has_callers(workload, index, risks)


def _has_soft_callers(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """Callers that can serve without it (a cache, tracing): they must degrade, not fail."""
    return any(edge.get("hard") is False for edge in index.edges_into.get(workload["id"], []))


def _can_scale_out(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """An autoscaler that may add replicas: the cluster must have room for its maximum."""
    scalable = workload["kind"] in ("Deployment", "StatefulSet")
    return scalable and bool((workload.get("protection", {}).get("max_replicas") or 0) > workload["replicas"])


def _replicated(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return bool(workload["replicas"] >= 2)


_LIMIT_TOKENS = ("no-limits", "no-resource-limits", "no-resources", "resource-limits")
WEAKNESSES = (
    Weakness("single-replica", "pod-delete", "replica", 40, ("single-replica", "one-replica"), _single_replica),
    Weakness("no-readiness-probe", "container-kill", "replica", 20, ("readiness",),
             _container_fact(lambda c: c.get("readiness_probe") is False)),
    Weakness("replicated", "pod-delete", "replica", 5, ("no-pdb",), _replicated),
    # Slow or lossy stores and services, judged by their callers: the dependency failures of the service graph.
    Weakness("data-store-latency", "pod-network-latency", "data", 35, (), _data_store_with_callers),
    Weakness("data-store-pressure", "pod-cpu-hog", "data", 25, (), _data_store_alone),
    Weakness("dependency", "pod-network-latency", "dependency", 30, (), _has_callers),
    Weakness("soft-dependency", "pod-network-loss", "dependency", 20, (), _has_soft_callers),
    Weakness("no-memory-limit", "pod-memory-hog", "resources", 25, ("memory-limit", *_LIMIT_TOKENS),
             _container_fact(lambda c: "memory" not in c.get("limits", {}))),
    Weakness("hpa", "pod-cpu-hog", "resources", 20, ("hpa",), _has_hpa),
    Weakness("no-cpu-limit", "pod-cpu-hog", "resources", 15, ("cpu-limit", *_LIMIT_TOKENS),
             _container_fact(lambda c: "cpu" not in c.get("limits", {}))),
    Weakness("hpa-capacity", "pod-autoscaler", "resources", 10, (), _can_scale_out),
    Weakness("no-anti-affinity", "node-drain", "node", 20, ("anti-affinity", "topology-spread", "one-node", "same-node"),
             _may_share_a_node),
)
# Risks that make some faults unsafe rather than interesting: (risk-id token, faults it rules out, why).
UNSAFE_WITH = (
    ("emptydir", TOTAL_LOSS_FAULTS, "it keeps data in an emptyDir volume that a removed pod loses"),
    ("emptydir", ("pod-memory-hog",), "a memory hog may get it OOM-killed, and it keeps its data outside a persistent volume"),
    ("pdb-blocks-eviction", ("node-drain",), "its PodDisruptionBudget blocks every eviction, so a drain would hang"),
)
# Risks that say the workload is failing already: chaos would only add to an incident.
FAILING_RISKS = ("not-ready", "no-ready-endpoints")


def _matching_risks(workload: dict[str, Any], tokens: tuple[str, ...]) -> list[dict[str, Any]]:
    risks = workload["risks"]
    if not (tokens and risks):
        return []
    return [risks[position] for position in _matching_positions(tuple(risk["id"] for risk in risks), tokens)]


@lru_cache(maxsize=4096)
def _matching_positions(risk_ids: tuple[str, ...], tokens: tuple[str, ...]) -> tuple[int, ...]:
    """Which of a workload's risks name a token: asked 13 times per workload, and most workloads share risk ids."""
    return tuple(position for position, risk_id in enumerate(risk_ids) if any(token in risk_id for token in tokens))


def _untargetable_reason(workload: dict[str, Any], index: TopologyIndex, policy: dict[str, Any]) -> str | None:
    if workload["kind"] not in TARGETABLE_KINDS:
        return f"a {workload['kind']} has no controller that recreates what a fault removes"
    if workload["replicas"] < 1:
        return "it has no replicas"
    if not (workload["selector"] or workload["labels"]):
        return "it has no labels to select its pods by"
    failing = _matching_risks(workload, FAILING_RISKS)
    if failing:
        return f"it is failing already ({failing[0]['id']}: {failing[0]['message']})"
    if workload["id"] in index.watchers_need:
        return f"{index.watchers_need[workload['id']]} depends on it, and the run needs its observability and chaos engine"
    broken = namespace_violations({workload["namespace"]}, policy) + tier_violations(workload["tier"], policy)
    if broken:
        rule, message = broken[0]
        return f"policy rule {rule}: {message}"
    return None


def candidates(index: TopologyIndex, policy: dict[str, Any]) -> list[Candidate]:
    """The best candidate per (workload, fault) of every workload the policy lets us touch."""
    allowed_faults = set(policy["allowed_faults"])
    best: dict[tuple[str, str], Candidate] = {}
    for workload_id in sorted(index.workloads):
        workload = index.workloads[workload_id]
        reason = _untargetable_reason(workload, index, policy)
        if reason:
            log.info("not targeting %s: %s", workload_id, reason)
            continue
        for weakness, risks in _weaknesses_of(workload, index, allowed_faults):
            parts = [("criticality", index.criticality(workload_id)), (f"weakness {weakness.key}", weakness.weight),
                     ("stateful single replica", _data_bonus(workload, weakness)),
                     ("risk severity", max((SEVERITY_BONUS[r["severity"]] for r in risks), default=0))]
            score = sum(value for _, value in parts)
            explained = " + ".join(f"{what} {value}" for what, value in parts if value)
            candidate = Candidate(score, workload_id, weakness, sorted({r["id"] for r in risks}), explained)
            key = (workload_id, weakness.fault)
            if key not in best or candidate.sort_key() < best[key].sort_key():
                best[key] = candidate
    return list(best.values())


def _weaknesses_of(workload: dict[str, Any], index: TopologyIndex, allowed_faults: set[str]) -> list[tuple[Weakness, list[dict[str, Any]]]]:
    """The weaknesses a workload shows, with the risks behind each, minus the faults its risks make unsafe."""
    found = []
    for weakness in WEAKNESSES:
        risks = _matching_risks(workload, weakness.risk_tokens)
        if weakness.fault in allowed_faults and weakness.applies(workload, index, risks):
            found.append((weakness, risks))
    found = [(weakness, risks) for weakness, risks in found if _aimable(workload, index, weakness.fault)]
    for token, unsafe_faults, why in UNSAFE_WITH:
        if _matching_risks(workload, (token,)):
            dropped = sorted({weakness.fault for weakness, _ in found if weakness.fault in unsafe_faults})
            if dropped:
                log.info("not running %s on %s: %s", ", ".join(dropped), workload["id"], why)
            found = [(weakness, risks) for weakness, risks in found if weakness.fault not in unsafe_faults]
    return found


def _aimable(workload: dict[str, Any], index: TopologyIndex, fault_name: str) -> bool:
    """Whether Litmus can aim the fault at exactly this workload; why not is logged with the rule's name."""
    fault = fault_named(fault_name)
    if workload["kind"] not in fault.target_kinds:
        log.info("not running %s on %s: rule unsupported-target-kind: Litmus targets %s", fault_name, workload["id"],
                 ", ".join(fault.target_kinds))
        return False
    if fault.first_label_only and first_label_selector(workload, index) is None:
        log.info("not running %s on %s: rule first-label-not-unique: Litmus aims it by one label and every label "
                 "of it is shared with another workload of %s", fault_name, workload["id"], workload["namespace"])
        return False
    return True


def _data_bonus(workload: dict[str, Any], weakness: Weakness) -> int:
    """Losing the only replica of a stateful or data-tier workload is worse than losing a stateless one."""
    return 10 if weakness.key == "single-replica" and _is_data_store(workload) else 0
