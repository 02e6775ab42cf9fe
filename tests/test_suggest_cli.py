"""chaos-suggest as a user runs it: the installed command in a real shell pipe, exit code, stdout and stderr apart,
and golden files (regenerate with CHAOSGEN_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, GOLDEN, REPO, assert_golden
from conftest import run as run_bytes

SUGGEST_GOLDEN = GOLDEN / "suggest"
THREE_TIER = SUGGEST_GOLDEN / "3tier.topology.json"
SOCK_SHOP = SUGGEST_GOLDEN / "sock-shop.topology.json"


def run(command: str) -> subprocess.CompletedProcess[str]:
    """The shared run(), with stdout and stderr decoded: every check here is on text."""
    result = run_bytes(command, timeout=60)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def rejected(result: subprocess.CompletedProcess[str], code: int = 3) -> str:
    """The one stderr line of a rejection, after checking that nothing reached stdout."""
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(("topology", "count", "golden"), [
    (THREE_TIER, 3, "3tier.plan.json"),
    (SOCK_SHOP, 5, "sock-shop.plan.json"),
])
def test_output_matches_the_golden_files(topology: Path, count: int, golden: str) -> None:
    result = run(f"cat {topology} | chaos-suggest -n {count}")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_golden(result.stdout, SUGGEST_GOLDEN / golden)


def test_three_tier_plan_starts_with_the_single_replica_database() -> None:
    plan = json.loads(run(f"chaos-suggest -f {THREE_TIER}").stdout)
    assert [e["id"] for e in plan["experiments"]] == [
        "01-pod-delete-postgres", "02-pod-memory-hog-api", "03-pod-network-latency-postgres"]
    assert plan["metadata"]["generator"].startswith("chaos-suggest ")


def test_same_input_gives_the_same_bytes_from_a_file_stdin_or_yaml(tmp_path: Path) -> None:
    as_yaml = tmp_path / "topology.yaml"
    as_yaml.write_text(yaml.safe_dump(json.loads(THREE_TIER.read_text()), sort_keys=True))
    outputs = {
        run(f"chaos-suggest -n 4 -f {THREE_TIER}").stdout,
        run(f"chaos-suggest -n 4 < {THREE_TIER}").stdout,
        run(f"cat {THREE_TIER} | chaos-suggest --count 4 -f -").stdout,
        run(f"chaos-suggest -n 4 -f {as_yaml}").stdout,
    }
    assert len(outputs) == 1 and outputs != {""}


def test_fewer_safe_experiments_than_requested_is_a_warning_not_an_error() -> None:
    result = run(f"chaos-suggest -n 30 < {THREE_TIER}")
    assert result.returncode == 0
    plan = json.loads(result.stdout)
    found = len(plan["experiments"])
    assert 3 < found < 20
    assert result.stderr == (
        f"chaos-suggest: WARNING: only {found} of 30 requested experiments are possible within the safety policy "
        "(-v lists the candidates it skipped)\n"
    )
    assert plan["metadata"]["warnings"] == [result.stderr.removeprefix("chaos-suggest: WARNING: ").rstrip("\n")]


def test_verbose_says_why_candidates_were_skipped(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_latency_ms: 100\n")
    result = run(f"chaos-suggest -v -n 3 --policy {policy} < {THREE_TIER}")
    assert result.returncode == 0
    assert ("chaos-suggest: INFO: skipping pod-network-latency on shop/StatefulSet/postgres: policy rule "
            "max-latency: latency_ms 300 + jitter_ms 50 exceeds max_latency_ms 100ms") in result.stderr


def test_policy_file_restricts_the_plan_and_is_recorded(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: chaosgen.dev/v1\nkind: SafetyPolicy\nallowed_faults: [pod-delete]\nmax_duration: 20s\n")
    result = run(f"chaos-suggest -n 2 --policy {policy} < {THREE_TIER}")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {e["fault"]["type"] for e in plan["experiments"]} == {"pod-delete"}
    assert {e["parameters"]["duration"] for e in plan["experiments"]} == {"20s"}
    assert plan["policy"]["allowed_faults"] == ["pod-delete"]
    assert plan["policy"]["max_duration"] == "20s"


def test_a_policy_that_forbids_everything_gives_an_empty_plan_and_a_warning(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"denied_namespaces": ["shop"]}))
    result = run(f"chaos-suggest --policy {policy} < {THREE_TIER}")
    assert result.returncode == 0
    assert json.loads(result.stdout)["experiments"] == []
    assert "only 0 of 3 requested experiments" in result.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("max_pods_affected_percent: 500\n", "policy.yaml at $.max_pods_affected_percent: SafetyPolicy schema"),
    ("[1, 2]\n", "policy.yaml: a policy file holds one YAML or JSON mapping"),
    ("a: b: c\n", "policy.yaml: not valid YAML"),
], ids=["schema", "not-a-mapping", "not-yaml"])
def test_bad_policy_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    assert message in rejected(run(f"chaos-suggest --policy {policy} < {THREE_TIER}"))


def test_missing_policy_file_is_rejected() -> None:
    line = rejected(run(f"chaos-suggest --policy /nonexistent/policy.yaml < {THREE_TIER}"))
    assert line == "chaos-suggest: error: /nonexistent/policy.yaml: no such file\n"


def test_wrong_kind_is_named() -> None:
    plan = REPO / "tests" / "schema_examples" / "ExperimentPlan" / "valid" / "minimal.json"
    line = rejected(run(f"cat {plan} | chaos-suggest"))
    assert line == "chaos-suggest: error: <stdin> at $.kind: chaos-suggest expects a Topology, got an ExperimentPlan\n"


def test_schema_violation_names_the_file_and_the_json_path(tmp_path: Path) -> None:
    topology = json.loads(THREE_TIER.read_text())
    del topology["workloads"][1]["replicas"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(topology))
    line = rejected(run(f"chaos-suggest -f {broken}"))
    assert line.startswith(f"chaos-suggest: error: {broken} at $.workloads[1]: Topology schema: 'replicas' is a required property")


@pytest.mark.parametrize(("data", "message"), [
    ("printf '{\"apiVersion\": \"chaosgen.dev/v1\", \"kind\": \"Top'", "not valid JSON"),
    ("printf 'a: b: c\\n'", "not valid YAML"),
    ("printf ''", "empty input"),
    ("head -c 300 /bin/sh", "binary data"),
    ("echo '[1, 2]'", "chaos-suggest expects a Topology, got a JSON list"),
], ids=["truncated-json", "bad-yaml", "empty", "binary", "list"])
def test_bad_input_is_one_line_and_exit_3(data: str, message: str) -> None:
    assert message in rejected(run(f"{data} | chaos-suggest"))


@pytest.mark.parametrize("count", ["0", "-1", "three"])
def test_bad_count_is_a_usage_error(count: str) -> None:
    result = run(f"chaos-suggest -n {count} < {THREE_TIER}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Invalid value for '-n' / '--count'" in result.stderr


def test_pipeline_into_chaos_litmus_gives_one_engine_per_experiment() -> None:
    result = run(f"chaos-suggest -n 3 < {THREE_TIER} | chaos-litmus")
    assert result.returncode == 0, result.stderr
    engines = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "ChaosEngine"]
    assert [e["metadata"]["name"] for e in engines] == [
        "01-pod-delete-postgres", "02-pod-memory-hog-api", "03-pod-network-latency-postgres"]


def test_pipeline_from_the_demo_manifests_targets_the_database_first() -> None:
    result = run("chaos-inventory -f k8s/3tier-app.yaml | chaos-suggest -n 3")
    assert result.returncode == 0, result.stderr
    experiments = json.loads(result.stdout)["experiments"]
    assert len(experiments) == 3
    assert experiments[0]["target"]["workload"] == "shop/StatefulSet/postgres"
    assert experiments[0]["fault"]["type"] == "pod-delete"


def test_pipeline_from_sock_shop_gives_three_distinct_tests() -> None:
    result = run(f"chaos-inventory -f {FIXTURES / 'apps' / 'sock-shop.yaml'} | chaos-suggest -n 3")
    assert result.returncode == 0, result.stderr
    experiments = json.loads(result.stdout)["experiments"]
    assert len({(e["target"]["workload"], e["fault"]["type"]) for e in experiments}) == 3
    assert all(e["target"]["namespace"] == "sock-shop" for e in experiments)


def test_missing_input_file_is_rejected() -> None:
    assert rejected(run("chaos-suggest -f /nonexistent/topology.json")) == (
        "chaos-suggest: error: /nonexistent/topology.json: no such file\n"
    )
