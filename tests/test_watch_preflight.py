"""chaos-watch's inert-threshold check through the runner's seams: a threshold whose metric has no series can never
fire (`or vector(0)` reads 0 forever), so its experiment is not run; --allow-inert-thresholds runs it with a warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from test_watch_runner import FakeCluster, ScriptedMetrics, run

from chaos_suggest import promql
from chaos_watch import core
from chaos_watch.preflight import vector_selectors

ISTIO_ERROR_RATE = ('sum(rate(istio_requests_total{reporter="source",destination_workload="web",response_code=~"5.."}[1m]))'
                    ' / clamp_min(sum(rate(istio_requests_total{reporter="source",destination_workload="web"}[1m])), 1e-9)')


class IstioOnlyMetrics(ScriptedMetrics):
    """A Prometheus with Istio's metrics but not the app convention's: http_requests_total has no series."""

    def __init__(self, *values: float | None) -> None:
        super().__init__(*values)
        self.looked_up: list[str] = []

    def series(self, matchers: Any, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        self.looked_up += list(matchers)
        return [] if any(m.startswith("http_requests_total") for m in matchers) else [{"__name__": "istio_requests_total"}]


def test_the_selectors_of_a_threshold_by_metric() -> None:
    assert vector_selectors(promql.error_rate("shop", "api")) == {"http_requests_total": [
        'http_requests_total{namespace="shop",service="api",code=~"5.."}',
        'http_requests_total{namespace="shop",service="api"}']}
    assert list(vector_selectors(f"{ISTIO_ERROR_RATE} or vector(0)")) == ["istio_requests_total"]
    assert list(vector_selectors(promql.p99_latency("shop", "api"))) == ["http_request_duration_seconds_bucket"]


def test_a_threshold_on_a_metric_without_series_is_an_error_and_nothing_is_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    cluster = FakeCluster()
    with caplog.at_level(logging.ERROR, "chaos-watch"):
        observation = run(cluster, IstioOnlyMetrics(0.0))
    verdict, reason = core.decide(observation)
    assert verdict == "error"
    assert reason == ('preflight series-web-error-rate failed: threshold web-error-rate can never fire: no series for '
                      'http_requests_total{namespace="shop",service="web"}')
    assert [r.getMessage() for r in caplog.records] == [reason.partition("failed: ")[2]]
    assert not [o for o in cluster.objects if o[0] == "ChaosEngine"]


def test_allow_inert_thresholds_runs_with_a_warning_per_threshold(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "chaos-watch"):
        observation = run(FakeCluster(), IstioOnlyMetrics(0.0), allow_inert_thresholds=True)
    assert core.decide(observation)[0] == "passed"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "can never fire" in caplog.records[0].getMessage()


def test_a_metric_counts_as_present_when_its_total_has_series_though_no_error_yet() -> None:
    class NoErrorsYet(ScriptedMetrics):
        def series(self, matchers: Any, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
            return [] if any('code=~"5.."' in m for m in matchers) else [{"__name__": "http_requests_total"}]

    assert core.decide(run(FakeCluster(), NoErrorsYet(0.0)))[0] == "passed"
