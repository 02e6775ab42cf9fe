"""chaos-inventory -f app.yaml --prometheus-url against Debian's real Prometheus, its history backfilled with
promtool (tests/sandbox/mesh_history.py): for each mesh family, the edge only code shows is found, the configured
edge nobody calls falls below 0.5 and the noise (scrapes, unknown callers, self-loops) is no edge."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_inventory_core import deployment, env, service

from tests.sandbox import prometheus as prom
from tests.sandbox.mesh_history import Call, openmetrics

pytestmark = pytest.mark.skipif(not (shutil.which("promtool") or Path("/usr/bin/promtool").exists()),
                                reason="needs Debian's prometheus package (tests/install-deps.sh)")

APP = [
    deployment("web", env=env(API_URL="http://api:8080")),
    deployment("api", env=env(CACHE_URL="redis://cache:6379")),
    deployment("worker"),
    deployment("cache"),
    service("web"), service("api", port=8080), service("worker"), service("cache", port=6379),
]
CALLS = [Call(("app", "web"), ("app", "api"), 1200, errors=12), Call(("app", "api"), ("app", "worker"), 300),
         # the cache answers someone, so telemetry covers it: api's silence towards it is news
         Call(("app", "worker"), ("app", "cache"), 80)]


def inventory(tmp_path: Path, family: str, *flags: str) -> tuple[subprocess.CompletedProcess[str], str]:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all(APP))
    history = tmp_path / "history.om"
    history.write_text(openmetrics(CALLS, family, time.time()))
    server = prom.start([], backfill=history)
    try:
        completed = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"chaos-inventory -f {manifest} -n app --prometheus-url {server.url} {' '.join(flags)}"],
            capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    return completed, completed.stdout


@pytest.mark.parametrize("family", ["istio", "linkerd", "servicegraph"])
def test_traffic_finds_code_only_edges_demotes_idle_ones_and_ignores_noise(tmp_path: Path, family: str) -> None:
    completed, stdout = inventory(tmp_path, family)
    assert completed.returncode == 0, completed.stderr
    topology = json.loads(stdout)
    edges = {(d["from"].rpartition("/")[2], d["to"].rpartition("/")[2]): d for d in topology["dependencies"]}
    assert set(edges) == {("web", "api"), ("api", "worker"), ("worker", "cache"), ("api", "cache")}
    web_api = edges[("web", "api")]["evidence"][-1]
    assert web_api["source"] == family and web_api["requests"] > 1000 and 0.005 < web_api["error_ratio"] < 0.02
    assert [e["source"] for e in edges[("api", "worker")]["evidence"]] == [family]
    assert edges[("api", "cache")]["confidence"] < 0.5
    assert edges[("api", "cache")]["evidence"][-1]["summary"] == "configured, no traffic in 1h"
    assert topology["telemetry"]["families"].keys() == {family}
    assert topology["telemetry"]["queries"] <= 4
    assert all(w["telemetry"] == [family] for w in topology["workloads"])


def test_dot_output_marks_observed_and_idle_edges(tmp_path: Path) -> None:
    completed, stdout = inventory(tmp_path, "istio", "--format", "dot")
    assert completed.returncode == 0, completed.stderr
    assert "penwidth=2" in stdout and "(no traffic)" in stdout


def test_an_unreachable_prometheus_is_an_environment_failure(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all(APP))
    completed = subprocess.run(["bash", "-c", f"chaos-inventory -f {manifest} --prometheus-url http://127.0.0.1:9"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4 and completed.stdout == ""
    assert len(completed.stderr.strip().splitlines()) == 1 and "Traceback" not in completed.stderr
