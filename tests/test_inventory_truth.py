"""Dependency discovery and tiers on the fixture apps against their documented architecture
(tests/fixtures/truth/): precision on all edges, recall on the manifest-visible ones, tiers per service."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO, fixture_files, run

_SPEC = importlib.util.spec_from_file_location("truth_score", REPO / "benchmarks" / "truth_score.py")
truth_score = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(truth_score)

TRUTHS = fixture_files("truth/*.json")


@pytest.mark.parametrize("truth_file", TRUTHS, ids=lambda p: p.stem)
def test_edges_and_tiers_match_the_documented_architecture(truth_file):
    truth = json.loads(truth_file.read_text())
    result = run(f"chaos-inventory -f tests/fixtures/apps/{truth['app']}.yaml")
    assert result.returncode == 0, result.stderr.decode()
    score = truth_score.score(json.loads(result.stdout), truth)
    assert score["false_edges"] == [] and score["precision"] == 1.0
    assert score["missed_visible_edges"] == [] and score["recall"] == 1.0
    assert score["wrong_tiers"] == {} and score["tier_accuracy"] == 1.0


@pytest.mark.parametrize("truth_file", TRUTHS, ids=lambda p: p.stem)
def test_unresolved_references_are_external_not_edges(truth_file):
    truth = json.loads(truth_file.read_text())
    topology = json.loads(run(f"chaos-inventory -f tests/fixtures/apps/{truth['app']}.yaml").stdout)
    names = {w["id"]: w["name"] for w in topology["workloads"]}
    external = {(names[d["from"]], d["to"]) for d in topology["dependencies"] if d["external"]}
    assert external == {(ref["from"], ref["to"]) for ref in truth.get("unresolved_references", [])}


def test_the_score_report_runs():
    result = run("python3 benchmarks/truth_score.py")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().count("precision 1.00  recall 1.00") == len(TRUTHS)
