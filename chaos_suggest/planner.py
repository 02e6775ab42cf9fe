"""The built-in planner: from a Topology's weak points to ranked, policy-safe experiments (no LLM, no I/O).

chaos_suggest.core.plan_builtin is its entry point. How it works:

1. Each workload the policy lets us touch yields candidates, one per weakness it shows (weaknesses.py): a weakness
   is read from the workload's facts (replicas, containers, protection, runtime) or from its risk ids, and names
   the fault that tests it: a single replica -> pod-delete (total loss, the controller must recreate it); no
   memory/CPU limit -> pod-memory-hog / pod-cpu-hog; an HPA -> pod-cpu-hog (it must scale out); no readiness
   probe -> container-kill; replicas that may share one node -> node-drain; callers depending on it ->
   pod-network-latency on it with latency thresholds on the callers; any replicated workload -> pod-delete.
2. A candidate's score is the workload's criticality plus the weight of its weakness and the severity of the
   risks it tests. Only the best candidate per (workload, fault) is kept: no two experiments are the same test.
3. Candidates are taken best first from a heap; each one already chosen for the same target or fault lowers the
   score of the rest (lazily re-scored, so choosing N costs O(C log C) for C candidates), which spreads the plan
   over several weak points. A chosen candidate is built into a full experiment (building.py, parameters from
   the fault catalogue chaosgen.faults) and checked against the policy; one that breaks a rule is skipped and
   logged at info level.

Only Deployments, StatefulSets and ReplicaSets are targeted: their controllers recreate what a fault removes.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

from chaos_suggest.building import build_experiment
from chaos_suggest.topology import TopologyIndex
from chaos_suggest.weaknesses import candidates
from chaosgen.policy import violations

log = logging.getLogger(__name__)

SAME_TARGET_PENALTY = 30
SAME_FAULT_PENALTY = 10


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
