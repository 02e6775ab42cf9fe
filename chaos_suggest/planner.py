"""The built-in planner: from a Topology's weak points to ranked, policy-safe experiments (no LLM, no I/O).

chaos_suggest.core.plan_builtin is its entry point. How it works:

1. Each workload the policy lets us touch yields candidates, one per weakness it shows (WEAKNESSES): a weakness
   is read from the workload's facts (replicas, containers, protection, runtime) or from its risk ids, and names
   the fault that tests it: a single replica -> pod-delete (total loss, the controller must recreate it); no
   memory/CPU limit -> pod-memory-hog / pod-cpu-hog; an HPA -> pod-cpu-hog (it must scale out); no readiness
   probe -> container-kill; replicas that may share one node -> node-drain; callers depending on it ->
   pod-network-latency on it with latency thresholds on the callers; any replicated workload -> pod-delete.
2. A candidate's score is the workload's criticality plus the weight of its weakness and the severity of the
   risks it tests. Only the best candidate per (workload, fault) is kept: no two experiments are the same test.
3. Candidates are taken best first from a heap; each one already chosen for the same target or fault lowers the
   score of the rest (lazily re-scored, so choosing N costs O(C log C) for C candidates), which spreads the plan
   over several weak points. A chosen candidate is built into a full experiment and checked against the policy;
   one that breaks a rule is skipped and logged at info level.

Only Deployments, StatefulSets and ReplicaSets are targeted: their controllers recreate what a fault removes.
"""

from __future__ import annotations

import heapq
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from chaos_suggest import promql
from chaosgen.policy import TOTAL_LOSS_FAULTS, namespace_violations, violations
from chaosgen.units import format_duration, parse_duration

log = logging.getLogger(__name__)

TARGETABLE_KINDS = promql.READY_REPLICA_KINDS
DATA_TIERS = ("database", "cache", "queue")
SEVERITY_BONUS = {"low": 0, "medium": 5, "high": 10, "critical": 15}
SAME_TARGET_PENALTY = 30
SAME_FAULT_PENALTY = 10
WATCHED_CALLERS = 3
CITED_EDGES = 10
MEMORY_HOG_MB = 500
CPU_HOG_CORES = 1
LATENCY_MS = 300
LOSS_PERCENT = 50
JITTER_MS = 50


class TopologyIndex:
    """Lookups over one Topology, built once in O(workloads + dependencies): workloads by id, callers by callee."""

    def __init__(self, topology: dict[str, Any]) -> None:
        self.workloads: dict[str, dict[str, Any]] = {w["id"]: w for w in topology["workloads"]}
        self.edges_into: dict[str, list[dict[str, Any]]] = {}
        for edge in topology["dependencies"]:
            known = edge["to"] in self.workloads and edge["from"] in self.workloads
            if known and not edge["external"] and edge["from"] != edge["to"]:
                self.edges_into.setdefault(edge["to"], []).append(edge)
        for edges in self.edges_into.values():
            edges.sort(key=lambda e: (-self.criticality(e["from"]), e["from"]))
        self.callers = {callee: list(dict.fromkeys(e["from"] for e in edges)) for callee, edges in self.edges_into.items()}
        self.served = {wid for service in topology["services"] for wid in service["selects"]}
        self._upstream: dict[str, list[str]] = {}

    def criticality(self, workload_id: str) -> int:
        return self.workloads[workload_id]["criticality"]["score"]

    def direct_callers(self, workload_id: str) -> list[str]:
        """Workloads that call this one, most critical first (each once)."""
        return self.callers.get(workload_id, [])

    def transitive_callers(self, workload_id: str) -> list[str]:
        """Every workload that depends on this one directly or through others, sorted; memoised per workload."""
        if workload_id not in self._upstream:
            seen: set[str] = set()
            stack = [workload_id]
            while stack:
                for caller in self.direct_callers(stack.pop()):
                    if caller not in seen and caller != workload_id:
                        seen.add(caller)
                        stack.append(caller)
            self._upstream[workload_id] = sorted(seen)
        return self._upstream[workload_id]


Detector = Callable[[dict[str, Any], TopologyIndex, list[dict[str, Any]]], bool]


@dataclass(frozen=True)
class Weakness:
    """A weak point a fault tests: found from the workload's facts and risk ids, scored, told in the hypothesis."""

    key: str
    fault: str
    weight: int
    risk_tokens: tuple[str, ...]
    applies: Detector  # (workload, index, its risks matching risk_tokens) -> shows the weakness
    total_loss: bool = False


@dataclass(frozen=True)
class Candidate:
    score: int
    workload_id: str
    weakness: Weakness
    risks: list[str]

    def sort_key(self, penalty: int = 0) -> tuple[int, str, str]:
        """Best first; ties broken by target and fault so that the order never depends on input order."""
        return (penalty - self.score, self.workload_id, self.weakness.fault)


def _app_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in workload.get("containers", []) if not c.get("init")]


def _container_fact(test: Callable[[dict[str, Any]], bool]) -> Detector:
    """A weakness of some container; the risk ids decide only when the Topology does not list containers."""

    def applies(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
        if "containers" not in workload:
            return bool(risks)
        return any(test(container) for container in _app_containers(workload))

    return applies


def _single_replica(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return workload["replicas"] == 1


def _has_hpa(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return bool(workload.get("protection", {}).get("hpa")) or bool(risks)


def _may_share_a_node(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """Several replicas that a drain of one node can all take down: seen on one node, or flagged by a risk."""
    nodes = workload.get("runtime", {}).get("nodes")
    on_one_node = nodes is not None and len(nodes) == 1
    return workload["replicas"] >= 2 and (on_one_node or bool(risks))


def _has_callers(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return workload["id"] in index.edges_into


def _has_soft_callers(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """Callers that can serve without it (a cache, tracing): they must degrade, not fail."""
    return any(edge.get("hard") is False for edge in index.edges_into.get(workload["id"], []))


def _can_scale_out(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    """An autoscaler that may add replicas: the cluster must have room for its maximum."""
    scalable = workload["kind"] in ("Deployment", "StatefulSet")
    return scalable and (workload.get("protection", {}).get("max_replicas") or 0) > workload["replicas"]


def _replicated(workload: dict[str, Any], index: TopologyIndex, risks: list[dict[str, Any]]) -> bool:
    return workload["replicas"] >= 2


_LIMIT_TOKENS = ("no-limits", "no-resource-limits", "no-resources", "resource-limits")
WEAKNESSES = (
    Weakness("single-replica", "pod-delete", 40, ("single-replica", "one-replica"), _single_replica, total_loss=True),
    Weakness("no-memory-limit", "pod-memory-hog", 25, ("memory-limit", *_LIMIT_TOKENS),
             _container_fact(lambda c: "memory" not in c.get("limits", {}))),
    Weakness("no-readiness-probe", "container-kill", 20, ("readiness",),
             _container_fact(lambda c: c.get("readiness_probe") is False), total_loss=True),
    Weakness("no-anti-affinity", "node-drain", 20, ("anti-affinity", "topology-spread", "one-node", "same-node"),
             _may_share_a_node, total_loss=True),
    Weakness("hpa", "pod-cpu-hog", 20, ("hpa",), _has_hpa),
    Weakness("no-cpu-limit", "pod-cpu-hog", 15, ("cpu-limit", *_LIMIT_TOKENS),
             _container_fact(lambda c: "cpu" not in c.get("limits", {}))),
    Weakness("dependency", "pod-network-latency", 15, (), _has_callers),
    Weakness("soft-dependency", "pod-network-loss", 10, (), _has_soft_callers),
    Weakness("hpa-capacity", "pod-autoscaler", 10, (), _can_scale_out),
    Weakness("replicated", "pod-delete", 5, ("no-pdb",), _replicated),
)
# Risks that make some faults unsafe rather than interesting: (risk-id token, faults it rules out, why).
UNSAFE_WITH = (
    ("emptydir", TOTAL_LOSS_FAULTS, "it keeps data in an emptyDir volume that a removed pod loses"),
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


def _untargetable_reason(workload: dict[str, Any], policy: dict[str, Any]) -> str | None:
    if workload["kind"] not in TARGETABLE_KINDS:
        return f"a {workload['kind']} has no controller that recreates what a fault removes"
    if workload["replicas"] < 1:
        return "it has no replicas"
    if not (workload["selector"] or workload["labels"]):
        return "it has no labels to select its pods by"
    failing = _matching_risks(workload, FAILING_RISKS)
    if failing:
        return f"it is failing already ({failing[0]['id']}: {failing[0]['message']})"
    broken = namespace_violations({workload["namespace"]}, policy)
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
        reason = _untargetable_reason(workload, policy)
        if reason:
            log.info("not targeting %s: %s", workload_id, reason)
            continue
        for weakness, risks in _weaknesses_of(workload, index, allowed_faults):
            score = index.criticality(workload_id) + weakness.weight + _data_bonus(workload, weakness)
            score += max((SEVERITY_BONUS[r["severity"]] for r in risks), default=0)
            candidate = Candidate(score, workload_id, weakness, sorted({r["id"] for r in risks}))
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
    for token, unsafe_faults, why in UNSAFE_WITH:
        if _matching_risks(workload, (token,)):
            dropped = sorted({weakness.fault for weakness, _ in found if weakness.fault in unsafe_faults})
            if dropped:
                log.info("not running %s on %s: %s", ", ".join(dropped), workload["id"], why)
            found = [(weakness, risks) for weakness, risks in found if weakness.fault not in unsafe_faults]
    return found


def _data_bonus(workload: dict[str, Any], weakness: Weakness) -> int:
    """Losing the only replica of a stateful or data-tier workload is worse than losing a stateless one."""
    is_data = workload.get("stateful") or workload["tier"] in DATA_TIERS
    return 10 if weakness.key == "single-replica" and is_data else 0


def select(index: TopologyIndex, policy: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Up to count experiments, best first, spread over targets and faults, none of them against the policy."""
    heap = [(c.sort_key(), c) for c in candidates(index, policy)]
    heapq.heapify(heap)
    known = set(index.workloads)
    chosen: list[dict[str, Any]] = []
    picks_per_target: dict[str, int] = {}
    picks_per_fault: dict[str, int] = {}
    while heap and len(chosen) < count:
        _, candidate = heapq.heappop(heap)
        fault = candidate.weakness.fault
        penalty = SAME_TARGET_PENALTY * picks_per_target.get(candidate.workload_id, 0)
        penalty += SAME_FAULT_PENALTY * picks_per_fault.get(fault, 0)
        # Penalties only grow, so a candidate still at least as good as the next one on the heap is the best.
        if heap and candidate.sort_key(penalty) > heap[0][0]:
            heapq.heappush(heap, (candidate.sort_key(penalty), candidate))
            continue
        experiment = build_experiment(index, candidate, policy)
        broken = violations(experiment, policy, known)
        if broken:
            rule, message = broken[0]
            log.info("skipping %s on %s: policy rule %s: %s", fault, candidate.workload_id, rule, message)
            continue
        chosen.append(experiment)
        picks_per_target[candidate.workload_id] = picks_per_target.get(candidate.workload_id, 0) + 1
        picks_per_fault[fault] = picks_per_fault.get(fault, 0) + 1
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Building one experiment


@dataclass(frozen=True)
class Shape:
    """What a target looks like to an experiment: its pods, its callers and the services to watch."""

    workload: dict[str, Any]
    replicas: int
    affected: int
    requested_percent: int
    actual_percent: int
    callers: list[str]
    watched: list[dict[str, Any]]


def _shape(index: TopologyIndex, candidate: Candidate, policy: dict[str, Any]) -> Shape:
    workload = index.workloads[candidate.workload_id]
    replicas = workload["replicas"]
    if candidate.weakness.fault == "pod-autoscaler":
        requested = 0  # it adds pods and touches none of the running ones
    elif candidate.weakness.total_loss and (replicas == 1 or candidate.weakness.fault == "node-drain"):
        requested = 100
    else:
        requested = min(50, policy["max_pods_affected_percent"])
    # Litmus picks max(1, floor(percent * pods / 100)) pods; the blast radius states what that really is.
    affected = replicas if requested == 100 else 0 if requested == 0 else max(1, replicas * requested // 100)
    actual = -(-affected * 100 // replicas)
    callers = index.direct_callers(candidate.workload_id)[:WATCHED_CALLERS]
    watched_ids = callers or ([candidate.workload_id] if candidate.workload_id in index.served else [])
    watched = [index.workloads[wid] for wid in watched_ids]
    return Shape(workload, replicas, affected, requested, actual, callers, watched)


def build_experiment(index: TopologyIndex, candidate: Candidate, policy: dict[str, Any]) -> dict[str, Any]:
    """A complete ExperimentPlan experiment but for id and rank, which core.number_experiments adds."""
    shape = _shape(index, candidate, policy)
    workload = shape.workload
    fault = candidate.weakness.fault
    text = TEXTS[candidate.weakness.key]
    recovery = _expected_recovery(candidate.weakness, workload)
    duration = _clamped(text.duration_seconds, policy)
    parameters = _parameters(fault, shape, duration, text)
    total_loss = candidate.weakness.total_loss and shape.actual_percent == 100
    facts = _facts(shape, duration, recovery, parameters)
    experiment = {
        "title": text.title.format(**facts),
        "hypothesis": text.hypothesis.format(**facts) + _error_clause(shape),
        "generator": "builtin",
        "target": _target(workload, fault),
        "fault": {"type": fault},
        "parameters": parameters,
        "blast_radius": _blast_radius(index, shape, fault, total_loss),
        "abort_thresholds": _abort_thresholds(shape, fault, recovery, total_loss),
        "steady_state": _steady_state(shape),
        "expected_recovery_seconds": recovery,
        "rationale": {
            "summary": text.summary.format(**facts),
            "risks": candidate.risks,
            "dependencies": [f"{caller} -> {workload['id']}" for caller in index.direct_callers(workload["id"])[:CITED_EDGES]],
            "criticality": workload["criticality"]["score"],
        },
    }
    if total_loss:
        experiment["blast_radius"]["total_loss"] = True
    return experiment


@dataclass(frozen=True)
class Text:
    title: str
    hypothesis: str
    summary: str
    duration_seconds: int
    interval_seconds: int | None = None


# Placeholders: {kind} {name} {affected} {replicas} {pods} {duration} {recovery} {container} {callers}
# {memory_mb} {cpu_cores} {latency_ms} {available} {hpa} {latency_limit}
TEXTS = {
    "single-replica": Text(
        "Delete the only pod of {kind} {name}",
        "When {pods} is deleted, the {kind} controller recreates it and it is ready again within {recovery}s",
        "{kind} {name} runs a single replica: losing its pod is an outage of {name} and of every caller that "
        "needs it, so the test is whether it comes back fast enough and whether its callers tolerate the gap.",
        30, 30,
    ),
    "no-memory-limit": Text(
        "Consume {memory_mb} MiB of memory in {affected} of {replicas} pods of {kind} {name}",
        "When {memory_mb} MiB of extra memory is consumed for {duration} in {pods}, which sets no memory "
        "limit, the pods stay ready without OOM kills and {available}",
        "{kind} {name} sets no memory limit, so a leak or a spike in one pod can starve the node and its "
        "neighbours before anything stops it.",
        60,
    ),
    "no-readiness-probe": Text(
        "Kill the {container} container in {affected} of {replicas} pods of {kind} {name}",
        "When the {container} container is killed in {pods}, which has no readiness probe, the kubelet "
        "restarts it within {recovery}s although the restarted pod gets traffic before it is ready",
        "{kind} {name} has no readiness probe, so a restarted container is sent requests before it can serve "
        "them; killing its container shows whether clients see those errors.",
        30, 10,
    ),
    "no-anti-affinity": Text(
        "Drain the node that runs pods of {kind} {name}",
        "When the node running pods of {kind} {name} is drained, which has no pod anti-affinity or topology "
        "spread so all {replicas} replicas may share that node, its pods are rescheduled on other nodes and "
        "ready within {recovery}s",
        "{kind} {name} has {replicas} replicas but nothing keeps them on different nodes, so one node going "
        "away can take all of them at once.",
        60,
    ),
    "hpa": Text(
        "Burn {cpu_cores} CPU core in {affected} of {replicas} pods of {kind} {name} to trigger its autoscaler",
        "When {cpu_cores} CPU core is burned for {duration} in {pods}, the HorizontalPodAutoscaler {hpa} "
        "scales it out within {recovery}s and {available}",
        "{kind} {name} relies on the HorizontalPodAutoscaler {hpa} to absorb load; a CPU hog shows whether it "
        "scales out in time.",
        120,
    ),
    "no-cpu-limit": Text(
        "Burn {cpu_cores} CPU core in {affected} of {replicas} pods of {kind} {name}",
        "When {cpu_cores} CPU core is burned for {duration} in {pods}, which sets no CPU limit, "
        "{available}",
        "{kind} {name} sets no CPU limit, so a busy pod can take CPU from its neighbours on the node.",
        60,
    ),
    "dependency": Text(
        "Add {latency_ms}ms of network latency to {affected} of {replicas} pods of {kind} {name}",
        "When {latency_ms}ms of network latency is added for {duration} to {pods}, its callers {callers} keep "
        "a p99 latency below {latency_limit}s",
        "{callers} depend on {kind} {name}; a slow dependency tests their timeouts and retries.",
        60,
    ),
    "soft-dependency": Text(
        "Drop {loss_percent}% of the packets of {affected} of {replicas} pods of {kind} {name}",
        "When {loss_percent}% of the network packets of {pods} are dropped for {duration}, its callers "
        "{callers}, which can serve without it, degrade gracefully instead of failing",
        "{callers} call {kind} {name} but do not strictly need it; an unreliable network to it shows whether "
        "they really cope without it.",
        60,
    ),
    "hpa-capacity": Text(
        "Scale {kind} {name} to its autoscaler maximum of {max_replicas} replicas",
        "When {kind} {name} is scaled from {replicas} to {max_replicas} replicas for {duration}, the cluster "
        "schedules every new pod and all are ready within {recovery}s",
        "The autoscaler of {kind} {name} may grow it to {max_replicas} replicas; whether the cluster has room for "
        "them is only known once they are scheduled.",
        60,
    ),
    "replicated": Text(
        "Delete {affected} of {replicas} pods of {kind} {name}",
        "When {pods} is deleted every {interval} for {duration}, {available} "
        "and the {kind} controller replaces the deleted pods within {recovery}s",
        "{kind} {name} has {replicas} replicas; losing some of them must not interrupt service.",
        30, 10,
    ),
}


def _clamped(seconds: int, policy: dict[str, Any]) -> int:
    return int(min(seconds, parse_duration(policy["max_duration"])))


def _max_replicas(workload: dict[str, Any]) -> int:
    return workload.get("protection", {}).get("max_replicas") or workload["replicas"]


def _expected_recovery(weakness: Weakness, workload: dict[str, Any]) -> int:
    """Seconds from the end of the fault until the steady state holds again."""
    if weakness.fault == "node-drain" or weakness.key in ("hpa", "hpa-capacity"):
        return 120
    if weakness.fault in ("pod-delete", "container-kill"):
        slow_start = workload["kind"] == "StatefulSet" or workload["tier"] in DATA_TIERS
        return 60 if slow_start else 30
    return 30


def _container(workload: dict[str, Any]) -> str | None:
    containers = _app_containers(workload)
    return containers[0]["name"] if containers else None


def _parameters(fault: str, shape: Shape, duration: int, text: Text) -> dict[str, Any]:
    parameters: dict[str, Any] = {"duration": format_duration(duration)}
    if text.interval_seconds is not None:
        parameters["interval"] = format_duration(min(text.interval_seconds, duration))
    if fault not in ("node-drain", "pod-autoscaler"):
        parameters["pods_affected_percent"] = shape.requested_percent
    if fault in ("pod-delete", "container-kill"):
        parameters["sequence"] = "serial"
    if fault == "pod-delete":
        parameters["force"] = False
    if fault == "pod-memory-hog":
        parameters["memory_mb"] = MEMORY_HOG_MB
    if fault == "pod-cpu-hog":
        parameters["cpu_cores"] = CPU_HOG_CORES
    if fault == "pod-network-loss":
        parameters["loss_percent"] = LOSS_PERCENT
    if fault == "pod-autoscaler":
        parameters["replica_count"] = _max_replicas(shape.workload)
    if fault == "pod-network-latency":
        parameters["latency_ms"] = LATENCY_MS
        parameters["jitter_ms"] = JITTER_MS
    container = _container(shape.workload)
    if container and fault in ("container-kill", "pod-memory-hog", "pod-cpu-hog", "pod-network-latency", "pod-network-loss"):
        parameters["container"] = container
    return parameters


def _facts(shape: Shape, duration: int, recovery: int, parameters: dict[str, Any]) -> dict[str, Any]:
    workload = shape.workload
    return {
        "kind": workload["kind"],
        "name": workload["name"],
        "affected": shape.affected,
        "replicas": shape.replicas,
        "pods": f"{shape.affected} of {shape.replicas} pods of {workload['kind']} {workload['name']}",
        "duration": format_duration(duration),
        "interval": parameters.get("interval", ""),
        "recovery": recovery,
        "container": parameters.get("container", "main"),
        "callers": ", ".join(w.split("/")[-1] for w in shape.callers) or "none",
        "memory_mb": MEMORY_HOG_MB,
        "cpu_cores": CPU_HOG_CORES,
        "latency_ms": LATENCY_MS,
        "loss_percent": LOSS_PERCENT,
        "max_replicas": _max_replicas(workload),
        "latency_limit": f"{promql.P99_LATENCY_LIMIT_SECONDS:g}",
        "available": _available(_min_available(shape)),
        "hpa": workload.get("protection", {}).get("hpa") or "",
    }


def _available(replicas: int) -> str:
    return f"at least {replicas} replica stays available" if replicas == 1 else f"at least {replicas} replicas stay available"


def _min_available(shape: Shape) -> int:
    return max(1, shape.replicas - shape.affected)


def _error_clause(shape: Shape) -> str:
    """The end of every hypothesis: whose error rate stays below the limit, or just the full stop."""
    limit = f"{promql.ERROR_RATE_LIMIT:.0%}"
    if shape.callers:
        names = ", ".join(w["name"] for w in shape.watched)
        return f", and the error rate of its callers {names} stays below {limit}."
    if shape.watched:
        return f", and its own error rate stays below {limit}."
    return "."


def label_selector(workload: dict[str, Any]) -> str:
    """The equality selector of a workload's pods: its matchLabels, else its pod-template labels."""
    selector = workload["selector"] or workload["labels"]
    return ",".join(f"{key}={selector[key]}" for key in sorted(selector))


def _target(workload: dict[str, Any], fault: str) -> dict[str, Any]:
    target = {
        "workload": workload["id"],
        "namespace": workload["namespace"],
        "kind": workload["kind"],
        "name": workload["name"],
        "label_selector": label_selector(workload),
    }
    nodes = sorted(workload.get("runtime", {}).get("nodes", []))
    if fault == "node-drain" and nodes:
        target["node"] = nodes[0]
    return target


def _blast_radius(index: TopologyIndex, shape: Shape, fault: str, total_loss: bool) -> dict[str, Any]:
    workload_id = shape.workload["id"]
    workloads = [workload_id, *index.transitive_callers(workload_id)]
    namespaces = sorted({index.workloads[w]["namespace"] for w in workloads})
    upstream = len(workloads) - 1
    description = f"{shape.affected} of {shape.replicas} pods of {workload_id}"
    if fault == "pod-autoscaler":
        description = f"{workload_id} scaled from {shape.replicas} to {_max_replicas(shape.workload)} replicas; no running pod is touched"
    if fault == "node-drain":
        description += "; every other pod on the drained node is evicted too"
    description += f"; {upstream} upstream workload(s) may see errors" if upstream else "; no known callers"
    return {
        "namespaces": namespaces,
        "workloads": workloads,
        "pods_affected_percent": shape.actual_percent,
        "max_pods": shape.affected,
        "description": description,
    }


def _slug(name: str) -> str:
    """A workload name as a check name, which allows no dots and no double dashes (web--v2.beta -> web-v2-beta)."""
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def _abort_thresholds(shape: Shape, fault: str, recovery: int, total_loss: bool) -> list[dict[str, Any]]:
    workload = shape.workload
    thresholds = []
    for watched in shape.watched:
        namespace, name = watched["namespace"], watched["name"]
        thresholds.append({
            "name": f"{_slug(name)}-error-rate",
            "description": f"share of 5xx responses of {watched['id']}",
            "query": promql.error_rate(namespace, name),
            "operator": ">",
            "value": promql.ERROR_RATE_LIMIT,
            "for": "30s",
        })
        if fault == "pod-network-latency":
            thresholds.append({
                "name": f"{_slug(name)}-p99-latency",
                "description": f"p99 request duration of {watched['id']} in seconds",
                "query": promql.p99_latency(namespace, name),
                "operator": ">",
                "value": promql.P99_LATENCY_LIMIT_SECONDS,
                "for": "30s",
            })
    # A total loss is expected to leave no replica for a while; only not coming back in time is a breach.
    floor, grace = (1, recovery + 30) if total_loss else (_min_available(shape), 30)
    thresholds.append({
        "name": f"{_slug(workload['name'])}-replicas-unavailable",
        "description": f"ready replicas of {workload['id']} (kube-state-metrics)",
        "query": promql.ready_replicas(workload["namespace"], workload["kind"], workload["name"]),
        "operator": "<",
        "value": floor,
        "for": format_duration(grace),
    })
    return _unique_names(thresholds)


def _unique_names(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Callers of the same name in different namespaces would share a check name; number the repeats."""
    seen: dict[str, int] = {}
    for check in checks:
        base = check["name"]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            check["name"] = f"{base}-{seen[base]}"
    return checks


def _steady_state(shape: Shape) -> list[dict[str, Any]]:
    workload = shape.workload
    checks: list[dict[str, Any]] = [
        {
            "name": f"{_slug(workload['name'])}-pods-present",
            "type": "k8s",
            "resource": "pods",
            "namespace": workload["namespace"],
            "label_selector": label_selector(workload),
            "operation": "present",
        },
        {
            "name": f"{_slug(workload['name'])}-replicas-ready",
            "type": "prometheus",
            "query": promql.ready_replicas(workload["namespace"], workload["kind"], workload["name"]),
            "operator": ">=",
            "value": shape.replicas,
        },
    ]
    for watched in shape.watched:
        checks.append({
            "name": f"{_slug(watched['name'])}-error-rate-normal",
            "type": "prometheus",
            "query": promql.error_rate(watched["namespace"], watched["name"]),
            "operator": "<",
            "value": promql.ERROR_RATE_LIMIT,
        })
    return _unique_names(checks)


