"""Every check before chaos: the safety policy again, the engine's own checks, the target's steady state, and each
abort threshold and Prometheus steady-state condition. The runner calls checks() per experiment and skips (or, for
an environment check, errors) an experiment whose checks do not all pass.

An abort threshold whose metric the cluster does not have can never fire: `... or vector(0)` turns the missing
series into a steady 0, so the value check alone would pass it. The inert check looks up every vector selector of
every threshold query and refuses the experiment (an environment error) when a metric it reads has no series now.
A metric counts as present when any of the query's selectors of it matches: the error selector of a ratio
(code=~"5..", classification="failure") has no series until the first error, its total selector has. A threshold
that lists its `series` (chaos-suggest writes them) is checked on exactly those, each of which must be a selector
of its query and match series now: servicegraph's errors are a metric of their own, with no series before the
first failure.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import promql_parser

from chaos_watch import core
from chaos_watch.cluster import Cluster
from chaos_watch.engine import Check, EngineBackend
from chaos_watch.metrics import MetricsReader, number
from chaos_watch.target import readiness_check
from chaosgen.errors import PrometheusQueryRejected, PrometheusUnreachable
from chaosgen.promql import vector_selectors

# Checks of ours whose failure is the environment's fault, beside the backend's environment_checks.
ENVIRONMENT_CHECKS = frozenset({"prometheus"})
INERT_CHECK_PREFIX = "series-"
# Prometheus's default lookback: a series with no sample for this long is not "there now".
LOOKBACK_SECONDS = 300.0
log = logging.getLogger("chaos-watch")


def checks(engine: core.Engine, support_names: set[tuple[str, str | None, str]], backend: EngineBackend,
           cluster: Cluster, metrics: MetricsReader | None, policy: dict[str, Any],
           allow_inert_thresholds: bool = False) -> list[dict[str, Any]]:
    """The preflight entries of the RunResult, in the order they ran; allow_inert_thresholds
    (--allow-inert-thresholds) turns an inert threshold from an error into a warning."""
    problems = core.engine_violations(engine, policy)
    found: list[Check] = [("policy", not problems, "; ".join(f"policy rule {rule}: {message}" for rule, message in problems)
                           or "the safety policy allows the experiment")]
    found += backend.preflight(engine, support_names)
    found.append(readiness_check(cluster, engine, backend.target_namespace(engine)))
    if metrics is not None:
        found += _inert_thresholds(engine, metrics, allow_inert_thresholds)
    if not any(name == "prometheus" for name, _, _ in found):
        found += _conditions(engine, metrics)
    return [{"check": name, "ok": ok, "message": message} for name, ok, message in found]


def is_environment_check(name: str, backend: EngineBackend) -> bool:
    return name in ENVIRONMENT_CHECKS or name.startswith(INERT_CHECK_PREFIX) or name in backend.environment_checks


def _inert_thresholds(engine: core.Engine, metrics: MetricsReader, allowed: bool) -> list[Check]:
    """One check per abort threshold: each of its selectors matches a series now. A query that does not parse or
    that Prometheus rejects is left to the value check, which skips the experiment with the reason."""
    found: list[Check] = []
    now = time.time()

    def present(selector: str) -> bool:
        return bool(metrics.series([selector], start=now - LOOKBACK_SECONDS, end=now))

    for threshold in engine.thresholds:
        try:
            selectors = vector_selectors(threshold.query)
        except ValueError:
            continue
        listed = [_canonical(s) for s in threshold.series]
        required = [[s] for s in listed] or list(selectors.values())
        name = f"{INERT_CHECK_PREFIX}{threshold.name}"
        foreign = [s for s, text in zip(threshold.series, listed, strict=True) if not any(text in of for of in selectors.values())]
        if foreign:
            found.append((name, False, f"threshold {threshold.name} lists series its query does not read: {foreign[0]}"))
            continue
        try:
            missing = next((of[-1] for of in required if not any(present(s) for s in reversed(of))), None)
        except PrometheusQueryRejected:
            continue
        except PrometheusUnreachable as e:
            return found + [("prometheus", False, str(e))]
        if missing is None:
            found.append((name, True, f"every metric it reads has series now: {', '.join(selectors)}"))
            continue
        message = f"threshold {threshold.name} can never fire: no series for {missing}"
        if allowed:
            log.warning("%s (--allow-inert-thresholds: running anyway)", message)
            found.append((name, True, f"{message}; allowed by --allow-inert-thresholds"))
        else:
            log.error(message)
            found.append((name, False, message))
    return found


def _canonical(selector: str) -> str:
    """A listed series as vector_selectors writes the query's (quotes and spacing normalised); as given when it
    does not parse, so that it matches none of them."""
    try:
        return str(promql_parser.parse(selector))
    except ValueError:
        return selector


def _conditions(engine: core.Engine, metrics: MetricsReader | None) -> list[Check]:
    """Each abort query answers with exactly one series and is not breached yet; each Prometheus steady-state
    check of the experiment holds."""
    # (check name, query, operator, value, whether the condition must hold)
    conditions = [(f"threshold-{t.name}", t.query, t.operator, t.value, False) for t in engine.thresholds]
    conditions += [(f"steady-{name}", query, operator, value, True)
                   for name, query, operator, value in core.steady_state_queries(engine)]
    if not conditions:
        return []
    if metrics is None:
        return [("prometheus", False, "no Prometheus URL (--prometheus-url or PROMETHEUS_URL)")]
    found: list[Check] = []
    for name, query, operator, limit, must_hold in conditions:
        try:
            values = metrics.query(query)
        except PrometheusQueryRejected as e:
            # The input's query is wrong, not the environment: this experiment is skipped, the others may run.
            found.append((name, False, str(e)))
            continue
        except PrometheusUnreachable as e:
            return found + [("prometheus", False, str(e))]
        if len(values) != 1:
            found.append((name, False, f"query returns {len(values)} series, not exactly one"))
            continue
        value = values[0]
        holds = not math.isnan(value) and core.compare(value, operator, limit)
        condition = f"{number(value)} {operator} {number(limit)}"
        if holds != must_hold:
            found.append((name, False, f"steady state does not hold: not {condition}" if must_hold
                          else f"already breached before chaos: {condition}"))
        else:
            found.append((name, True, f"one series, value {number(value)}"))
    return found
