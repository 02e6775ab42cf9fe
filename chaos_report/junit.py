"""The JUnit XML report: one testcase per experiment, so that CI systems (GitHub Actions, GitLab, Jenkins) show
each hypothesis as a test. passed: a pass; failed and aborted: a failure with the reason; error: an error (the
hypothesis was not tested because of the environment); skipped: skipped. junitparser writes the XML and its escapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite


def render(summary: dict[str, Any]) -> str:
    """One testsuite per run (named by its run id), testcases in input order; for chaos_report.cli.main."""
    document = JUnitXml("ChaosGen")
    suites: dict[str, TestSuite] = {}
    for e in summary["experiments"]:
        suite = suites.get(e["run"])
        if suite is None:
            suite = suites[e["run"]] = TestSuite(f"chaosgen {e['run']}")
            if e["started_at"]:
                suite.timestamp = e["started_at"]
            document.add_testsuite(suite)
        case = TestCase(e["id"], f"chaosgen.{e['namespace']}.{e['fault'] or 'unknown'}", _duration(e))
        details = _details(e)
        if e["verdict"] in ("failed", "aborted"):
            case.result = [_with_text(Failure(e["reason"], e["verdict"]), details)]
        elif e["verdict"] == "error":
            case.result = [_with_text(Error(e["reason"], "error"), details)]
        elif e["verdict"] == "skipped":
            case.result = [Skipped(e["reason"])]
        else:
            case.system_out = details
        suite.add_testcase(case)
    document.update_statistics()
    xml: bytes = document.tostring()
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml.decode("utf-8") + "\n"


def _with_text(result: Any, text: str) -> Any:
    result.text = text
    return result


def _details(e: dict[str, Any]) -> str:
    lines = [f"target {e['target']}, fault {e['fault']}, verdict {e['verdict']}: {e['reason']}",
             f"score: {'n/a' if e['score'] is None else e['score']}: {e['score_explanation']}",
             f"recovery: {e['recovery']}"]
    return "\n".join(lines + [f"root cause: {finding}" for finding in e["findings"]])


def _duration(e: dict[str, Any]) -> float:
    """Seconds from the experiment's start to its end (0 when it never started)."""
    if not e["started_at"] or not e["ended_at"]:
        return 0.0
    start, end = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in (e["started_at"], e["ended_at"]))
    return round((end - start).total_seconds(), 3)
