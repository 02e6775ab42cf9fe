"""chaos-report's pure half: RunResult documents in, a Markdown report out, with a rule-based root-cause analysis.

The analysis reads only what the RunResult recorded (verdicts, aborts, thresholds, outages, preflight, Litmus's
ChaosResult) and applies fixed rules, so the same results give the same report, byte for byte.
"""

from __future__ import annotations

from typing import Any

from chaosgen.faults import TOTAL_LOSS_FAULTS

VERDICT_ORDER = ("aborted", "failed", "error", "skipped", "passed")


def render(documents: list[dict[str, Any]], analysis: list[str] | None = None) -> str:
    """The whole report; called by chaos_report.cli.main with every RunResult it read, in input order.

    analysis: the root-cause lines of an LLM (chaos_report.rca) in place of the rule-based ones."""
    experiments = [e for document in documents for e in document["experiments"]]
    lines = ["# ChaosGen run report", ""]
    totals = {verdict: sum(1 for e in experiments if e["verdict"] == verdict) for verdict in VERDICT_ORDER}
    summary = ", ".join(f"{count} {verdict}" for verdict, count in totals.items() if count) or "no experiments"
    dry = " (dry run: no chaos was injected)" if any(d["dry_run"] for d in documents) else ""
    lines += [f"{len(experiments)} experiment(s): {summary}{dry}.", ""]
    lines += ["| Experiment | Target | Fault | Verdict | Recovery | Reason |", "|---|---|---|---|---|---|"]
    for e in experiments:
        lines.append(f"| {e['id']} | {_cell(e['target'])} | {_cell(e['fault'])} | {e['verdict']} | "
                     f"{_recovery(e)} | {_cell(e['reason'])} |")
    lines.append("")
    for e in experiments:
        lines += _section(e)
    lines += ["## Root-cause analysis", ""]
    findings = analysis if analysis is not None else [finding for e in experiments for finding in root_causes(e)]
    lines += [f"- {finding}" for finding in findings] or ["- Every hypothesis held; nothing to explain."]
    return "\n".join(lines) + "\n"


def _section(e: dict[str, Any]) -> list[str]:
    lines = [f"## {e['id']}: {e['verdict']}", ""]
    if e.get("hypothesis"):
        lines += [f"Hypothesis: {e['hypothesis']}", ""]
    lines.append(f"- Engine `{e['namespace']}/{e['engine']}`, fault `{e['fault']}` on `{e['target']}`")
    lines.append(f"- Verdict: **{e['verdict']}**: {e['reason']}")
    if e["abort"]:
        a = e["abort"]
        stopped = f", Litmus stopped it at +{a['stopped_at']}s" if a["confirmed"] else ", stop not confirmed by Litmus"
        lines.append(f"- Aborted by {a['by']} at +{a['requested_at']}s{stopped}")
    result = e["chaos_result"]
    if result:
        probes = "n/a" if result["probe_success_percentage"] is None else f"{result['probe_success_percentage']:g}%"
        lines.append(f"- ChaosResult `{result['name']}`: phase {result['phase']}, verdict {result['verdict']}, probe success {probes}")
    lines.append(f"- Recovery: {_recovery(e)} (expected {e['expected_recovery_seconds']}s)"
                 if e["expected_recovery_seconds"] is not None else f"- Recovery: {_recovery(e)}")
    if e["thresholds"]:
        lines += ["", "| Threshold | Condition | Worst | Breached at |", "|---|---|---|---|"]
        for t in e["thresholds"]:
            breached = f"+{t['first_breach_at']}s" if t["breached"] else "no"
            worst = "n/a" if t["worst"] is None else f"{t['worst']:.4g}"
            lines.append(f"| {t['name']} | {t['operator']} {t['value']:g} for {t['for']} | {worst} | {breached} |")
    failed_checks = [c for c in e["preflight"] if not c["ok"]]
    if failed_checks:
        lines += ["", "Preflight failures:"] + [f"- {c['check']}: {c['message']}" for c in failed_checks]
    return lines + [""]


def root_causes(e: dict[str, Any]) -> list[str]:
    """The rule-based explanation of one experiment's outcome; nothing for one that passed cleanly."""
    name = f"`{e['id']}`"
    found: list[str] = []
    abort = e["abort"]
    if abort and abort["by"] == "threshold":
        threshold = next((t for t in e["thresholds"] if t["name"] == abort["threshold"]), None)
        found.append(
            f"{name}: losing `{e['target']}` to {e['fault']} breached `{abort['threshold']}`"
            + (f" (worst {threshold['worst']:.4g} against {threshold['operator']} {threshold['value']:g})" if threshold and threshold["worst"] is not None else "")
            + "; its callers have no fallback while it is down. "
            + _remedy(e)
        )
    elif abort and abort["by"] == "metrics-loss":
        found.append(f"{name}: Prometheus stopped answering during the chaos, so chaos-watch aborted as a fail-safe; "
                     "the hypothesis was not tested. Check that Prometheus is not itself affected by the fault.")
    elif abort and abort["by"] == "timeout":
        found.append(f"{name}: the engine did not complete in time; Litmus may be stuck (runner not scheduled, "
                     "missing ChaosExperiment or RBAC).")
    elif abort and abort["by"] in ("signal", "error"):
        found.append(f"{name}: the run was stopped ({abort['reason']}); the hypothesis was not tested.")
    if abort and not abort["confirmed"]:
        found.append(f"{name}: Litmus did not confirm the stop; check that no chaos is still running "
                     "(`chaos-watch cleanup`).")
    if e["verdict"] == "failed":
        result = e["chaos_result"] or {}
        if result.get("verdict") == "Fail":
            found.append(f"{name}: Litmus failed the experiment{': ' + result['failed_step'] if result.get('failed_step') else ''}"
                         f" (probe success {result.get('probe_success_percentage')}).")
        if e["recovered"] is False:
            found.append(f"{name}: `{e['target']}` did not return to its desired ready replicas with healthy "
                         "metrics in time; look at readiness probes, image pulls and resource quotas.")
        ttr, expected = e["time_to_recovery_seconds"], e["expected_recovery_seconds"]
        if ttr is not None and expected is not None and ttr > expected:
            found.append(f"{name}: recovery took {ttr:g}s against the expected {expected}s; slow start-up or "
                         "readiness delays dominate. " + _remedy(e))
        for t in e["thresholds"]:
            if t["breached"] and not abort:
                found.append(f"{name}: `{t['name']}` breached without an abort (after the chaos ended): the impact "
                             "outlasts the fault.")
    if e["verdict"] == "skipped":
        found.append(f"{name}: not run: {e['reason']}.")
    if e["verdict"] == "error":
        found.append(f"{name}: environment problem: {e['reason']}.")
    return found


def _remedy(e: dict[str, Any]) -> str:
    """The standard fix for a target that takes its callers down: redundancy for a single point of failure."""
    if e["fault"] in TOTAL_LOSS_FAULTS:
        return ("Consider more than one replica (or a replicated database), a PodDisruptionBudget, and "
                "retries with a circuit breaker in the callers.")
    return "Consider resource limits and autoscaling for the target, and timeouts in its callers."


def _recovery(e: dict[str, Any]) -> str:
    if e["time_to_recovery_seconds"] is None:
        return "not measured" if e["recovered"] is None else "not recovered"
    return f"{e['time_to_recovery_seconds']:g}s"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text is not None else "-"
