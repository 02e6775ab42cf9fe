"""chaos-report as a user runs it: the installed command on files and in a pipe, the golden report, exit 3 on a
RunResult that breaks its schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GOLDEN, REPO, assert_golden
from tests.test_watch_cli import one_error_line, sh

EXAMPLES = REPO / "tests" / "schema_examples" / "RunResult"


def test_report_renders_run_results_from_files_and_stdin() -> None:
    valid = sorted((EXAMPLES / "valid").glob("*.json"))
    completed = sh(" ".join(["chaos-report", *map(str, valid)]))
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert_golden(completed.stdout, GOLDEN / "report" / "examples.md")
    assert "## Root-cause analysis" in completed.stdout
    piped = sh(f"cat {valid[0]} | chaos-report")
    assert piped.returncode == 0 and "db-pod-delete" in piped.stdout


def test_report_explains_an_abort_by_the_callers_threshold() -> None:
    completed = sh(f"chaos-report {EXAMPLES / 'valid' / 'aborted-and-passed.json'}")
    analysis = completed.stdout.split("## Root-cause analysis", 1)[1]
    assert "`db-pod-delete`: losing `shop/StatefulSet/db` to pod-delete breached `api-error-rate`" in analysis
    assert "more than one replica" in analysis


@pytest.mark.parametrize("example", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_report_rejects_invalid_run_results(example: Path) -> None:
    completed = sh(f"cat {example} | chaos-report")
    assert completed.returncode == 3 and completed.stdout == ""
    one_error_line(completed, "chaos-report")


def test_report_names_outside_stops_readiness_only_recoveries_and_faults_never_injected() -> None:
    completed = sh(f"chaos-report {EXAMPLES / 'valid' / 'outside-stop-metrics-loss-not-injected.json'}")
    assert completed.returncode == 0, completed.stderr
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[6] for line in completed.stdout.splitlines()
            if line.startswith("| ") and " | pod-" in line}
    assert rows == {"web-outside-stop": "1.1s", "web-metrics-lost": "1.02s (pod readiness only: metrics were lost)",
                    "db-no-runtime": "not injected"}
    analysis = completed.stdout.split("## Root-cause analysis", 1)[1]
    assert "`web-outside-stop`: `kubectl-patch` stopped the engine mid-run" in analysis
    assert "`db-no-runtime`: the hypothesis was not tested: the fault was not injected" in analysis
    assert "- Aborted by kubectl-patch, outside chaos-watch, at +8.04s" in completed.stdout


def test_report_never_prints_a_recovery_time_for_a_target_that_did_not_recover(tmp_path: Path) -> None:
    """A RunResult of an earlier chaos-watch carried the pods' brief outage as the time of a failed recovery."""
    document = json.loads((EXAMPLES / "valid" / "aborted-and-passed.json").read_text())
    document["experiments"][1].update(verdict="failed", reason="the target did not recover before the recovery timeout",
                                      recovered=False, time_to_recovery_seconds=0.11)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(document))
    completed = sh(f"chaos-report {path}")
    assert completed.returncode == 0, completed.stderr
    assert "0.11s" not in completed.stdout and "- Recovery: not recovered (expected 30s)" in completed.stdout
