"""chaos-watch end to end: the real control plane (sandbox), the Litmus-compatible runner, the traffic simulator
and Debian's Prometheus scraping it every second. Every run is the installed command in a bash pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import yaml

from chaosgen.schemas import validate
from tests.sandbox import prometheus as prom
from tests.sandbox import watch_app
from tests.sandbox.sandbox import Sandbox
from tests.sandbox.watch_world import NAMESPACE, SCRAPE, World, open_world, restart_apiserver

pytestmark = [pytest.mark.sandbox, pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    opened = open_world(sandbox, tmp_path_factory.mktemp("watch"))
    try:
        yield opened
    finally:
        opened.close()


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
    assert result["outages"], "a deleted web pod is an outage of one replica"
    assert 0.5 < result["time_to_recovery_seconds"] < 15
    assert not any(t["breached"] for t in result["thresholds"])
    world.wait_ready()


def test_parallel_runs_two_engines_at_once(world: World) -> None:
    path = world.write_input("parallel",
                             watch_app.engine("web-parallel", "web", NAMESPACE, duration=5, interval=5, percent=34),
                             watch_app.engine("api-parallel", "api", NAMESPACE, duration=5, interval=5, percent=50))
    completed = world.run(world.command(path, "--parallel 2"))
    assert completed.returncode == 0, completed.stderr
    web, api = result_of(completed)["experiments"]
    assert (web["engine"], api["engine"]) == ("web-parallel", "api-parallel"), "results keep the input order"
    assert web["verdict"] == api["verdict"] == "passed", (web["reason"], api["reason"])
    assert abs(_epoch(web["started_at"]) - _epoch(api["started_at"])) < 3
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
    _report_shows_the_abort(world, completed.stdout, result)
    world.wait_ready()


def _report_shows_the_abort(world: World, stdout: str, result: dict) -> None:
    """Issue 12: the HTML plots the error rate crossing its threshold with the abort and recovery marks; the JUnit
    file fails the experiment with its reason."""
    assert json.loads(stdout)["run"]["id"]
    samples = [s["value"] for s in result["samples"] if s["name"] == "api-error-rate" and s["value"] is not None]
    assert min(samples) <= 0.05 < max(samples), "the recorded line crosses the threshold"
    marks = {e["type"]: e["t"] for e in result["events"]}
    assert {"apply", "injected", "breach", "stop-requested", "stopped", "recovered"} <= set(marks)
    run_json = world.tmp / "db-run.json"
    run_json.write_text(stdout)
    html = world.run(f"chaos-report --format html {run_json}")
    assert html.returncode == 0, html.stderr
    for legend in ("api-error-rate threshold (&gt; 0.05)", f"breach +{marks['breach']:g}s",
                   f"abort requested +{marks['stop-requested']:g}s", f"recovered +{marks['recovered']:g}s"):
        assert legend in html.stdout, legend
    junit = world.run(f"chaos-report --format junit {run_json}")
    failure = ET.fromstring(junit.stdout).find(".//testcase[@name='db-pod-delete']/failure")
    assert failure is not None and failure.get("type") == "aborted" and failure.get("message") == result["reason"]


def test_dry_run_applies_nothing(world: World) -> None:
    path = world.write_input("dry", watch_app.engine("web-dry", "web", NAMESPACE))
    completed = world.run(world.command(path, "--dry-run"))
    assert completed.returncode == 0, completed.stderr
    document = result_of(completed)
    assert document["dry_run"] is True and document["journal"] is None
    result = document["experiments"][0]
    assert result["verdict"] == "skipped" and result["reason"].startswith("dry run")
    assert [c["check"] for c in result["preflight"] if c["ok"]][-1] == "dry-run-apply"
    assert world.sandbox.run_kubectl("get", "chaosengine", "web-dry", "-n", NAMESPACE, check=False).returncode != 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_stops_the_engine(world: World, signum: signal.Signals) -> None:
    name = f"web-{signum.name.lower()}"
    path = world.write_input(name, watch_app.engine(name, "web", NAMESPACE, duration=60, interval=20, percent=34))
    process = subprocess.Popen(["bash", "-c", "exec " + world.command(path).split(" | ", 1)[1] + f" -f {path}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    world.wait_engine(name, "initialized")
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == f"chaos-watch: error: interrupted by {signum.name}"
    result = json.loads(stdout)["experiments"][0]
    assert result["aborted_by"] == "signal" and result["abort"]["confirmed"] is True
    assert world.engine(name)["status"]["engineStatus"] == "stopped"
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
    # Issue 14.4: recovery from the pods alone, without waiting for metrics that cannot come.
    recovered = [e["message"] for e in result["events"] if e["type"] in ("recovered", "not-recovered")]
    assert result["recovered"] is True and recovered[0].endswith("thresholds and steady state not checked: metrics were lost")
    assert result["time_to_recovery_seconds"] is not None
    world.wait_ready()


def test_an_engine_stopped_from_outside_is_aborted_naming_kubectl(world: World) -> None:
    """Issue 14.1: someone patches engineState stop from another shell; the run must not pass."""
    name = "web-outside-stop"
    path = world.write_input(name, watch_app.engine(name, "web", NAMESPACE, duration=60, interval=20, percent=34))
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", world.command(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    world.wait_engine(name, "initialized")
    time.sleep(2)
    world.sandbox.run_kubectl("patch", "chaosengine", name, "-n", NAMESPACE, "--type", "merge",
                              "-p", '{"spec":{"engineState":"stop"}}')
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 5, stderr
    result = json.loads(stdout)["experiments"][0]
    assert result["verdict"] == "aborted" and result["aborted_by"] == "external"
    assert result["abort"]["manager"] == "kubectl-patch"
    assert result["chaos_result"]["verdict"] == "Stopped"
    assert f"chaos-watch: {name}: aborted: the engine was stopped by kubectl-patch, not by chaos-watch" in stderr.splitlines()
    world.wait_ready()


def test_cleanup_from_another_shell_leaves_a_live_run_alone(world: World) -> None:
    """Issue 14.2: `chaos-watch cleanup` while a run is going skips it, and the run ends on its own terms."""
    name = "web-live-cleanup"
    state = world.tmp / "live-state"
    path = world.write_input(name, watch_app.engine(name, "web", NAMESPACE, duration=8, interval=4, percent=34))
    command = world.command(path).replace(str(world.tmp / "state"), str(state))
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    world.wait_engine(name, "initialized")
    cleanup = world.run(f"chaos-watch cleanup --state-dir {state} --kubeconfig {world.sandbox.admin_kubeconfig}")
    assert cleanup.returncode == 0, cleanup.stderr
    assert "is still running; --force stops it anyway" in cleanup.stderr
    assert world.engine(name)["status"]["engineStatus"] == "initialized"
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["experiments"][0]["verdict"] == "passed"
    world.wait_ready()


def test_an_unreachable_prometheus_says_why_on_stderr_without_a_terminal(world: World) -> None:
    """Issue 14.3: exit 4, and the reason on stderr (not only inside the JSON), stderr being a pipe."""
    name = "web-no-prometheus"
    path = world.write_input(name, watch_app.engine(name, "web", NAMESPACE))
    completed = world.run(world.command(path, "-v", prometheus_url="http://127.0.0.1:1"))
    assert completed.returncode == 4
    assert result_of(completed)["experiments"][0]["verdict"] == "error"
    lines = [line for line in completed.stderr.splitlines() if line.startswith(f"chaos-watch: {name}: ")]
    assert len(lines) == 1 and lines[0].startswith(f"chaos-watch: {name}: error: preflight prometheus failed: "), completed.stderr
    assert "\r" not in completed.stderr and "\033" not in completed.stderr


def test_apiserver_restart_mid_run_does_not_crash_chaos_watch(world: World) -> None:
    path = world.write_input("apiserver", watch_app.engine("web-apiserver", "web", NAMESPACE, duration=12, interval=4, percent=34))
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", world.command(path, "--events")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    world.wait_engine("web-apiserver", "initialized")
    time.sleep(1)
    restart_apiserver(world.sandbox)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode in (0, 5), stderr
    result = json.loads(stdout)["experiments"][0]
    assert result["verdict"] in ("passed", "failed"), result["reason"]
    assert result["chaos_result"]["phase"] == "Completed"
    assert world.wait_engine("web-apiserver", "completed")
    world.wait_ready()


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
