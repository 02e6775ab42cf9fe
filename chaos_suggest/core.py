"""chaos-suggest's pure core: a Topology and a safety policy in, an ExperimentPlan out (no I/O, no exit).

Public functions (called by chaos_suggest.cli; an LLM planner plugs in between them):

- plan_builtin(topology, policy, count) -> list of experiment dicts: the offline planner (chaos_suggest.planner),
  ranked best first, at most count (and at most the policy's max_experiments), none of them against the policy.
- number_experiments(experiments) -> the same experiments with rank 1..n and the stable id
  `<rank:02d>-<fault>-<target name>` (DNS-1123, at most 50 characters; it becomes the ChaosEngine name).
- assemble_plan(topology, experiments, policy, generator, requested=None) -> the ExperimentPlan document:
  numbers the experiments, enforces the policy on every one (PolicyViolation naming the rule, exit 3), records the
  effective policy and the input digest, and warns in metadata.warnings when fewer than requested were found.
- plan_warnings(plan) -> the warnings the CLI prints on stderr.

An LLM planner produces experiment dicts of the same schema (generator "llm:<provider>/<model>"), may drop the
ones that chaosgen.policy.violations() rejects, and hands them to assemble_plan like the built-in ones;
chaos_suggest.topology.TopologyIndex gives it callers and transitive callers for checking blast radii, and
chaos_suggest.promql the metric-name convention and query builders of abort thresholds.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from chaos_suggest.planner import select
from chaos_suggest.topology import TopologyIndex
from chaosgen import API_VERSION
from chaosgen.policy import enforce_plan

MAX_ID_LENGTH = 50
GENERATED_PLAN = "<generated plan>"


def plan_builtin(topology: dict[str, Any], policy: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The built-in planner's best experiments for a Topology, numbered; fewer than count when no more are safe."""
    return number_experiments(select(TopologyIndex(topology), policy, min(count, policy["max_experiments"])))


def experiment_id(rank: int, fault: str, target_name: str) -> str:
    """A stable DNS-1123 label such as 01-pod-delete-postgres, cut to 50 characters."""
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{rank:02d}-{fault}-{target_name}".lower())
    return raw[:MAX_ID_LENGTH].strip("-")


def number_experiments(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the experiments with rank and id set from their position, fault and target."""
    numbered = []
    for rank, experiment in enumerate(experiments, start=1):
        identity = {"id": experiment_id(rank, experiment["fault"]["type"], experiment["target"]["name"]), "rank": rank}
        numbered.append({**identity, **{k: v for k, v in experiment.items() if k not in identity}})
    return numbered


def topology_digest(topology: dict[str, Any]) -> str:
    """`Topology sha256:<12 hex>` of the canonical JSON of the input, so a plan names what it was made from."""
    # orjson writes the bytes json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) does for a
    # Topology (string keys), several times faster.
    canonical = orjson.dumps(topology, option=orjson.OPT_SORT_KEYS)
    return f"Topology sha256:{hashlib.sha256(canonical).hexdigest()[:12]}"


def assemble_plan(
    topology: dict[str, Any],
    experiments: list[dict[str, Any]],
    policy: dict[str, Any],
    generator: str,
    requested: int | None = None,
) -> dict[str, Any]:
    """The ExperimentPlan document for experiments planned from topology; raises PolicyViolation on a bad one."""
    numbered = number_experiments(experiments)
    enforce_plan(numbered, policy, GENERATED_PLAN, {w["id"] for w in topology["workloads"]})
    metadata: dict[str, Any] = {"generator": generator, "source": {"type": "document", "document": topology_digest(topology)}}
    if requested is not None and len(numbered) < requested:
        metadata["warnings"] = [
            f"only {len(numbered)} of {requested} requested experiments are possible within the safety policy "
            "(-v lists the candidates it skipped)"
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "ExperimentPlan",
        "metadata": metadata,
        "policy": {"apiVersion": API_VERSION, "kind": "SafetyPolicy", **policy},
        "experiments": numbered,
    }


def plan_warnings(plan: dict[str, Any]) -> list[str]:
    return list(plan["metadata"].get("warnings", []))
