"""The Prometheus seam: instant queries over the HTTP API (GET /api/v1/query), as chaos-watch's runner needs them."""

from __future__ import annotations

import math
from typing import Protocol

import requests

from chaosgen.secrets import redact_text


class MetricsUnavailable(Exception):
    """Prometheus did not answer, or answered with an error; the runner treats it as metrics loss."""


class MetricsReader(Protocol):
    def query(self, promql: str) -> list[float]:
        """The value of every series the instant query returns (NaN kept as NaN); MetricsUnavailable if it fails."""
        ...


class HttpPrometheus:
    """MetricsReader over Prometheus's HTTP API; a short timeout because a slow answer is as bad as none."""

    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def query(self, promql: str) -> list[float]:
        try:
            response = self.session.get(f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=self.timeout)
        except requests.RequestException as e:
            raise MetricsUnavailable(f"Prometheus {redact_text(self.base_url)} unreachable: {type(e).__name__}") from e
        try:
            body = response.json()
        except ValueError as e:
            raise MetricsUnavailable(f"Prometheus answered HTTP {response.status_code} without JSON") from e
        if body.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus query failed: {body.get('errorType')}: {body.get('error')}")
        return _values(body.get("data") or {})


def _values(data: dict) -> list[float]:
    """Values of a vector or scalar result; a matrix or string result is not a threshold value."""
    kind = data.get("resultType")
    if kind == "scalar":
        return [_number(data["result"][1])]
    if kind == "vector":
        return [_number(series["value"][1]) for series in data.get("result", [])]
    raise MetricsUnavailable(f"query returned a {kind}, not an instant vector")


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
