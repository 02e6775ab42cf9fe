"""How well chaos-inventory finds the documented architecture of the fixture apps (tests/fixtures/truth/).

    python benchmarks/truth_score.py          # one line per app: precision, recall, tier accuracy

Runs the installed chaos-inventory on each app manifest and scores it by the fixtures' convention: precision on
all truth `edges`, recall on `edges` minus `edges_code_only` (what a manifest can show), tiers per truth service.
Workloads map to truth services through the truth file's `workloads`; external dependencies are not edges.
tests/test_inventory_truth.py imports score() so that the test and this report cannot disagree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def score(topology: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Precision, recall and tier accuracy of a Topology against one truth file, with what was missed or extra."""
    service_of = {workload: service for service, workloads in truth["workloads"].items() for workload in workloads}
    names = {w["id"]: w["name"] for w in topology["workloads"]}
    found = {
        (service_of.get(names[d["from"]], names[d["from"]]), service_of.get(names[d["to"]], names[d["to"]]))
        for d in topology["dependencies"] if not d["external"]
    }
    true_edges = {tuple(edge) for edge in truth["edges"]}
    visible = true_edges - {tuple(edge) for edge in truth["edges_code_only"]}
    tiers: dict[str, set[str]] = {}
    for workload in topology["workloads"]:
        tiers.setdefault(service_of.get(workload["name"], workload["name"]), set()).add(workload["tier"])
    right_tiers = sorted(s for s, tier in truth["tiers"].items() if tiers.get(s) == {tier})
    return {
        "app": truth["app"],
        # No edge found and none to find is perfect precision: nothing was invented.
        "precision": len(found & true_edges) / len(found) if found else 1.0,
        "recall": len(found & visible) / len(visible) if visible else 1.0,
        "tier_accuracy": len(right_tiers) / len(truth["tiers"]),
        "found": sorted(found),
        "false_edges": sorted(found - true_edges),
        "missed_visible_edges": sorted(visible - found),
        "wrong_tiers": {s: sorted(tiers.get(s, ())) for s in sorted(truth["tiers"]) if s not in right_tiers},
        "external": sorted(e["host"] for e in topology.get("external", [])),
    }


def inventory(manifest: Path) -> dict[str, Any]:
    """The Topology chaos-inventory prints for a manifest, as a user would run it."""
    result = subprocess.run(["chaos-inventory", "-f", str(manifest)], capture_output=True, check=True)
    return json.loads(result.stdout)


def main() -> int:
    truth_files = sorted((FIXTURES / "truth").glob("*.json"))
    if not truth_files:
        print(f"truth_score: no truth files in {FIXTURES / 'truth'}", file=sys.stderr)
        return 1
    for truth_file in truth_files:
        truth = json.loads(truth_file.read_text())
        result = score(inventory(FIXTURES / "apps" / f"{truth['app']}.yaml"), truth)
        print(f"{result['app']:<10} precision {result['precision']:.2f}  recall {result['recall']:.2f} "
              f"(manifest-visible edges)  tiers {result['tier_accuracy']:.2f}  edges found {len(result['found'])}  "
              f"external {', '.join(result['external']) or '-'}")
        for label in ("false_edges", "missed_visible_edges", "wrong_tiers"):
            if result[label]:
                print(f"  {label}: {result[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
