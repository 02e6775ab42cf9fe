"""The resilience score: 0-100 per experiment and per run, deterministic, each with the sentence that explains it.

Litmus's resilience score is the weighted success of its probes; chaosgen's counts its own checks the same way
(abort thresholds that held, Litmus probes that passed, the engine's own verdict) and adds what Litmus does not
see: how fast the target recovered against the hypothesis's expected time, and whether the fault had to be
aborted to protect the callers. README "Resilience score" states the formula; keep the two in step.
"""

from __future__ import annotations

from typing import Any

WEIGHTS = {"checks": 50, "recovery": 30, "abort": 20}
# Aborts that say nothing about the target's resilience: the hypothesis was cut short by the tool, a person, a
# stuck engine or lost metrics, so the run is not scored rather than scored low.
UNSCORED_ABORTS = frozenset({"signal", "error", "external", "timeout", "metrics-loss"})


def experiment_score(e: dict[str, Any]) -> tuple[int | None, str]:
    """(score or None when the hypothesis was not tested, the explanation); chaos_report.core.summary calls it."""
    if e["verdict"] in ("skipped", "error") or e.get("injected") is False:
        return None, f"not scored: the hypothesis was not tested ({e['verdict']})"
    if e["aborted_by"] in UNSCORED_ABORTS:
        return None, f"not scored: the run was cut short (aborted by {e['aborted_by']})"
    parts: dict[str, tuple[float, str]] = {"checks": _checks(e)}
    recovery = _recovery(e)
    if recovery is not None:
        parts["recovery"] = recovery
    parts["abort"] = (0.0, "aborted on a threshold") if e["aborted_by"] == "threshold" else (100.0, "not aborted")
    total = sum(WEIGHTS[name] for name in parts)
    score = round(sum(WEIGHTS[name] * value for name, (value, _) in parts.items()) / total)
    terms = " + ".join(f"{WEIGHTS[name] / total:.2f} × {value:g} ({why})" for name, (value, why) in parts.items())
    return score, f"{score} = {terms}"


def _checks(e: dict[str, Any]) -> tuple[float, str]:
    """Litmus's weighted probe success, over chaosgen's thresholds, Litmus's probes and the engine's verdict."""
    held = [not t["breached"] for t in e["thresholds"]]
    result = e["chaos_result"] or {}
    held += [p["verdict"].lower() == "passed" for p in result.get("probes") or []]
    if result.get("verdict") in ("Pass", "Fail"):
        held.append(result["verdict"] == "Pass")
    if not held:
        return 100.0, "no checks"
    value = 100.0 * sum(held) / len(held)
    return round(value, 1), f"{sum(held)} of {len(held)} checks held"


def _recovery(e: dict[str, Any]) -> tuple[float, str] | None:
    """100 within the expected time, falling linearly to 0 at twice it; 0 not recovered; None not measured."""
    if e["recovered"] is False:
        return 0.0, "not recovered"
    ttr, expected = e["time_to_recovery_seconds"], e["expected_recovery_seconds"]
    if e["recovered"] is None or ttr is None:
        return None
    if not expected or ttr <= expected:
        return 100.0, f"recovered in {ttr:g}s" + (f" of {expected}s expected" if expected else "")
    value = max(0.0, 100.0 * (2 - ttr / expected))
    return round(value, 1), f"recovered in {ttr:g}s, expected {expected}s"


def run_score(scores: list[int | None]) -> tuple[int | None, str]:
    """The mean of the scored experiments (Litmus weighs each experiment; chaosgen weighs them equally)."""
    scored = [s for s in scores if s is not None]
    if not scored:
        return None, "not scored: no experiment tested its hypothesis"
    value = round(sum(scored) / len(scored))
    return value, f"{value} = the mean of {len(scored)} scored experiment(s) of {len(scores)}"
