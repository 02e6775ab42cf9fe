"""chaosgen.prometheus against a tiny scripted HTTP server on 127.0.0.1: what it retries (refused connections,
timeouts, 429, 5xx), what it gives up on at once (a rejected query, a wrong URL), and how it reads each API."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chaosgen.errors import EnvironmentFailure, InputRejected, PrometheusQueryRejected, PrometheusUnreachable
from chaosgen.prometheus import PrometheusClient, Sample, Series


def success(data: Any) -> tuple[int, Any]:
    return 200, {"status": "success", "data": data}


def vector(*values: str) -> tuple[int, Any]:
    return success({"resultType": "vector", "result": [
        {"metric": {"pod": f"p{i}"}, "value": [1700000000.0, value]} for i, value in enumerate(values)]})


class Script:
    """The answers the server gives, in order (the last repeats); each is (status, body) or ("sleep", seconds)."""

    def __init__(self) -> None:
        self.answers: list[Any] = [vector("1")]
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []

    def next(self) -> Any:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            script.requests.append((parts.path, parse_qs(parts.query), self.headers.get("Authorization")))
            answer = script.next()
            if answer[0] == "sleep":
                time.sleep(answer[1])
                answer = vector("1")
            status, body = answer
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def client(url: str, **options: Any) -> tuple[PrometheusClient, list[float]]:
    slept: list[float] = []
    options.setdefault("timeout", 1.0)
    return PrometheusClient(url, sleep=slept.append, **options), slept


def test_an_instant_query_reads_every_series_and_keeps_nan(server) -> None:
    url, script = server
    script.answers = [vector("0.5", "NaN")]
    prometheus, _ = client(url)
    samples = prometheus.instant('rate(x{a="b"}[1m])')
    assert samples[0] == Sample({"pod": "p0"}, 0.5) and math.isnan(samples[1].value)
    assert script.requests[0][:2] == ("/api/v1/query", {"query": ['rate(x{a="b"}[1m])']})
    script.answers = [success({"resultType": "scalar", "result": [1700000000.0, "3"]})]
    assert prometheus.query("scalar(1)") == [3.0]


@pytest.mark.parametrize("transient", [(503, {"status": "error", "errorType": "unavailable", "error": "starting"}),
                                       (429, "slow down"), (502, "<html>bad gateway</html>")])
def test_transient_answers_are_retried_with_backoff(server, transient) -> None:
    url, script = server
    script.answers = [transient, transient, vector("7")]
    prometheus, slept = client(url, attempts=3, backoff=0.1)
    assert prometheus.query("up") == [7.0]
    assert slept == [0.1, 0.2] and len(script.requests) == 3


def test_a_prometheus_that_stays_down_is_unreachable_exit_4(server) -> None:
    url, script = server
    script.answers = [(500, {"status": "error", "errorType": "internal", "error": "boom"})]
    prometheus, slept = client(url, attempts=4, backoff=1.5)
    with pytest.raises(PrometheusUnreachable, match=r"HTTP 500 internal: boom \(after 4 attempts\)") as caught:
        prometheus.query("up")
    assert isinstance(caught.value, EnvironmentFailure) and caught.value.exit_code == 4
    assert slept == [1.5, 2.0, 2.0] and len(script.requests) == 4


def test_a_slow_answer_times_out_and_is_retried(server) -> None:
    url, script = server
    script.answers = [("sleep", 1.0), vector("1")]
    prometheus, slept = client(url, timeout=0.2, attempts=2)
    started = time.monotonic()
    assert prometheus.query("up") == [1.0]
    assert time.monotonic() - started < 0.9 and len(slept) == 1
    script.answers = [("sleep", 1.0)]
    with pytest.raises(PrometheusUnreachable, match="unreachable: ReadTimeoutError"):
        client(url, timeout=0.2, attempts=1)[0].query("up")


def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prometheus, slept = client(f"http://127.0.0.1:{port}", attempts=2)
    with pytest.raises(PrometheusUnreachable, match=f"Prometheus http://127.0.0.1:{port}: unreachable: "):
        prometheus.query("up")
    assert len(slept) == 1


@pytest.mark.parametrize("status, error_type", [(400, "bad_data"), (422, "execution")])
def test_a_rejected_query_is_its_own_error_and_not_retried(server, status, error_type) -> None:
    url, script = server
    script.answers = [(status, {"status": "error", "errorType": error_type, "error": "parse error at char 3"})]
    prometheus, slept = client(url)
    with pytest.raises(PrometheusQueryRejected, match=rf"rejected the query 'up{{': {error_type}: parse error") as caught:
        prometheus.query("up{")
    assert isinstance(caught.value, InputRejected) and caught.value.exit_code == 3
    assert slept == [] and len(script.requests) == 1


def test_a_url_that_is_not_prometheus_fails_at_once(server) -> None:
    url, script = server
    script.answers = [(404, "<html>not found</html>")]
    prometheus, slept = client(url)
    with pytest.raises(PrometheusUnreachable, match="answered HTTP 404 without Prometheus API JSON"):
        prometheus.query("up")
    assert slept == []


def test_a_range_query_is_not_an_instant_value(server) -> None:
    url, script = server
    matrix = success({"resultType": "matrix", "result": [{"metric": {"job": "api"}, "values": [[10, "1"], [25, "2"]]}]})
    script.answers = [matrix]
    prometheus, _ = client(url)
    assert prometheus.range("up", start=10, end=25, step=15) == [Series({"job": "api"}, ((10.0, 1.0), (25.0, 2.0)))]
    assert script.requests[0][:2] == ("/api/v1/query_range", {"query": ["up"], "start": ["10"], "end": ["25"], "step": ["15"]})
    with pytest.raises(PrometheusQueryRejected, match="returned a matrix, not an instant vector"):
        prometheus.query("up[1m]")


def test_series_names_and_metadata_lookups(server) -> None:
    url, script = server
    prometheus, _ = client(url)
    script.answers = [success([{"__name__": "up", "job": "api"}])]
    assert prometheus.series(['up{job="api"}', "http_requests_total"], start=1.5) == [{"__name__": "up", "job": "api"}]
    assert script.requests[-1][:2] == ("/api/v1/series", {"match[]": ['up{job="api"}', "http_requests_total"],
                                                            "start": ["1.5"]})
    script.answers = [success(["http_requests_total", "up"])]
    assert prometheus.label_values("__name__") == ["http_requests_total", "up"]
    assert script.requests[-1][0] == "/api/v1/label/__name__/values"
    script.answers = [success({"up": [{"type": "gauge", "help": "target up", "unit": ""}]})]
    assert prometheus.metadata("up") == {"up": [{"type": "gauge", "help": "target up", "unit": ""}]}
    assert script.requests[-1][:2] == ("/api/v1/metadata", {"metric": ["up"]})


def test_credentials_in_the_url_are_basic_auth_and_never_shown(server) -> None:
    url, script = server
    script.answers = [(503, "down")]
    prometheus, _ = client(url.replace("http://", "http://watch:s3cret@"), attempts=1)
    with pytest.raises(PrometheusUnreachable) as caught:
        prometheus.query("up")
    assert "s3cret" not in str(caught.value)
    assert script.requests[0][2] == "Basic d2F0Y2g6czNjcmV0"
