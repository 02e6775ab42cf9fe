"""chaos-report's formats as a user runs them: the rules that read the Kubernetes events and the rate window, the
resilience score, JUnit for CI, the JSON summary, and the self-contained HTML report opened in headless Chromium
(no console error, the timelines and the graph drawn; the screenshot is kept in pytest's tmp dir)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos_report.score import experiment_score
from conftest import REPO
from tests.test_watch_cli import sh

EXAMPLES = REPO / "tests" / "schema_examples" / "RunResult" / "valid"
EVIDENCE = EXAMPLES / "evidence-and-timeline.json"
TOPOLOGY = REPO / "tests" / "schema_examples" / "Topology" / "valid" / "with-telemetry.json"


def report(*args: object) -> str:
    completed = sh(" ".join(["chaos-report", *map(str, args)]))
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr
    return completed.stdout


def test_rules_read_failed_scheduling_collateral_evictions_and_the_rate_window() -> None:
    analysis = report(EVIDENCE).split("## Root-cause analysis", 1)[1]
    assert "`web-cordoned`: Pod/web-1x stayed Pending: the scheduler found no node" in analysis
    assert "look at readiness probes" not in analysis
    assert "node-drain also disrupted Pod/postgres-0, which are not the target" in analysis
    assert "`cart-pod-delete`: `web-error-rate` breached at +33s, after the outage had ended at +15s" in analysis
    assert "60s range window" in analysis and "outlasts the fault." not in analysis


def test_each_run_and_experiment_says_which_run_and_when() -> None:
    markdown = report(EVIDENCE, EXAMPLES / "dry-run-skipped.json")
    assert "- Run `20261126T090000Z-77`, started 2025-11-26T09:00:00.000Z" in markdown
    assert "- Run `20261126T090000Z-77`, experiment started" in markdown
    assert "Kubernetes events:" in markdown and "Evicted on Pod/postgres-0 (not the target)" in markdown


def test_the_score_follows_the_documented_formula() -> None:
    experiments = {e["id"]: e for e in json.loads(EVIDENCE.read_text())["experiments"]}
    # 1 threshold breached (0 of 1 held, Litmus Stopped is no verdict), recovered in time, aborted on it.
    assert experiment_score(experiments["api-node-drain"])[0] == round(0.5 * 0 + 0.3 * 100 + 0.2 * 0)
    # Thresholds held, Litmus Pass: 2 of 2 checks; not recovered; not aborted.
    assert experiment_score(experiments["web-cordoned"]) == (
        70, "70 = 0.50 × 100 (2 of 2 checks held) + 0.30 × 0 (not recovered) + 0.20 × 100 (not aborted)")
    # 1 of 2 checks held; recovered in 15s of 30s; not aborted.
    assert experiment_score(experiments["cart-pod-delete"])[0] == round(0.5 * 50 + 0.3 * 100 + 0.2 * 100)
    slow = {**experiments["cart-pod-delete"], "time_to_recovery_seconds": 45.0}
    assert experiment_score(slow)[0] == round(0.5 * 50 + 0.3 * 50 + 0.2 * 100)
    summary = json.loads(report("--format json", EVIDENCE))
    assert summary["score"] == round((30 + 70 + 75) / 3)
    assert [e["score"] for e in summary["experiments"]] == [30, 70, 75]


def test_outside_stops_and_faults_never_injected_are_not_scored() -> None:
    summary = json.loads(report("--format json", EXAMPLES / "outside-stop-metrics-loss-not-injected.json"))
    assert {e["id"]: e["score"] for e in summary["experiments"]} == {
        "web-outside-stop": None, "web-metrics-lost": None, "db-no-runtime": None}
    assert summary["score"] is None and summary["experiments"][2]["recovery"] == "not injected"


def test_junit_has_one_testcase_per_experiment_with_its_outcome() -> None:
    xml = report("--format junit", *sorted(EXAMPLES.glob("*.json")))
    root = ET.fromstring(xml)
    cases = {case.get("name") + "@" + suite.get("name"): case for suite in root for case in suite}
    outcome = {key: (case[0].tag if len(case) and case[0].tag != "system-out" else "passed") for key, case in cases.items()}
    assert outcome["db-pod-delete@chaosgen 20261125T220000Z-4242"] == "failure"
    assert outcome["web-pod-delete@chaosgen 20261125T220000Z-4242"] == "passed"
    assert outcome["db-no-runtime@chaosgen 20261125T220000Z-4242"] == "error"
    assert "skipped" in outcome.values()
    failure = cases["db-pod-delete@chaosgen 20261125T220000Z-4242"][0]
    assert failure.get("message") == "threshold api-error-rate breached: 0.09 > 0.05" and failure.get("type") == "aborted"
    assert root.get("tests") == str(len(cases))


def test_every_format_is_byte_identical_for_the_same_input() -> None:
    for output_format in ("markdown", "html", "junit", "json"):
        assert report("--format", output_format, EVIDENCE) == report("--format", output_format, EVIDENCE)


def test_html_is_self_contained_with_timelines_and_graphs() -> None:
    html = report("--format html --topology", TOPOLOGY, EVIDENCE)
    assert "<script" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert html.count('class="pygal-chart"') == 3 and html.count('class="dependency-graph"') == 3
    drain = html.split('id="20261126T090000Z-77-api-node-drain"', 1)[1].split("</section>", 1)[0]
    for legend in ("api-error-rate threshold (&gt; 0.05)", "breach +1.5s", "abort requested +1.52s", "Litmus stopped +1.7s"):
        assert legend in drain, legend
    assert 'class="node target"' in drain and 'class="node blast-radius"' in drain


def test_a_bad_topology_is_rejected_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "topology.json"
    bad.write_text(json.dumps({"apiVersion": "chaosgen.dev/v1", "kind": "Topology"}))
    completed = sh(f"chaos-report --format html --topology {bad} {EVIDENCE}")
    assert completed.returncode == 3 and completed.stdout == ""
    assert len(completed.stderr.strip().splitlines()) == 1 and str(bad) in completed.stderr


CHROMIUM = shutil.which("chromium")


def open_in_chromium(page: Path, screenshot: Path) -> list[str]:
    """Load the page headless (virtual time lets it settle) and return the console messages it logged."""
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=3000", "--window-size=1100,2400", f"--screenshot={screenshot}",
         page.as_uri()], capture_output=True, text=True, timeout=120, cwd=page.parent)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (tests/install-deps.sh installs it)")
def test_chromium_opens_the_html_report_without_a_console_error(tmp_path: Path) -> None:
    # The detector is checked first: a page with a script error must be caught, or a clean result proves nothing.
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><script>console.error("detector-check"); missingFunction();</script></body></html>')
    caught = open_in_chromium(broken, tmp_path / "broken.png")
    assert any("detector-check" in line for line in caught) and any("missingFunction" in line for line in caught)

    page = tmp_path / "report.html"
    page.write_text(report("--format html --topology", TOPOLOGY, EVIDENCE))
    screenshot = tmp_path / "report.png"
    assert open_in_chromium(page, screenshot) == []
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count('class="pygal-chart"') == 3 and dom.count('class="dependency-graph"') == 3
