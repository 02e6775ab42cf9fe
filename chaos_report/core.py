"""chaos-report's pure half: RunResult documents in, the report's facts out (summary(): verdicts, scores, the
rule-based root-cause analysis) and the Markdown report (render()); html.py and junit.py render the same summary.

The analysis reads only what the RunResult recorded (verdicts, aborts, thresholds, the timeline, the Kubernetes
events, outages, preflight, Litmus's ChaosResult) and applies fixed rules, so the same results give the same
report, byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from chaos_report.score import experiment_score, run_score
from chaosgen.faults import TOTAL_LOSS_FAULTS
from chaosgen.units import parse_duration

VERDICT_ORDER = ("aborted", "failed", "error", "skipped", "passed")
# What Kubernetes says when a pod was disrupted by something other than the fault acting on the target.
COLLATERAL_REASONS = frozenset({"Evicted", "TaintManagerEviction", "Preempted", "Killing", "OOMKilling"})
PROBLEM_REASONS = frozenset({"OOMKilling", "OOMKilled", "Unhealthy", "BackOff", "FailedMount", "FailedAttachVolume",
                             "FailedCreate"})
# The run's own events that the report's timeline shows (pod transitions and engine states are in the plot).
TIMELINE_EVENTS = ("apply", "injected", "breach", "metrics-loss", "stop-requested", "stopped", "stop-unconfirmed",
                   "stopped-externally", "chaos-ended", "recovered", "not-recovered")
RANGE_WINDOW = re.compile(r"\[([0-9]+[smhdwy])(?::[0-9]*[smhdwy]?)?\]")


def summary(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """What every format shows, in input order: runs, experiments with their run, score and findings, totals.
    `chaos-report --format json` writes it as it is; called by chaos_report.cli.main."""
    experiments = []
    runs = []
    for index, document in enumerate(documents):
        run = _run_of(document, index)
        runs.append(run)
        for e in document["experiments"]:
            score, explanation = experiment_score(e) if not document["dry_run"] else (None, "not scored: dry run")
            experiments.append({**e, "run": run["id"], "score": score, "score_explanation": explanation,
                                "recovery": _recovery(e), "findings": root_causes(e)})
    totals = {verdict: sum(1 for e in experiments if e["verdict"] == verdict) for verdict in VERDICT_ORDER}
    score, explanation = run_score([e["score"] for e in experiments])
    return {"runs": runs, "dry_run": any(d["dry_run"] for d in documents), "total": len(experiments),
            "verdicts": totals, "score": score, "score_explanation": explanation, "experiments": experiments}


def _run_of(document: dict[str, Any], index: int) -> dict[str, Any]:
    """The run's id and start: recorded by chaos-watch, or for an older RunResult its journal's name and its
    earliest experiment start (so that two runs of one experiment still read apart)."""
    if document.get("run"):
        return dict(document["run"])
    journal = document.get("journal")
    starts = sorted(e["started_at"] for e in document["experiments"] if e["started_at"])
    name = journal.rsplit("/", 1)[-1].removesuffix(".jsonl") if journal else f"input-{index + 1}"
    return {"id": name, "started_at": starts[0] if starts else None}


def render(documents: list[dict[str, Any]], analysis: list[str] | None = None) -> str:
    """The Markdown report; called by chaos_report.cli with every RunResult it read, in input order.

    analysis: the root-cause lines of an LLM (chaos_report.rca) in place of the rule-based ones."""
    facts = summary(documents)
    experiments = facts["experiments"]
    lines = ["# ChaosGen run report", ""]
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in facts["verdicts"].items() if count) or "no experiments"
    dry = " (dry run: no chaos was injected)" if facts["dry_run"] else ""
    lines += [f"{len(experiments)} experiment(s): {verdicts}{dry}.", ""]
    for run in facts["runs"]:
        lines.append(f"- Run `{run['id']}`, started {run['started_at'] or 'never (nothing ran)'}")
    score = "n/a" if facts["score"] is None else f"{facts['score']}/100"
    lines += ["", f"Resilience score: **{score}** ({facts['score_explanation']}).", ""]
    lines += ["| Experiment | Run | Target | Fault | Verdict | Score | Recovery | Reason |", "|---|---|---|---|---|---|---|---|"]
    for e in experiments:
        lines.append(f"| {e['id']} | {_cell(e['run'])} | {_cell(e['target'])} | {_cell(e['fault'])} | {e['verdict']} | "
                     f"{'-' if e['score'] is None else e['score']} | {e['recovery']} | {_cell(e['reason'])} |")
    lines.append("")
    for e in experiments:
        lines += _section(e)
    lines += ["## Root-cause analysis", ""]
    findings = analysis if analysis is not None else [finding for e in experiments for finding in e["findings"]]
    lines += [f"- {finding}" for finding in findings] or ["- Every hypothesis held; nothing to explain."]
    return "\n".join(lines) + "\n"


def timeline_events(e: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's own events worth a line or a mark: what chaos-watch did and saw, not every pod transition."""
    return [event for event in e["events"] if event["type"] in TIMELINE_EVENTS]


def notable_kube_events(e: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes events a reader should see: every Warning, and the collateral disruptions."""
    return [k for k in e.get("kube_events") or [] if k["type"] == "Warning" or not k["target"]]


def describe_kube_event(k: dict[str, Any]) -> str:
    times = f" (x{k['count']})" if k["count"] > 1 else ""
    whose = "" if k["target"] else " (not the target)"
    return f"+{k['t']:g}s {k['type']} {k['reason']}{times} on {k['object']}{whose}: {_cell(k['message'])}"


def _section(e: dict[str, Any]) -> list[str]:
    lines = [f"## {e['id']}: {e['verdict']}", ""]
    if e.get("hypothesis"):
        lines += [f"Hypothesis: {e['hypothesis']}", ""]
    lines.append(f"- Run `{e['run']}`, experiment started {e['started_at'] or 'never'}")
    lines.append(f"- Engine `{e['namespace']}/{e['engine']}`, fault `{e['fault']}` on `{e['target']}`")
    lines.append(f"- Verdict: **{e['verdict']}**: {e['reason']}")
    lines.append(f"- Score: {'n/a' if e['score'] is None else str(e['score']) + '/100'}: {e['score_explanation']}")
    if e["abort"]:
        a = e["abort"]
        stopped = f", Litmus stopped it at +{a['stopped_at']}s" if a["confirmed"] else ", stop not confirmed by Litmus"
        by = (f"{a.get('manager') or 'someone'}, outside chaos-watch," if a["by"] == "external" else a["by"])
        lines.append(f"- Aborted by {by} at +{a['requested_at']}s{stopped}")
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
    events = timeline_events(e)
    if events:
        lines += ["", "Timeline:"] + [f"- +{event['t']:g}s {event['type']}: {_cell(event['message'])}" for event in events]
    kube = notable_kube_events(e)
    if kube:
        lines += ["", "Kubernetes events:"] + [f"- {describe_kube_event(k)}" for k in kube]
    return lines + [""]


def root_causes(e: dict[str, Any]) -> list[str]:
    """The rule-based explanation of one experiment's outcome; nothing for one that passed cleanly."""
    name = f"`{e['id']}`"
    found: list[str] = []
    abort = e["abort"]
    kube = e.get("kube_events") or []
    collateral = sorted({k["object"] for k in kube if not k["target"] and k["reason"] in COLLATERAL_REASONS})
    unschedulable = [k for k in kube if k["target"] and k["reason"] == "FailedScheduling"]
    if abort and abort["by"] == "threshold":
        threshold = next((t for t in e["thresholds"] if t["name"] == abort["threshold"]), None)
        worst = (f" (worst {threshold['worst']:.4g} against {threshold['operator']} {threshold['value']:g})"
                 if threshold and threshold["worst"] is not None else "")
        if collateral:
            found.append(f"{name}: `{abort['threshold']}` breached{worst} while {e['fault']} also disrupted "
                         f"{', '.join(collateral)}, which are not the target `{e['target']}`: the breach may come from "
                         "them (a single replica on the same node is the usual suspect), not from losing the target. "
                         "Spread single-replica workloads off the nodes the fault acts on, or give them replicas.")
        else:
            found.append(f"{name}: losing `{e['target']}` to {e['fault']} breached `{abort['threshold']}`{worst}; "
                         "its callers have no fallback while it is down. " + _remedy(e))
    elif abort and abort["by"] == "metrics-loss":
        found.append(f"{name}: Prometheus stopped answering during the chaos, so chaos-watch aborted as a fail-safe; "
                     "the hypothesis was not tested. Check that Prometheus is not itself affected by the fault.")
    elif abort and abort["by"] == "timeout":
        found.append(f"{name}: the engine did not complete in time; Litmus may be stuck (runner not scheduled, "
                     "missing ChaosExperiment or RBAC).")
    elif abort and abort["by"] in ("signal", "error"):
        found.append(f"{name}: the run was stopped ({abort['reason']}); the hypothesis was not tested.")
    elif abort and abort["by"] == "external":
        who = f"`{abort['manager']}`" if abort.get("manager") else "someone other than chaos-watch"
        found.append(f"{name}: {who} stopped the engine mid-run (engineState: stop); the hypothesis was not tested "
                     "to the end. Check who else operates on the ChaosEngines of this namespace.")
    if abort and not abort["confirmed"]:
        found.append(f"{name}: Litmus did not confirm the stop; check that no chaos is still running "
                     "(`chaos-watch cleanup`).")
    if e["verdict"] == "failed":
        result = e["chaos_result"] or {}
        if result.get("verdict") == "Fail":
            found.append(f"{name}: Litmus failed the experiment{': ' + result['failed_step'] if result.get('failed_step') else ''}"
                         f" (probe success {result.get('probe_success_percentage')}).")
        if e["recovered"] is False and not unschedulable:
            found.append(f"{name}: `{e['target']}` did not return to its desired ready replicas with healthy "
                         "metrics in time; look at readiness probes, image pulls and resource quotas.")
        ttr, expected = e["time_to_recovery_seconds"], e["expected_recovery_seconds"]
        if ttr is not None and expected is not None and ttr > expected:
            found.append(f"{name}: recovery took {ttr:g}s against the expected {expected}s; slow start-up or "
                         "readiness delays dominate. " + _remedy(e))
        for t in e["thresholds"]:
            if t["breached"] and not abort:
                found.append(_late_breach(e, t))
    if unschedulable:
        first = unschedulable[0]
        found.append(f"{name}: {first['object']} stayed Pending: the scheduler found no node for it "
                     f"(FailedScheduling at +{first['t']:g}s: {first['message']}). Uncordon or add nodes, or relax its "
                     "node selector, affinity, tolerations or resource requests; probes and images are not the cause.")
    for k in kube:
        if k["target"] and k["reason"] in PROBLEM_REASONS:
            found.append(f"{name}: Kubernetes reported {k['reason']} on {k['object']} at +{k['t']:g}s: {k['message']}.")
    if collateral and not (abort and abort["by"] == "threshold"):
        found.append(f"{name}: the fault also disrupted {', '.join(collateral)}, which are not the target; count "
                     "them in the blast radius.")
    if e["verdict"] == "skipped":
        found.append(f"{name}: not run: {e['reason']}.")
    if e["verdict"] == "error" and e.get("injected") is False:
        found.append(f"{name}: the hypothesis was not tested: {e['reason']}. The chaos engine could not act on the "
                     "target (its container runtime, helper pod or target selection).")
    elif e["verdict"] == "error":
        found.append(f"{name}: environment problem: {e['reason']}.")
    return found


def _late_breach(e: dict[str, Any], t: dict[str, Any]) -> str:
    """A breach after the chaos: the query's rate window still averaging the outage, or an impact that outlasts it."""
    name = f"`{e['id']}`"
    ended = [o["up_at"] for o in e.get("outages") or [] if o["up_at"] is not None]
    windows = [parse_duration(w) for w in RANGE_WINDOW.findall(t["query"])]
    breach, window = t["first_breach_at"], max(windows, default=0.0)
    if ended and breach is not None and window and max(ended) <= breach <= max(ended) + window:
        return (f"{name}: `{t['name']}` breached at +{breach:g}s, after the outage had ended at +{max(ended):g}s: its "
                f"query averages over a {window:g}s range window, which still holds the outage for up to {window:g}s "
                "after it ends. That is the window's lag, not an impact that outlasts the fault; a shorter range "
                "window (or a `for` duration) measures the fault itself.")
    return f"{name}: `{t['name']}` breached without an abort (after the chaos ended): the impact outlasts the fault."


def _remedy(e: dict[str, Any]) -> str:
    """The standard fix for a target that takes its callers down: redundancy for a single point of failure."""
    if e["fault"] in TOTAL_LOSS_FAULTS:
        return ("Consider more than one replica (or a replicated database), a PodDisruptionBudget, and "
                "retries with a circuit breaker in the callers.")
    return "Consider resource limits and autoscaling for the target, and timeouts in its callers."


def _recovery(e: dict[str, Any]) -> str:
    """The recovery cell: a time only for a target that recovered (an older RunResult may carry one regardless)."""
    if e.get("injected") is False:
        return "not injected"
    if e["recovered"] is False:
        return "not recovered"
    if e["recovered"] is None or e["time_to_recovery_seconds"] is None:
        return "not measured"
    readiness_only = " (pod readiness only: metrics were lost)" if e["aborted_by"] == "metrics-loss" else ""
    return f"{e['time_to_recovery_seconds']:g}s{readiness_only}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text is not None else "-"
