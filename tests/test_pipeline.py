"""The offline pipeline end to end, as a user runs it: chaos-inventory | chaos-suggest | chaos-litmus."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from conftest import FIXTURES, REPO, run

PIPELINE = "chaos-inventory -f {manifest} | chaos-suggest -n 3 | chaos-litmus"
APPS = {
    "3tier": REPO / "k8s" / "3tier-app.yaml",
    "sock-shop": FIXTURES / "apps" / "sock-shop.yaml",
    "bookinfo": FIXTURES / "apps" / "bookinfo.yaml",
}


@pytest.fixture(scope="module")
def engine_validator() -> Draft202012Validator:
    """The openAPIV3Schema of the real ChaosEngine CRD (x-kubernetes-* keywords are unknown, so ignored)."""
    crds = list(yaml.safe_load_all((FIXTURES / "crds" / "litmus-crds.yaml").read_text()))
    crd = next(d for d in crds if d and d["spec"]["names"]["kind"] == "ChaosEngine")
    version = next(v for v in crd["spec"]["versions"] if v.get("served"))
    return Draft202012Validator(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("app", sorted(APPS))
def test_pipeline_prints_valid_engines(app: str, engine_validator: Draft202012Validator) -> None:
    result = run(PIPELINE.format(manifest=APPS[app]))
    assert result.returncode == 0, result.stderr.decode()
    engines = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert engines and all(doc["kind"] == "ChaosEngine" for doc in engines)
    for engine in engines:
        errors = [e.message for e in engine_validator.iter_errors(engine)]
        assert not errors, f"{engine['metadata']['name']}: {errors}"
    assert b"Traceback" not in result.stderr


def test_3tier_app_gets_three_engines_first_on_the_database() -> None:
    result = run(PIPELINE.format(manifest=APPS["3tier"]))
    engines = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(engines) == 3
    first = engines[0]
    assert first["metadata"]["annotations"]["chaosgen.dev/target"].endswith("/StatefulSet/postgres")
    experiment = json.loads(first["metadata"]["annotations"]["chaosgen.dev/experiment"])
    assert experiment["rationale"]["risks"] and experiment["rationale"]["summary"]
    assert json.loads(first["metadata"]["annotations"]["chaosgen.dev/abort-thresholds"])


def test_first_experiment_targets_the_most_critical_workload() -> None:
    topology = json.loads(run(f"chaos-inventory -f {APPS['3tier']}").stdout)
    plan = json.loads(run("chaos-suggest -n 3", input=json.dumps(topology).encode()).stdout)
    ranked = sorted(topology["workloads"], key=lambda w: -w["criticality"]["score"])
    assert plan["experiments"][0]["target"]["workload"] == ranked[0]["id"]


@pytest.mark.slow
def test_pipeline_is_byte_identical_across_runs() -> None:
    first = run(PIPELINE.format(manifest=APPS["sock-shop"]) + " --with-experiments --with-rbac")
    second = run(PIPELINE.format(manifest=APPS["sock-shop"]) + " --with-experiments --with-rbac")
    assert first.returncode == 0 and first.stdout == second.stdout


@pytest.mark.slow
def test_no_secret_value_leaves_any_stage(tmp_path) -> None:
    secret_values = re.findall(r"^\s+password:\s*(\S+)$", APPS["3tier"].read_text(), flags=re.MULTILINE)
    assert secret_values, "the 3-tier app should plant a fake Secret value for this test"
    manifest = tmp_path / "leaky.yaml"
    manifest.write_text(APPS["3tier"].read_text() + """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: leaky, namespace: shop}
spec:
  selector: {matchLabels: {app: leaky}}
  template:
    metadata: {labels: {app: leaky}}
    spec:
      containers:
        - name: leaky
          image: busybox:1.36
          env:
            - {name: API_TOKEN, value: tok-PLANTED-4711}
            - {name: DATABASE_URL, value: "postgres://app:dsn-PLANTED-4712@postgres:5432/app"}
""")
    planted = [*secret_values, "tok-PLANTED-4711", "dsn-PLANTED-4712"]
    commands = [
        f"chaos-inventory -f {manifest}",
        f"chaos-inventory -f {manifest} --format dot",
        f"chaos-inventory -f {manifest} --format mermaid",
        f"chaos-inventory -f {manifest} | chaos-suggest -n 5",
        f"chaos-inventory -f {manifest} | chaos-suggest -n 5 | chaos-litmus --with-experiments --with-rbac",
        f"chaos-inventory -v -f {manifest} | chaos-suggest -v -n 5 | chaos-litmus -v --format json",
    ]
    for command in commands:
        result = run(command)
        assert result.returncode == 0, (command, result.stderr.decode())
        for value in planted:
            assert value.encode() not in result.stdout + result.stderr, (command, value)


@pytest.mark.parametrize(
    ("command", "stage_input", "message"),
    [
        ("chaos-suggest", b"not: [valid", "chaos-suggest: error: <stdin>: not valid YAML"),
        ("chaos-litmus", None, "chaos-litmus expects an ExperimentPlan, got a Topology"),
        ("chaos-suggest", b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
        ("chaos-litmus", b'{"apiVersion": "chaosgen.dev/v1", "kind": "ExperimentPlan"', "not valid JSON"),
    ],
)
def test_bad_input_between_stages_exits_3_with_one_line(command: str, stage_input: bytes | None, message: str) -> None:
    if stage_input is None:
        result = run(f"chaos-inventory -f {APPS['3tier']} 2>/dev/null | {command}")
    else:
        result = run(command, input=stage_input)
    assert result.returncode == 3
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
