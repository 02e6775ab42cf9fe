"""chaos-watch end to end: the real control plane (sandbox), the Litmus-compatible runner, the traffic simulator
and Debian's Prometheus scraping it every second. Every run is the installed command in a bash pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from chaosgen.schemas import validate
from tests.sandbox import prometheus as prom
from tests.sandbox import watch_app
from tests.sandbox.litmus_runner import LitmusRunner
from tests.sandbox.sandbox import Sandbox
from tests.sandbox.traffic_sim import TrafficSim

pytestmark = [pytest.mark.sandbox, pytest.mark.prometheus, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LITMUS_CRDS = REPO.parent / "shared" / "fixtures" / "crds" / "litmus-crds.yaml"
NAMESPACE = "watch-e2e"
SCRAPE = prom.SCRAPE_INTERVAL_SECONDS


@dataclass
class World:
    sandbox: Sandbox
    prometheus: prom.Prometheus
    sim: TrafficSim
    runner: LitmusRunner
    tmp: Path

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.sandbox.run_kubectl(*args, "-o", "json").stdout)

    def engine(self, name: str) -> dict:
        return self.kubectl_json("get", "chaosengine", name, "-n", NAMESPACE)

    def write_input(self, name: str, *engines: dict) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all([watch_app.chaos_experiment(namespace=NAMESPACE), *engines], sort_keys=False))
        return path

    def command(self, input_path: Path, *flags: str, prometheus_url: str | None = None) -> str:
        url = prometheus_url or self.prometheus.url
        return (f"cat {input_path} | chaos-watch --prometheus-url {url} --interval 500ms --recovery-timeout 40s "
                f"--state-dir {self.tmp / 'state'} --kubeconfig {self.sandbox.admin_kubeconfig} {' '.join(flags)}")

    def run(self, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=timeout)

    def wait_ready(self) -> None:
        for name, (kind, _, _) in watch_app.WORKLOADS.items():
            self.sandbox.run_kubectl("rollout", "status", f"{kind.lower()}/{name}", "-n", NAMESPACE, "--timeout=90s")

    def wait_engine(self, name: str, status: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sandbox.run_kubectl("get", "chaosengine", name, "-n", NAMESPACE, "-o", "json", check=False)
            if found.returncode == 0 and (json.loads(found.stdout).get("status") or {}).get("engineStatus") == status:
                return json.loads(found.stdout)
            time.sleep(0.2)
        raise AssertionError(f"engine {name} not {status} after {timeout}s")


@pytest.fixture(scope="module")
def world(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox.apply(LITMUS_CRDS, extra=("--server-side",))
    sandbox.run_kubectl("wait", "--for=condition=Established", "crd/chaosengines.litmuschaos.io",
                        "crd/chaosresults.litmuschaos.io", "crd/chaosexperiments.litmuschaos.io", "--timeout=30s")
    sandbox.apply("\n---\n".join(json.dumps(o) for o in watch_app.manifests(NAMESPACE, ready_delay=1.0)))
    sim = TrafficSim(str(sandbox.admin_kubeconfig), watch_app.topology(NAMESPACE)).start()
    prometheus = prom.start([sim.address])
    runner = LitmusRunner(str(sandbox.admin_kubeconfig), prometheus.url).start()
    world = World(sandbox, prometheus, sim, runner, tmp_path_factory.mktemp("watch"))
    try:
        world.wait_ready()
        prometheus.wait_for_samples(f'http_requests_total{{namespace="{NAMESPACE}",code="200"}}')
        time.sleep(3 * SCRAPE)  # a few scrapes so that rate() has points
        yield world
    finally:
        runner.close()
        prometheus.stop()
        sim.close()
        sandbox.run_kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def result_of(completed: subprocess.CompletedProcess[str]) -> dict:
    document = json.loads(completed.stdout)
    validate(document, "RunResult", "stdout")
    return document


def test_pod_delete_on_replicated_deployment_passes(world: World) -> None:
    path = world.write_input("web", watch_app.engine("web-pod-delete", "web", NAMESPACE, duration=6, interval=3, percent=34))
    completed = world.run(world.command(path))
    assert completed.returncode == 0, completed.stderr
    result = result_of(completed)["experiments"][0]
    assert result["verdict"] == "passed", result["reason"]
    assert result["chaos_result"]["phase"] == "Completed" and result["chaos_result"]["verdict"] == "Pass"
    assert result["recovered"] is True
    print(json.dumps({k: result[k] for k in ("outages", "events", "time_to_recovery_seconds")}))
    assert result["outages"], "a deleted web pod is an outage of one replica"
    assert 0.5 < result["time_to_recovery_seconds"] < 15
    assert not any(t["breached"] for t in result["thresholds"])
    world.wait_ready()


def test_pod_delete_on_single_replica_database_is_aborted_on_callers_error_rate(world: World) -> None:
    policy = world.tmp / "policy.yaml"
    policy.write_text(yaml.safe_dump(watch_app.permissive_policy()))
    engine = watch_app.engine("db-pod-delete", "db", NAMESPACE, duration=30, interval=10, percent=100, total_loss=True)
    path = world.write_input("db", engine)
    completed = world.run(world.command(path, f"--policy {policy}", "--events"))
    assert completed.returncode == 5, completed.stderr
    document = result_of(completed)
    result = document["experiments"][0]
    assert result["verdict"] == "aborted" and result["aborted_by"] == "threshold"
    assert "api-error-rate" in result["reason"]
    abort = result["abort"]
    assert abort["confirmed"] is True
    assert result["chaos_result"]["verdict"] == "Stopped"
    # Breach to engineState stop, measured against Prometheus's own evaluation of the threshold query.
    started = _epoch(result["started_at"])
    query = json.loads(engine["metadata"]["annotations"]["chaosgen.dev/abort-thresholds"])[0]["query"]
    points = world.prometheus.query_range(query, started, started + abort["requested_at"], 0.1)
    breach = next(t for t, v in points if v > 0.05)
    latency = started + abort["requested_at"] - breach
    print(f"abort latency {latency:.3f}s (breach visible in Prometheus to engineState stop)")
    assert latency <= 2 * SCRAPE
    events = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    assert {"breach", "stop-requested", "stopped"} <= {e["type"] for e in events}
    world.wait_ready()


def test_sigint_mid_run_stops_the_engine(world: World) -> None:
    path = world.write_input("sigint", watch_app.engine("web-sigint", "web", NAMESPACE, duration=60, interval=20, percent=34))
    process = subprocess.Popen(["bash", "-c", "exec " + world.command(path).split(" | ", 1)[1] + f" -f {path}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    world.wait_engine("web-sigint", "initialized")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    result = json.loads(stdout)["experiments"][0]
    assert result["aborted_by"] == "signal" and result["abort"]["confirmed"] is True
    assert world.engine("web-sigint")["status"]["engineStatus"] == "stopped"
    world.wait_ready()


def test_kill_9_then_cleanup_leaves_no_active_engine(world: World) -> None:
    state = world.tmp / "killed-state"
    path = world.write_input("kill9", watch_app.engine("web-kill9", "web", NAMESPACE, duration=60, interval=20, percent=34))
    command = world.command(path).split(" | ", 1)[1].replace(str(world.tmp / "state"), str(state))
    process = subprocess.Popen(["bash", "-c", f"exec {command} -f {path}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    world.wait_engine("web-kill9", "initialized")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert world.engine("web-kill9")["status"]["engineStatus"] == "initialized", "still running after kill -9"
    cleanup = world.run(f"chaos-watch cleanup --state-dir {state} --kubeconfig {world.sandbox.admin_kubeconfig}")
    assert cleanup.returncode == 0, cleanup.stderr
    assert cleanup.stdout == ""
    assert "stopped ChaosEngine watch-e2e/web-kill9" in cleanup.stderr
    assert world.engine("web-kill9")["status"]["engineStatus"] == "stopped"
    again = world.run(f"chaos-watch cleanup --state-dir {state} --kubeconfig {world.sandbox.admin_kubeconfig}")
    assert again.returncode == 0 and "no unfinished run" in again.stderr
    world.wait_ready()


def test_prometheus_killed_mid_run_aborts(world: World) -> None:
    doomed = prom.start([world.sim.address])
    try:
        doomed.wait_for_samples(f'http_requests_total{{namespace="{NAMESPACE}"}}')
        time.sleep(3 * SCRAPE)
        path = world.write_input("promkill", watch_app.engine("web-promkill", "web", NAMESPACE, duration=60, interval=20, percent=34))
        process = subprocess.Popen(["bash", "-o", "pipefail", "-c", world.command(path, prometheus_url=doomed.url)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        world.wait_engine("web-promkill", "initialized")
        doomed.kill()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        doomed.stop()
    assert process.returncode == 5, stderr
    result = json.loads(stdout)["experiments"][0]
    assert result["aborted_by"] == "metrics-loss" and result["abort"]["confirmed"] is True
    assert "unreachable" in result["reason"]
    world.wait_ready()


def test_apiserver_paused_mid_run_does_not_crash_chaos_watch(world: World) -> None:
    """The sandbox cannot restart its apiserver in place (its flags live in sandbox._start), so the apiserver is
    frozen with SIGSTOP for a few seconds instead: every connection hangs and the watches break."""
    path = world.write_input("apiserver", watch_app.engine("web-apiserver", "web", NAMESPACE, duration=12, interval=4, percent=34))
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", world.command(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    world.wait_engine("web-apiserver", "initialized")
    apiserver = world.sandbox.pids["kube-apiserver"]
    os.kill(apiserver, signal.SIGSTOP)
    try:
        time.sleep(4)
    finally:
        os.kill(apiserver, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode in (0, 5), stderr
    result = json.loads(stdout)["experiments"][0]
    assert result["verdict"] in ("passed", "failed"), result["reason"]
    assert world.wait_engine("web-apiserver", "completed")
    world.wait_ready()


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
