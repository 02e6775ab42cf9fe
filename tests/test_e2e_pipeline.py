"""The whole product end to end, as a user runs it: the four stages in one bash pipe against the 3-tier demo app
(k8s/3tier-app.yaml) on the sandbox, with the Litmus CRDs, the sandbox's Litmus-compatible runner, the traffic
simulator playing the app from its live Topology and Debian's Prometheus scraping it every second.

    chaos-inventory -n shop | chaos-suggest -n 3 | jq ... | chaos-litmus ... | chaos-watch ...

The jq step is the user shortening the plan for a quick run: 10 s of chaos, error-rate thresholds that abort at
once and a 15 s rate window instead of the planner's 1 m (which would keep a threshold breached for a minute after
the outage and so stretch every recovery wait).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaosgen.schemas import validate
from conftest import run
from tests.sandbox import prometheus as prom
from tests.sandbox.demo_live import NAMESPACE, open_shop
from tests.sandbox.litmus_runner import SUPPORTED
from tests.sandbox.sandbox import Sandbox
from tests.sandbox.watch_world import SCRAPE, wait_rolled_out

pytestmark = [pytest.mark.sandbox, pytest.mark.prometheus, pytest.mark.slow]

SHORTEN = " | ".join([
    '.experiments[].parameters.duration = "10s"',
    '(.experiments[].parameters | select(has("interval")) | .interval) = "2s"',
    '(.experiments[].abort_thresholds[] | select(.name | endswith("-error-rate")) | .for) = "0s"',
    # The policy holds every `for` within the (now 10 s) chaos plus one probe interval.
    '(.experiments[].abort_thresholds[] | select(.name | endswith("-error-rate") | not) | .for) = "10s"',
    '(.experiments[] | .abort_thresholds[], .steady_state[] | select(has("query")) | .query) |= gsub("\\\\[1m\\\\]"; "[15s]")',
])
INACTIVE = ("completed", "stopped")


@dataclass
class Shop:
    sandbox: Sandbox
    prometheus: prom.Prometheus
    tmp: Path

    def pipeline(self, suggest: str, edit: str) -> subprocess.CompletedProcess[str]:
        """inventory | suggest | jq edit | litmus | watch, the RunResult on stdout (bytes decoded)."""
        url = self.prometheus.url
        command = (f"chaos-inventory -n {NAMESPACE} | {suggest} | jq {shlex.quote(edit)}"
                   f" | chaos-litmus --prometheus-endpoint {url} --with-experiments --with-rbac"
                   f" | chaos-watch --prometheus-url {url} --interval 1s --recovery-timeout 30s"
                   f" --state-dir {self.tmp / 'state'} --events")
        return self.shell(command)

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        result = run(command, env=self.sandbox.env(), timeout=150)
        return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())

    def wait_ready(self) -> None:
        """Every replica back and no error in the shortened rate window: the steady state the next run's preflight
        checks (chaos-watch skips an experiment whose steady state does not hold, rightly)."""
        wait_rolled_out(self.sandbox, [NAMESPACE])
        errors = f'sum(rate(http_requests_total{{namespace="{NAMESPACE}",code=~"5.."}}[15s])) or vector(0)'
        deadline = time.monotonic() + 30
        while float(self.prometheus.query(errors)[0]["value"][1]) > 0 and time.monotonic() < deadline:
            time.sleep(SCRAPE)

    def engines(self) -> list[dict]:
        listing = self.sandbox.run_kubectl("get", "chaosengines", "-n", NAMESPACE, "-o", "json").stdout
        return json.loads(listing)["items"]


@pytest.fixture(scope="module")
def shop(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The demo app running and Ready, played by the simulator from its live Topology; metrics flowing."""
    services = open_shop(sandbox)
    try:
        yield Shop(sandbox, services.prometheus, tmp_path_factory.mktemp("pipeline"))
    finally:
        services.close()
        # The namespace stays (test_live_inventory uses the same app); what the pipeline created goes.
        sandbox.run_kubectl("delete", "chaosengines,chaosexperiments,serviceaccounts,roles,rolebindings", "-n",
                            NAMESPACE, "-l", "app.kubernetes.io/managed-by=chaosgen", "--wait=false", check=False)
        sandbox.run_kubectl("delete", "chaosresults", "--all", "-n", NAMESPACE, "--wait=false", check=False)
        sandbox.run_kubectl("delete", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/managed-by=chaosgen",
                            check=False)


@pytest.fixture(scope="module")
def top3(shop: Shop) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The planner's top 3 for the app, run once: (the completed pipeline, its RunResult)."""
    completed = shop.pipeline("chaos-suggest -n 3", SHORTEN)
    document = json.loads(completed.stdout)
    validate(document, "RunResult", "stdout")
    (shop.tmp / "top3.json").write_text(completed.stdout)
    shop.wait_ready()
    return completed, document


def experiment(document: dict, target: str, fault: str) -> dict:
    return next(e for e in document["experiments"] if e["target"] == target and e["fault"] == fault)


def test_top3_each_experiment_has_a_verdict_with_a_reason(top3: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    completed, document = top3
    assert completed.returncode == 5, completed.stderr
    assert len(document["experiments"]) == document["summary"]["total"] == 3
    for result in document["experiments"]:
        assert result["verdict"] in ("passed", "failed", "aborted", "skipped", "error"), result["id"]
        assert result["reason"].strip(), result["id"]
    assert not [line for line in completed.stderr.splitlines() if "Traceback" in line]


def test_top3_postgres_pod_delete_is_aborted_by_the_callers_error_rate(
    top3: tuple[subprocess.CompletedProcess[str], dict],
) -> None:
    _, document = top3
    result = experiment(document, f"{NAMESPACE}/StatefulSet/postgres", "pod-delete")
    assert result["verdict"] == "aborted" and result["aborted_by"] == "threshold", result["reason"]
    assert result["abort"]["threshold"] == "api-error-rate" and result["abort"]["confirmed"] is True
    assert "api-error-rate" in result["reason"]
    assert result["chaos_result"]["verdict"] == "Stopped"
    assert result["recovered"] is True
    assert result["outages"] and 0 < result["time_to_recovery_seconds"] < result["expected_recovery_seconds"]


def test_top3_faults_the_sandbox_cannot_inject_are_errors_not_passes(
    top3: tuple[subprocess.CompletedProcess[str], dict],
) -> None:
    _, document = top3
    unsupported = [e for e in document["experiments"] if e["fault"] not in SUPPORTED]
    assert unsupported, "the planner's top 3 for the demo app include a container-runtime fault (pod-memory-hog)"
    for result in unsupported:
        assert result["verdict"] in ("error", "skipped"), result["reason"]
        assert "not supported by the sandbox" in result["reason"], result["reason"]


def test_top3_leaves_no_active_engine(shop: Shop, top3: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    engines = {e["metadata"]["name"]: (e.get("status") or {}).get("engineStatus") for e in shop.engines()}
    assert set(engines) >= {e["engine"] for e in top3[1]["experiments"]}, [e["reason"] for e in top3[1]["experiments"]]
    assert all(status in INACTIVE for status in engines.values()), engines


def test_top3_report_names_the_aborted_experiment_and_its_root_cause(
    shop: Shop, top3: tuple[subprocess.CompletedProcess[str], dict],
) -> None:
    report = shop.shell(f"chaos-report {shop.tmp / 'top3.json'}")
    assert report.returncode == 0, report.stderr
    aborted = experiment(top3[1], f"{NAMESPACE}/StatefulSet/postgres", "pod-delete")["id"]
    assert f"## {aborted}: aborted" in report.stdout
    root_causes = report.stdout.split("## Root-cause analysis", 1)[1]
    cause = next(line for line in root_causes.splitlines() if line.startswith(f"- `{aborted}`"))
    assert "postgres" in cause and "api-error-rate" in cause


def test_pod_delete_on_a_3_replica_deployment_passes(shop: Shop) -> None:
    shop.sandbox.run_kubectl("scale", "deployment/api", "-n", NAMESPACE, "--replicas=3")
    try:
        shop.sandbox.run_kubectl("rollout", "status", "deployment/api", "-n", NAMESPACE, "--timeout=60s")
        shop.wait_ready()
        pick = ('.experiments |= map(select(.fault.type == "pod-delete" and .target.name == "api"))'
                f' | {SHORTEN} | .experiments[].parameters.interval = "5s"')
        completed = shop.pipeline("chaos-suggest -n 10", pick)
        assert completed.returncode == 0, completed.stderr
        document = json.loads(completed.stdout)
        validate(document, "RunResult", "stdout")
        [result] = document["experiments"]
        assert result["target"] == f"{NAMESPACE}/Deployment/api"
        assert result["verdict"] == "passed", result["reason"]
        assert result["chaos_result"]["verdict"] == "Pass"
        assert not any(t["breached"] for t in result["thresholds"])
        assert result["outages"] and 0 < result["time_to_recovery_seconds"] < result["expected_recovery_seconds"]
        assert all((e.get("status") or {}).get("engineStatus") in INACTIVE for e in shop.engines())
    finally:
        shop.sandbox.run_kubectl("scale", "deployment/api", "-n", NAMESPACE, "--replicas=2")
        shop.sandbox.run_kubectl("rollout", "status", "deployment/api", "-n", NAMESPACE, "--timeout=60s")
