"""chaos-report as a user runs it: the installed command on files and in a pipe, the golden report, exit 3 on a
RunResult that breaks its schema."""

from __future__ import annotations

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
