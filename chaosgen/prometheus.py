"""The one Prometheus client of every stage: instant and range queries, series and metadata look-ups over the HTTP API.

chaos-watch samples its abort thresholds with it; chaos-inventory reads telemetry with it. Transient failures
(connection refused or reset, timeouts, HTTP 429 and 5xx) are retried with exponential backoff; what remains is a
typed error: PrometheusUnreachable (exit 4) when Prometheus cannot answer, PrometheusQueryRejected (exit 3) when it
says the query is wrong. urllib3, like the Kubernetes client, so that the stages speak HTTP one way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3

from chaosgen.errors import PrometheusQueryRejected, PrometheusUnreachable
from chaosgen.secrets import redact_text

log = logging.getLogger("chaosgen.prometheus")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# Prometheus answers 400 (bad_data) for a query that does not parse and 422 (execution) for one that cannot run.
REJECTED_STATUS = frozenset({400, 422})
MAX_BACKOFF = 2.0


@dataclass(frozen=True)
class Sample:
    """One series of an instant query: its labels and its value (NaN kept as NaN)."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (time, value) points in time order."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class PrometheusClient:
    """Prometheus's HTTP API (/api/v1/...) with a per-request timeout and `attempts` tries per call.

    Callers pick the trade-off: chaos-watch, sampling every few seconds during chaos, wants a short timeout and one
    retry (a slow answer is as bad as none); a look-up that runs once can afford more.
    """

    def __init__(self, base_url: str, timeout: float = 2.0, attempts: int = 3, backoff: float = 0.2,
                 connections: int = 4, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        headers = {"Accept": "application/json"}
        if parts.username is not None:
            # Credentials in the URL become basic auth, and never appear in a message.
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers.update(urllib3.make_headers(basic_auth=credentials))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self.base_url = urlunsplit(parts)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        # Our retry loop is the one policy: urllib3's own would multiply it and log a warning per try.
        # connections: how many threads query at once (more would open and drop a connection, with a warning each).
        self.http = urllib3.PoolManager(headers=headers, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                        retries=False, maxsize=max(1, connections))

    # -- queries ---------------------------------------------------------------------------------------------------

    def instant(self, promql: str, at: float | None = None) -> list[Sample]:
        """Every series of an instant query (GET /api/v1/query); a scalar result is one series without labels."""
        data = self._get("/api/v1/query", {"query": promql, **({"time": _stamp(at)} if at is not None else {})}, promql)
        kind = data.get("resultType")
        if kind == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        if kind == "vector":
            return [Sample(dict(s.get("metric") or {}), _number(s["value"][1])) for s in data.get("result") or []]
        raise PrometheusQueryRejected(f"Prometheus query {promql!r} returned a {kind}, not an instant vector")

    def query(self, promql: str) -> list[float]:
        """The value of every series an instant query returns, as chaos-watch's thresholds compare them."""
        return [sample.value for sample in self.instant(promql)]

    def range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Every series of a range query (GET /api/v1/query_range) between start and end (epoch seconds)."""
        data = self._get("/api/v1/query_range",
                         {"query": promql, "start": _stamp(start), "end": _stamp(end), "step": _stamp(step)}, promql)
        if data.get("resultType") != "matrix":
            raise PrometheusQueryRejected(f"Prometheus range query {promql!r} returned a {data.get('resultType')}")
        return [Series(dict(s.get("metric") or {}), tuple((float(t), _number(v)) for t, v in s.get("values") or []))
                for s in data.get("result") or []]

    # -- look-ups --------------------------------------------------------------------------------------------------

    def series(self, matchers: Sequence[str], start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        """The label sets of the series that match any of the selectors (GET /api/v1/series)."""
        params: list[tuple[str, str]] = [("match[]", matcher) for matcher in matchers]
        params += [(key, _stamp(value)) for key, value in (("start", start), ("end", end)) if value is not None]
        return list(self._get("/api/v1/series", params, " or ".join(matchers)) or [])

    def label_values(self, label: str) -> list[str]:
        """Every value of one label (GET /api/v1/label/<label>/values); label_values("__name__") is every metric name."""
        return list(self._get(f"/api/v1/label/{label}/values", {}, None) or [])

    def metadata(self, metric: str | None = None) -> dict[str, list[dict[str, str]]]:
        """Type, help and unit of the metrics the targets expose (GET /api/v1/metadata), by metric name."""
        return dict(self._get("/api/v1/metadata", {"metric": metric} if metric else {}, None) or {})

    # -- transport -------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | list[tuple[str, str]], promql: str | None) -> Any:
        """The `data` of a successful answer, after retrying what may pass; typed errors for what will not."""
        url = f"{self.base_url}{path}"
        where = f"Prometheus {redact_text(self.base_url)}"
        delay = self.backoff
        attempt = 1
        while True:
            outcome = self._attempt(url, params, promql, where)
            if isinstance(outcome, _Answer):
                return outcome.data
            if attempt >= self.attempts:
                raise PrometheusUnreachable(f"{where}: {outcome} (after {attempt} attempt{'s' if attempt > 1 else ''})")
            log.info("%s: %s; retrying in %.1fs", where, outcome, delay)
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            attempt += 1

    def _attempt(self, url: str, params: dict[str, str] | list[tuple[str, str]], promql: str | None,
                 where: str) -> _Answer | str:
        """One request: its answer, or why it failed transiently (worth another try)."""
        try:
            response = self.http.request("GET", url, fields=params)
        except urllib3.exceptions.HTTPError as e:
            return f"unreachable: {type(e).__name__}"
        status = response.status
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if status in TRANSIENT_STATUS:
                return f"HTTP {status}"
            raise PrometheusUnreachable(f"{where} answered HTTP {status} without Prometheus API JSON (is the URL right?)")
        if body.get("status") == "success":
            return _Answer(body.get("data"))
        error = f"{body.get('errorType')}: {body.get('error')}"
        if status in REJECTED_STATUS:
            subject = f"the query {promql!r}" if promql else "the request"
            raise PrometheusQueryRejected(f"{where} rejected {subject}: {error}")
        if status in TRANSIENT_STATUS:
            return f"HTTP {status} {error}"
        raise PrometheusUnreachable(f"{where} answered HTTP {status}: {error}")


@dataclass(frozen=True)
class _Answer:
    data: Any


def _stamp(seconds: float) -> str:
    """A time or duration as the API takes it: decimal seconds, never an exponent."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
