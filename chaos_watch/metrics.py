"""The Prometheus seam of chaos-watch: one value per threshold or steady-state query, or why there is none.

cli.py injects chaosgen.prometheus.PrometheusClient (which retries a dropped request itself); the tests inject
scripted readers. The preflight and the runner both sample through sample() so that "no value" means one thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chaosgen.errors import PrometheusQueryRejected, PrometheusUnreachable

# What a MetricsReader raises when it has no answer: the runner treats either as metrics loss.
METRICS_ERRORS = (PrometheusUnreachable, PrometheusQueryRejected)


class MetricsReader(Protocol):
    def query(self, promql: str) -> list[float]:
        """The value of every series the instant query returns (NaN kept as NaN); one of METRICS_ERRORS if none."""
        ...

    def series(self, matchers: Sequence[str], start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        """The label sets of the series matching any selector between start and end (the preflight's inert check)."""
        ...


def sample(metrics: MetricsReader | None, query: str) -> tuple[float | None, str | None]:
    """(the query's single value or None, why Prometheus gave no answer or None); several series are no value."""
    if metrics is None:
        return None, "no Prometheus URL"
    try:
        values = metrics.query(query)
    except METRICS_ERRORS as e:
        return None, str(e)
    return (values[0] if len(values) == 1 else None), None


def number(value: float | None) -> str:
    """A value as messages show it: four significant digits, "none" for no value."""
    return "none" if value is None else f"{value:.4g}"
