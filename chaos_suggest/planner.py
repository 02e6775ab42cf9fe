"""The built-in planner: from a Topology's weak points to ranked, policy-safe experiments (no LLM, no I/O).

chaos_suggest.core.plan_builtin is its entry point. How it works:

1. Each workload the policy lets us touch (not tier `other` unless target_tiers names it, nothing the run's own
   observability or chaos engine depends on) yields candidates, one per weakness it shows (weaknesses.py). Each
   weakness belongs to a family of hypotheses:
   - replica and rescheduling: a single replica -> pod-delete (total loss, the controller must recreate it); no
     readiness probe -> container-kill; any replicated workload -> pod-delete of some pods;
   - dependency failure: callers depending on it -> pod-network-latency on it (pod-network-loss when the callers
     can do without it), with hypothesis, steady state and abort thresholds on the callers;
   - data store: a stateful or data-tier workload -> latency judged by its callers, or a CPU hog when no caller
     is known; never a fault that loses data kept outside a persistent volume;
   - resource exhaustion: no memory/CPU limit -> pod-memory-hog / pod-cpu-hog; an HPA -> pod-cpu-hog (it must
     scale out) and pod-autoscaler to its maximum (the cluster must have room);
   - node failure: replicas that may share one node -> node-drain.
   A degradation of a single replica takes its only pod (the policy's allow_single_replica_degradation, within its
   intensity bounds).
2. A candidate's score is the workload's criticality plus the weight of its weakness and the severity of the
   risks it tests. Only the best candidate per (workload, fault) is kept: no two experiments are the same test.
3. Candidates are taken best first from a heap; each one already chosen of the same family, target or fault
   lowers the score of the rest (lazily re-scored, so choosing N costs O(C log C) for C candidates). The family
   penalty outweighs any score, so the plan takes the best of every family before it repeats one; the others
   spread it over several weak points. A chosen candidate is built into a full experiment (building.py,
   parameters from the fault catalogue chaosgen.faults), its rationale says why it was chosen, and it is checked
   against the policy; one that breaks a rule is skipped and logged at info level.

Only Deployments, StatefulSets and ReplicaSets are targeted: their controllers recreate what a fault removes.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

from chaos_suggest.building import build_experiment, telemetry_gap
from chaos_suggest.topology import TopologyIndex
from chaos_suggest.weaknesses import FAMILIES, Candidate, candidates
from chaosgen.policy import violations

log = logging.getLogger(__name__)

SAME_TARGET_PENALTY = 30
SAME_FAULT_PENALTY = 10
SAME_FAMILY_PENALTY = 1000  # more than any score: every family with a candidate comes before a repeat


def select(index: TopologyIndex, policy: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Up to count experiments, best first, spread over families, targets and faults, none against the policy."""
    found = candidates(index, policy)
    per_family: dict[str, int] = {}
    for candidate in found:
        per_family[candidate.weakness.family] = per_family.get(candidate.weakness.family, 0) + 1
    heap = [(c.sort_key(), c) for c in found]
    heapq.heapify(heap)
    known = set(index.workloads)
    chosen: list[dict[str, Any]] = []
    picks: dict[str, int] = {}  # per target, fault and family
    while heap and len(chosen) < count:
        _, candidate = heapq.heappop(heap)
        fault, family = candidate.weakness.fault, candidate.weakness.family
        penalty = SAME_TARGET_PENALTY * picks.get(candidate.workload_id, 0)
        penalty += SAME_FAULT_PENALTY * picks.get(fault, 0) + SAME_FAMILY_PENALTY * picks.get(family, 0)
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
        experiment["rationale"]["summary"] += " " + _why_chosen(candidate, picks.get(family, 0), per_family[family])
        gap = telemetry_gap(index, candidate.workload_id)
        if gap:
            log.warning("%s on %s: %s", fault, candidate.workload_id, gap)
        chosen.append(experiment)
        for key in (candidate.workload_id, fault, family):
            picks[key] = picks.get(key, 0) + 1
    return chosen


def _why_chosen(candidate: Candidate, family_picks: int, family_size: int) -> str:
    """The rationale's last sentence: how the score adds up, and why this candidate came before the others."""
    family = FAMILIES[candidate.weakness.family]
    score = f"Score {candidate.score} ({candidate.score_parts})"
    if family_picks == 0:
        return (f"{score}: first of {family_size} {family} candidate(s), ranked by score less a penalty for a target "
                "or fault already in the plan; every family gets an experiment before any repeats.")
    return (f"{score}: the next {family} experiment, after every family with a safe candidate has one in the plan "
            "and after the experiments on the same target or fault.")
