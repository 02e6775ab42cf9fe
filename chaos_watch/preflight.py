"""Every check before chaos: the safety policy again, the engine's own checks, the target's steady state, and each
abort threshold and Prometheus steady-state condition. The runner calls checks() per experiment and skips (or, for
an environment check, errors) an experiment whose checks do not all pass.
"""

from __future__ import annotations

import math
from typing import Any

from chaosgen.errors import PrometheusQueryRejected, PrometheusUnreachable
from chaos_watch import core
from chaos_watch.cluster import Cluster
from chaos_watch.engine import Check, EngineBackend
from chaos_watch.metrics import MetricsReader, number
from chaos_watch.target import readiness_check

# Checks of ours whose failure is the environment's fault, beside the backend's environment_checks.
ENVIRONMENT_CHECKS = frozenset({"prometheus"})


def checks(engine: core.Engine, support_names: set[tuple[str, str | None, str]], backend: EngineBackend,
           cluster: Cluster, metrics: MetricsReader | None, policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The preflight entries of the RunResult, in the order they ran."""
    problems = core.engine_violations(engine, policy)
    found: list[Check] = [("policy", not problems, "; ".join(f"policy rule {rule}: {message}" for rule, message in problems)
                           or "the safety policy allows the experiment")]
    found += backend.preflight(engine, support_names)
    found.append(readiness_check(cluster, engine, backend.target_namespace(engine)))
    found += _conditions(engine, metrics)
    return [{"check": name, "ok": ok, "message": message} for name, ok, message in found]


def is_environment_check(name: str, backend: EngineBackend) -> bool:
    return name in ENVIRONMENT_CHECKS or name in backend.environment_checks


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
