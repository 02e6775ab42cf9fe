"""The world chaos-watch's end-to-end tests and benchmarks/watch_abort.py run in: the sandbox with the Litmus CRDs,
the test app (watch_app.py), the traffic simulator, Debian's Prometheus scraping it every second and the
Litmus-compatible runner. open_world() sets it all up; World.close() takes it down again (not the sandbox).

start_services() is the one place that starts simulator, Prometheus and runner for an app; the 3-tier demo world
(demo_live.py, `make demo-live`) and tests/test_e2e_pipeline.py use it too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tests.sandbox import prometheus as prom
from tests.sandbox import watch_app
from tests.sandbox.litmus_runner import LitmusRunner
from tests.sandbox.sandbox import Sandbox
from tests.sandbox.traffic_sim import TrafficSim

REPO = Path(__file__).resolve().parents[2]
LITMUS_CRDS = REPO / "tests" / "fixtures" / "crds" / "litmus-crds.yaml"
NAMESPACE = "watch-e2e"
SCRAPE = prom.SCRAPE_INTERVAL_SECONDS


@dataclass
class Services:
    """What plays and runs an app in the sandbox: the traffic simulator (app metrics and kube-state-metrics gauges),
    Prometheus scraping it every second, and the Litmus-compatible runner evaluating promProbes against it."""

    sim: TrafficSim
    prometheus: prom.Prometheus
    runner: LitmusRunner

    def close(self) -> None:
        self.runner.close()
        self.prometheus.stop()
        self.sim.close()


def start_services(kubeconfig: Path, topology: dict, *wait_for: str) -> Services:
    """Start simulator, Prometheus and runner for the app of `topology`; return once every `wait_for` query has
    samples and a few more scrapes have landed (so that rate() has points). Nothing is left running on failure."""
    sim = TrafficSim(str(kubeconfig), topology).start()
    try:
        prometheus = prom.start([sim.address])
    except BaseException:
        sim.close()
        raise
    services = Services(sim, prometheus, LitmusRunner(str(kubeconfig), prometheus.url).start())
    try:
        for query in wait_for:
            prometheus.wait_for_samples(query)
        time.sleep(3 * SCRAPE)
    except BaseException:
        services.close()
        raise
    return services


@dataclass
class World:
    sandbox: Sandbox
    services: Services
    tmp: Path

    @property
    def prometheus(self) -> prom.Prometheus:
        return self.services.prometheus

    @property
    def sim(self) -> TrafficSim:
        return self.services.sim

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

    def close(self) -> None:
        self.services.close()
        self.sandbox.run_kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)

    def wait_engine(self, name: str, status: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sandbox.run_kubectl("get", "chaosengine", name, "-n", NAMESPACE, "-o", "json", check=False)
            if found.returncode == 0 and (json.loads(found.stdout).get("status") or {}).get("engineStatus") == status:
                return json.loads(found.stdout)
            time.sleep(0.2)
        raise AssertionError(f"engine {name} not {status} after {timeout}s")


def restart_apiserver(sandbox: Sandbox, down_seconds: float = 2.0) -> None:
    """Stop the sandbox's kube-apiserver (SIGTERM, by its PID) and start it again with the very same command line,
    recording the new PID so that sandbox.stop() still stops exactly what runs. Returns once /readyz answers."""
    pid = sandbox.pids["kube-apiserver"]
    argv = [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    time.sleep(down_seconds)
    with open(sandbox.data_dir / "logs" / "kube-apiserver.log", "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=sandbox.data_dir)
    sandbox.pids["kube-apiserver"] = process.pid
    http = sandbox.session()
    while time.monotonic() < deadline + 30:
        try:
            if http.get(f"{sandbox.server}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("kube-apiserver did not come back within 30s of its restart")


def apply_apps(sandbox: Sandbox, namespaces: list[str], *manifests: Path) -> None:
    """Apply demo apps (k8s/3tier-app.yaml, Sock Shop) and return once every Deployment and StatefulSet of the
    namespaces is rolled out. The sandbox has no storage provisioner, so a PersistentVolume is made for the one
    claim of the 3-tier app's postgres (applying it again is a no-op, whoever applied it first)."""
    sandbox.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "sandbox-pv-1"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/tmp/sandbox-pv-1"}},
    }))
    sandbox.apply(*manifests)
    wait_rolled_out(sandbox, namespaces)


def wait_rolled_out(sandbox: Sandbox, namespaces: list[str]) -> None:
    """Until every Deployment and StatefulSet of the namespaces has all its replicas updated and ready."""
    for namespace in namespaces:
        sandbox.run_kubectl("wait", "--for=condition=Available", "deployment", "--all", "-n", namespace,
                            "--timeout=90s")
        for statefulset in sandbox.run_kubectl("get", "statefulsets", "-n", namespace, "-o", "name").stdout.split():
            sandbox.run_kubectl("rollout", "status", statefulset, "-n", namespace, "--timeout=90s")


def install_litmus_crds(sandbox: Sandbox) -> None:
    """Apply the Litmus CRDs (server-side: they are large) and return once they are Established."""
    sandbox.apply(LITMUS_CRDS, extra=("--server-side",))
    crds = ("crd/chaosengines.litmuschaos.io", "crd/chaosresults.litmuschaos.io", "crd/chaosexperiments.litmuschaos.io")
    deadline = time.monotonic() + 30
    # kubectl wait fails outright while a new CRD has no status.conditions yet, so it is retried until Established.
    while sandbox.run_kubectl("wait", "--for=condition=Established", *crds, "--timeout=10s", check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError("the Litmus CRDs did not become Established within 30s")
        time.sleep(0.2)


def open_world(sandbox: Sandbox, tmp: Path) -> World:
    """Install the CRDs and the app, start simulator, Prometheus and runner; return once metrics flow."""
    install_litmus_crds(sandbox)
    sandbox.apply("\n---\n".join(json.dumps(o) for o in watch_app.manifests(NAMESPACE, ready_delay=1.0)))
    services = start_services(sandbox.admin_kubeconfig, watch_app.topology(NAMESPACE),
                              f'http_requests_total{{namespace="{NAMESPACE}",code="200"}}')
    world = World(sandbox, services, tmp)
    try:
        world.wait_ready()
    except BaseException:
        world.close()
        raise
    return world
