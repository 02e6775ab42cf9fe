"""chaos-watch's inert-threshold check through the runner's seams: a threshold whose metric has no series can never
fire (`or vector(0)` reads 0 forever), so its experiment is not run; --allow-inert-thresholds runs it with a warning."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from test_watch_runner import FakeCluster, ListJournal, ScriptedMetrics, run

from chaos_suggest import promql
from chaos_watch import core
from chaos_watch.litmus import LitmusBackend
from chaos_watch.preflight import vector_selectors
from chaos_watch.runner import Runner, Settings
from chaosgen.policy import DEFAULT_POLICY
from tests.sandbox import watch_app

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


API = promql.Peer("shop", "Deployment", "api", "api")
WEB = promql.Peer("shop", "Deployment", "web", "web")


def test_the_selectors_of_a_threshold_by_metric() -> None:
    assert vector_selectors(promql.error_rate("app", API, API).query) == {"http_requests_total": [
        'http_requests_total{namespace="shop",service="api",code=~"5.."}',
        'http_requests_total{namespace="shop",service="api"}']}
    assert list(vector_selectors(f"{ISTIO_ERROR_RATE} or vector(0)")) == ["istio_requests_total"]
    assert list(vector_selectors(promql.p99_latency("app", API, API).query)) == ["http_request_duration_seconds_bucket"]


def run_thresholds(metrics: ScriptedMetrics, *thresholds: core.Threshold) -> core.Observation:
    engine = dataclasses.replace(core.parse_engines([watch_app.engine("web-pod-delete", "web")], "test")[0],
                                 thresholds=thresholds)
    cluster = FakeCluster()
    runner = Runner(cluster, LitmusBackend(cluster), metrics, ListJournal(), dict(DEFAULT_POLICY),
                    Settings(interval=0.05, recovery_timeout=2, stop_timeout=2), emit=lambda e: None)
    return runner.run([engine], [])[0]


def threshold(name: str, signal: promql.Signal) -> core.Threshold:
    return core.Threshold.from_dict({"name": name, "query": signal.query, "series": list(signal.series),
                                     "operator": ">", "value": 0.5, "for": "1s"})


class OnlyTotals(ScriptedMetrics):
    """Series for every selector but the failed-request ones, as before a servicegraph edge's first failure."""

    def __init__(self, *values: float | None) -> None:
        super().__init__(*values)
        self.looked_up: list[str] = []

    def series(self, matchers: Any, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        self.looked_up += list(matchers)
        return [] if any("failed" in m or "5.." in m for m in matchers) else [{"__name__": "present"}]


def test_the_series_a_threshold_lists_are_checked_instead_of_every_metric_it_reads() -> None:
    """servicegraph counts failures in a metric of its own, which has no series before the first failure: the
    derived check would call the threshold inert, the listed series (the request total) say it can fire."""
    signal = promql.error_rate("servicegraph", WEB, API)
    metrics = OnlyTotals(0.0)
    assert core.decide(run_thresholds(metrics, threshold("web-error-rate", signal)))[0] == "passed"
    assert metrics.looked_up[0] == 'traces_service_graph_request_total{client="web",server="api"}'
    unlisted = dataclasses.replace(threshold("web-error-rate", signal), series=())
    verdict, reason = core.decide(run_thresholds(OnlyTotals(0.0), unlisted))
    assert verdict == "error" and "no series for traces_service_graph_request_failed_total" in reason


def test_a_listed_series_the_query_does_not_read_is_refused() -> None:
    signal = promql.error_rate("istio", WEB, API)
    forged = dataclasses.replace(threshold("web-error-rate", signal), series=("up{job='prometheus'}",))
    verdict, reason = core.decide(run_thresholds(ScriptedMetrics(0.0), forged))
    assert verdict == "error"
    assert reason.endswith("threshold web-error-rate lists series its query does not read: up{job='prometheus'}")


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
