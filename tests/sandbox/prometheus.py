"""Debian's Prometheus server for the tests: started on a free 127.0.0.1 port with a temporary config that scrapes
given targets every second, and stopped by the PID it was started with (never a systemd service).

CI installs it with `apt-get install prometheus` (tests/install-deps.sh); the package's own service is not used.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.sandbox.sandbox import free_port, stop_process

SCRAPE_INTERVAL_SECONDS = 1.0
START_TIMEOUT = 30.0


class PrometheusError(RuntimeError):
    """Prometheus is not installed or did not become ready; the message says which."""


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        return requests.get(f"{self.url}/api/v1/query", params=params, timeout=5).json()["data"]["result"]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """(time, value) points of a query that returns one series, as Prometheus evaluates it at each step."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        result = requests.get(f"{self.url}/api/v1/query_range", params=params, timeout=10).json()["data"]["result"]
        return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []

    def wait_for_samples(self, promql: str, timeout: float = 30.0) -> None:
        """Until the query returns a value: the first scrapes have landed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.query(promql):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise PrometheusError(f"no samples for {promql} after {timeout:g}s")

    def kill(self) -> None:
        """SIGKILL, as when Prometheus dies mid-run (the metrics-loss test)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process, grace=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise PrometheusError("prometheus is not installed: apt-get install prometheus (tests/install-deps.sh)")
    return found


def start(targets: list[str], scrape_interval: float = SCRAPE_INTERVAL_SECONDS, backfill: Path | None = None) -> Prometheus:
    """A Prometheus scraping `targets` (host:port of /metrics endpoints), ready to answer queries; backfill is an
    OpenMetrics file written into its TSDB first with promtool (history without waiting for scrapes)."""
    data_dir = Path(tempfile.mkdtemp(prefix="chaosgen-prometheus-"))
    if backfill is not None:
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(backfill), str(data_dir / "tsdb")],
                       check=True, capture_output=True)
    config = data_dir / "prometheus.yml"
    interval = f"{int(scrape_interval * 1000)}ms"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: sandbox\n"
        f"    scrape_timeout: {interval}\n"
        f"    static_configs:\n      - targets: [{', '.join(repr(t) for t in targets)}]\n"
    )
    port = free_port()
    log = open(data_dir / "prometheus.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [binary(), f"--config.file={config}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, data_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (data_dir / "prometheus.log").read_text(errors="replace")[-2000:]
            shutil.rmtree(data_dir, ignore_errors=True)
            raise PrometheusError(f"prometheus exited with {process.returncode}:\n{text}")
        try:
            if requests.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                return prometheus
        except requests.RequestException:
            pass
        time.sleep(0.1)
    prometheus.stop()
    raise PrometheusError(f"prometheus not ready after {START_TIMEOUT:g}s")
