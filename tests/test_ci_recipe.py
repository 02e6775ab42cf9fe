"""examples/github-actions.yml: actionlint (built from the Go module proxy by tests/tools/actionlint.sh) finds
nothing in it, and its offline job's script runs as written on the repository's manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from tests.test_watch_cli import sh

WORKFLOW = REPO / "examples" / "github-actions.yml"


def test_actionlint_accepts_the_workflow() -> None:
    if shutil.which("go") is None:
        pytest.skip("actionlint is built with Go (tests/install-deps.sh)")
    binary = subprocess.run(["bash", str(REPO / "tests" / "tools" / "actionlint.sh")], capture_output=True, text=True,
                            timeout=900, check=True).stdout.strip()
    completed = subprocess.run([binary, "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_offline_job_runs_as_written(tmp_path: Path) -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["plan"]["steps"]
    script = next(step["run"] for step in steps if step.get("name") == "Plan offline")
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    completed = sh(f"cd {tmp_path} && bash -e -c {_quote(script)}")
    assert completed.returncode == 0, completed.stderr
    assert "kind: ChaosEngine" in (tmp_path / "engines.yaml").read_text()


def test_the_cluster_job_reports_junit_and_html() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["chaos"]["steps"]
    reports = next(step["run"] for step in steps if step.get("name") == "Reports")
    assert "chaos-report --format junit run.json > chaos-junit.xml" in reports
    assert "chaos-report --format html" in reports


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
