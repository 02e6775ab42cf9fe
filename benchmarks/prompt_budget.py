"""The LLM prompt of chaos-suggest under --max-prompt-tokens for a 5,000-workload Topology.

    python benchmarks/prompt_budget.py                  # 5,000 workloads, budget 8,000 tokens, best of 3
    python benchmarks/prompt_budget.py -n 20000 --max-prompt-tokens 4000

Generates a Topology as plain dicts (valid against schemas/topology.schema.json, checked), builds the prompt with
and without --anonymize, and prints the token estimate against the budget, the time to build it beside the time
of a bare json.dumps of the same Topology (measured in the same run), and whether every top-20 workload by
criticality is in the prompt. Exits 1 if the prompt is over budget or misses a top-20 workload.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos_suggest.llm.guard import answer_schema
from chaos_suggest.llm.prompt import ALWAYS_SHOWN, PromptBuilder, rank_workloads, scrub
from chaosgen.llm.anonymize import Anonymizer
from chaosgen.llm.options import DEFAULT_MAX_PROMPT_TOKENS
from chaosgen.policy import load_policy
from chaosgen.schemas import validate

TIERS = ("frontend", "backend", "backend", "backend", "database", "cache", "queue")
RISKS = (
    ("single-replica", "high", "runs a single replica"),
    ("no-readiness-probe", "medium", "container {name} has no readiness probe"),
    ("no-resource-limits", "medium", "container {name} has no memory or CPU limit"),
    ("no-pdb", "medium", "no PodDisruptionBudget protects {name}"),
    ("latest-image", "low", "image example/{name}:latest is not pinned"),
)
WORKLOADS_PER_NAMESPACE = 100


def generate_topology(count: int, seed: int = 7) -> dict[str, Any]:
    """A deterministic Topology of count workloads in namespaces of 100, with risks, services and dependencies."""
    rng = random.Random(seed)
    workloads, services, dependencies = [], [], []
    for number in range(count):
        namespace = f"team-{number // WORKLOADS_PER_NAMESPACE:03d}"
        tier = TIERS[number % len(TIERS)]
        kind = "StatefulSet" if tier in ("database", "queue") else "Deployment"
        name = f"{tier}-{number:05d}"
        replicas = 1 if kind == "StatefulSet" else rng.choice((1, 2, 3))
        risks = [
            {"id": rid, "severity": severity, "message": message.format(name=name)}
            for rid, severity, message in rng.sample(RISKS, rng.randint(0, 3))
        ]
        workloads.append({
            "id": f"{namespace}/{kind}/{name}", "namespace": namespace, "kind": kind, "name": name,
            "replicas": replicas, "labels": {"app": name, "tier": tier}, "selector": {"app": name}, "tier": tier,
            "stateful": kind == "StatefulSet",
            "criticality": {"score": rng.randint(0, 100), "reasons": [f"{rng.randint(0, 40)} workloads depend on it"]},
            "risks": risks,
        })
        services.append({
            "id": f"{namespace}/Service/{name}", "namespace": namespace, "name": name, "type": "ClusterIP",
            "ports": [{"port": 8080}], "selects": [workloads[-1]["id"]],
        })
    for caller in workloads:
        first = int(caller["namespace"].split("-")[1]) * WORKLOADS_PER_NAMESPACE
        neighbours = workloads[first:first + WORKLOADS_PER_NAMESPACE]
        for callee in rng.sample(neighbours, min(3, len(neighbours))):
            if callee is caller:
                continue
            dependencies.append({
                "from": caller["id"], "to": callee["id"], "external": False,
                "via": f"{callee['namespace']}/Service/{callee['name']}", "port": 8080,
                "evidence": [f"spec.template.spec.containers[{caller['name']}].env[{callee['name'].upper().replace('-', '_')}_URL]"],
                "confidence": 0.9, "hard": callee["tier"] in ("database", "queue"),
            })
    return {
        "apiVersion": "chaosgen.dev/v1", "kind": "Topology",
        "metadata": {"generator": "benchmarks/prompt_budget.py", "source": {"type": "document"}},
        "workloads": workloads, "services": services, "dependencies": dependencies,
    }


def best_of(repeat: int, function: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--workloads", type=int, default=5_000)
    parser.add_argument("--max-prompt-tokens", type=int, default=DEFAULT_MAX_PROMPT_TOKENS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    topology = generate_topology(args.workloads)
    validate(topology, "Topology", "generated")
    policy = load_policy(None)
    top = [w["id"] for w in rank_workloads(topology["workloads"])[:ALWAYS_SHOWN]]
    dump_seconds, _ = best_of(args.repeat, lambda: json.dumps(topology))
    print(f"topology: {len(topology['workloads']):,} workloads, {len(topology['dependencies']):,} dependencies; "
          f"json.dumps {dump_seconds * 1000:.0f} ms")
    failed = False
    for label, anonymize in (("plain", False), ("--anonymize", True)):
        def build(anonymize: bool = anonymize) -> Any:
            visible = scrub(topology)
            hide = Anonymizer(visible).hide if anonymize else (lambda value: value)
            return PromptBuilder(visible, policy, 3, answer_schema(3), args.max_prompt_tokens, hide).build()

        seconds, prompt = best_of(args.repeat, build)
        text = prompt.system + prompt.user
        present = set(top) <= set(prompt.shown_ids)
        over = prompt.tokens > args.max_prompt_tokens
        failed |= over or not present
        print(
            f"{label:12} prompt: ~{prompt.tokens:,} tokens of {args.max_prompt_tokens:,} "
            f"({len(text):,} chars, {len(text) / prompt.tokens:.1f} chars/token); "
            f"{len(prompt.shown_ids):,} of {prompt.total_workloads:,} workloads shown; "
            f"top-{ALWAYS_SHOWN} present: {'yes' if present else 'NO'}; "
            f"build {seconds * 1000:.0f} ms ({seconds / dump_seconds:.1f}x json.dumps)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
