"""PromQL read, not written: the vector selectors of a query. chaos-watch's preflight checks that each has series
now (an inert threshold can never fire); chaos-suggest's LLM guard checks that each names a metric the Topology's
telemetry found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser


def vector_selectors(promql: str) -> dict[str, list[str]]:
    """The vector selectors of a query by metric name, in order and once each: {"istio_requests_total":
    ['istio_requests_total{reporter="source",...}', ...]}. Raises ValueError when the query does not parse."""
    found: dict[str, list[str]] = {}
    for selector in _selectors(promql_parser.parse(promql)):
        text = str(selector)
        metric = selector.name or text
        if text not in found.setdefault(metric, []):
            found[metric].append(text)
    return found


def _selectors(expr: Any) -> Iterator[Any]:
    if isinstance(expr, promql_parser.VectorSelector):
        yield expr
    elif isinstance(expr, promql_parser.MatrixSelector):
        yield expr.vector_selector
    elif isinstance(expr, promql_parser.BinaryExpr):
        yield from _selectors(expr.lhs)
        yield from _selectors(expr.rhs)
    elif isinstance(expr, promql_parser.Call):
        for argument in expr.args:
            yield from _selectors(argument)
    elif isinstance(expr, promql_parser.AggregateExpr):
        yield from _selectors(expr.expr)
        if expr.param is not None:
            yield from _selectors(expr.param)
    elif isinstance(expr, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        yield from _selectors(expr.expr)
