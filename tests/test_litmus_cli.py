"""chaos-litmus as a user runs it: the installed command in a real shell pipe, exit code, stdout and stderr apart,
and golden files (regenerate with CHAOSGEN_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator

from chaos_litmus import crd
from conftest import FIXTURES, fixture_files

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "litmus"
PLAN = GOLDEN / "plan.json"


def run(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A shell pipeline with pipefail, from the repository root, without PROMETHEUS_URL/KUBECONFIG leaking in."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_URL", "KUBECONFIG")}
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**environment, **(env or {})},
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CHAOSGEN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; regenerate with CHAOSGEN_UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize(("flags", "golden"), [
    ("", "engines.yaml"),
    ("--with-rbac --with-experiments", "all.yaml"),
    ("--with-rbac --with-experiments --format json", "all.json"),
])
def test_output_matches_the_golden_files(flags, golden):
    result = run(f"cat {PLAN} | chaos-litmus {flags}")
    assert result.returncode == 0, result.stderr
    check_golden(golden, result.stdout)
    assert result.stderr == (
        "chaos-litmus: WARNING: experiment r2-pod-network-latency-api: parameter cpu_cores does not apply to"
        " pod-network-latency; ignored\n"
    )


def test_yaml_and_json_carry_the_same_objects_and_the_same_input_gives_the_same_bytes():
    first = run(f"chaos-litmus -f {PLAN} --with-rbac --with-experiments")
    second = run(f"chaos-litmus --with-rbac --with-experiments < {PLAN}")
    as_json = run(f"chaos-litmus -f {PLAN} --with-rbac --with-experiments --format json | python3 -m json.tool --compact")
    assert first.returncode == second.returncode == as_json.returncode == 0
    assert first.stdout == second.stdout
    listing = json.loads(as_json.stdout)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    assert listing["items"] == list(yaml.safe_load_all(first.stdout))


def test_the_prometheus_endpoint_comes_from_the_flag_then_prometheus_url_then_the_default():
    def endpoints(command: str, env: dict[str, str] | None = None) -> set[str]:
        result = run(command, env)
        assert result.returncode == 0, result.stderr
        return {
            probe["promProbe/inputs"]["endpoint"]
            for engine in yaml.safe_load_all(result.stdout)
            for probe in engine["spec"]["experiments"][0]["spec"]["probe"] if probe["type"] == "promProbe"
        }

    assert endpoints(f"chaos-litmus -f {PLAN}") == {"http://prometheus.monitoring.svc:9090"}
    assert endpoints(f"chaos-litmus -f {PLAN}", {"PROMETHEUS_URL": "http://prom.obs:9090"}) == {"http://prom.obs:9090"}
    assert endpoints(f"chaos-litmus -f {PLAN} --prometheus-endpoint https://p.example:443",
                     {"PROMETHEUS_URL": "http://prom.obs:9090"}) == {"https://p.example:443"}


def test_an_empty_plan_gives_no_documents_and_a_warning():
    empty = json.dumps({**json.loads(PLAN.read_text()), "experiments": []})
    result = run(f"echo {shlex.quote(empty)} | chaos-litmus")
    assert (result.returncode, result.stdout) == (0, "")
    assert "no experiments" in result.stderr
    as_json = run(f"echo {shlex.quote(empty)} | chaos-litmus --format json")
    assert json.loads(as_json.stdout) == {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "parameter cpu_cores does not apply" not in line]
    assert len(errors) == 1 and errors[0].startswith("chaos-litmus: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def _edited_plan(tmp_path: Path, edit) -> Path:
    plan = json.loads(PLAN.read_text())
    edit(plan)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_topology_is_the_wrong_kind(tmp_path):
    topology = {"apiVersion": "chaosgen.dev/v1", "kind": "Topology", "metadata": {"generator": "x", "source": {"type": "files"}}}
    result = run(f"echo {shlex.quote(json.dumps(topology))} | chaos-litmus")
    _one_line_error(result, 3, "<stdin>", "chaos-litmus expects an ExperimentPlan, got a Topology")


@pytest.mark.parametrize(("data", "words"), [
    ("not: [valid", ("<stdin>", "not valid YAML")),
    ('{"apiVersion": "chaosgen.dev/v1", "kind": "ExperimentPlan"', ("<stdin>", "not valid JSON")),
    ("", ("<stdin>", "empty input")),
])
def test_unreadable_input_is_rejected(data, words):
    _one_line_error(run(f"printf %s {shlex.quote(data)} | chaos-litmus"), 3, *words)


def test_a_schema_violation_names_the_file_and_the_json_path(tmp_path):
    path = _edited_plan(tmp_path, lambda plan: plan["experiments"][1]["fault"].update(type="rm-rf"))
    _one_line_error(run(f"chaos-litmus -f {path}"), 3, str(path), "$.experiments[1].fault.type")


def test_a_policy_violation_names_the_rule_and_the_experiment(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("denied_namespaces: [payments]\n")
    _one_line_error(run(f"chaos-litmus -f {PLAN} --policy {policy}"), 3, "policy rule denied-namespace", "$.experiments[3]")


def test_the_default_policy_is_rechecked(tmp_path):
    path = _edited_plan(tmp_path, lambda plan: plan["experiments"][0]["parameters"].update(duration="2h"))
    _one_line_error(run(f"chaos-litmus < {path}"), 3, "policy rule max-duration", "$.experiments[0]")


def test_a_missing_file_is_rejected():
    _one_line_error(run("chaos-litmus -f /nonexistent/plan.json"), 3, "/nonexistent/plan.json", "no such file")


@pytest.mark.parametrize("endpoint", ["prometheus:9090", "http://user:secret@prom:9090"])
def test_a_bad_prometheus_endpoint_is_a_usage_error(endpoint):
    result = run(f"chaos-litmus -f {PLAN} --prometheus-endpoint {shlex.quote(endpoint)}")
    _one_line_error(result, 2, "--prometheus-endpoint")
    assert "secret" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_validate_against_an_unreachable_cluster_is_an_environment_failure(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
        "clusters": [{"name": "nowhere", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "nobody", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody"}}],
    }))
    result = run(f"chaos-litmus -f {PLAN} --validate --kubeconfig {kubeconfig}")
    _one_line_error(result, 4, "cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "not-a-real-token" not in result.stderr


@pytest.mark.parametrize("flags", ["--kubeconfig /nonexistent/kubeconfig", "--context no-such-context"])
def test_validate_without_a_usable_kubeconfig_is_an_environment_failure(tmp_path, flags):
    env = {"KUBECONFIG": str(tmp_path / "missing")}
    _one_line_error(run(f"chaos-litmus -f {PLAN} --validate {flags}", env), 4, "cannot load kubeconfig")


@pytest.mark.parametrize("app", [REPO / "k8s" / "3tier-app.yaml", *fixture_files("apps/*.yaml")], ids=lambda p: p.name)
def test_the_offline_pipeline_gives_engines_the_litmus_crd_accepts(app):
    result = run(f"chaos-inventory -f {app} | chaos-suggest -n 3 | chaos-litmus --with-rbac --with-experiments --format json")
    assert result.returncode == 0, result.stderr
    crds = [d for d in yaml.safe_load_all((FIXTURES / "crds" / "litmus-crds.yaml").read_text()) if d]
    validator = Draft4Validator(crd.crd_schema(crds, "ChaosEngine"))
    engines = [item for item in json.loads(result.stdout)["items"] if item["kind"] == "ChaosEngine"]
    assert len(engines) == 3
    for engine in engines:
        assert not [e.message for e in validator.iter_errors(engine)], engine["metadata"]["name"]
