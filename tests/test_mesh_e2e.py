"""The pipeline on an Istio-only namespace of the sandbox: no http_requests_total anywhere, only what Istio's
proxies would export, played by the traffic simulator from the live Topology with one call no manifest shows
(api -> db, found in code only) and one configured address never called (web's DB_HOST).

- chaos-inventory --prometheus-url finds the code-only edge and demotes the idle one;
- the whole pipe (inventory | suggest | litmus | watch) aborts the db pod-delete through api's
  istio_requests_total threshold, a real breach;
- chaos-watch refuses the old convention's query on that namespace: it could never fire.
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
from test_e2e_pipeline import SHORTEN

from chaos_suggest import promql
from conftest import run
from tests.sandbox import prometheus as prom
from tests.sandbox import watch_app
from tests.sandbox.litmus_runner import LitmusRunner
from tests.sandbox.sandbox import Sandbox
from tests.sandbox.traffic_sim import TrafficSim
from tests.sandbox.watch_world import SCRAPE, install_litmus_crds, wait_rolled_out

pytestmark = [pytest.mark.sandbox, pytest.mark.prometheus, pytest.mark.slow]

NAMESPACE = "mesh-istio"
WEB, API, DB = (f"{NAMESPACE}/{kind}/{name}" for name, (kind, _, _) in watch_app.WORKLOADS.items())
# The e2e pipeline's shortening, and the replica threshold's wait within the shortened chaos.


def manifests() -> list[dict]:
    """watch_app's web -> api -> db, configured as the code is not: web names api and db (DB_HOST, never used),
    api names nothing (it finds db at run time). db keeps its data on a PersistentVolume (made here, bound to its
    claim), so that the planner may delete its pod."""
    objects = watch_app.manifests(NAMESPACE, ready_delay=1.0)
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                                    "resources": {"requests": {"storage": "1Gi"}}}}
    objects.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"sandbox-pv-{NAMESPACE}"},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                             "claimRef": {"namespace": NAMESPACE, "name": "data-db-0"},
                             "hostPath": {"path": f"/tmp/sandbox-pv-{NAMESPACE}"}}})
    for obj in objects:
        if obj["kind"] == "StatefulSet":
            obj["spec"]["volumeClaimTemplates"] = [claim]
            obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "web":
            obj["spec"]["template"]["spec"]["containers"][0]["env"] = [
                {"name": "API_URL", "value": "http://api:80"}, {"name": "DB_HOST", "value": "db"}]
    return objects


@dataclass
class Mesh:
    sandbox: Sandbox
    prometheus: prom.Prometheus
    tmp: Path

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        result = run(command, env=self.sandbox.env(), timeout=180)
        return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())

    def watch(self, plan: Path) -> subprocess.CompletedProcess[str]:
        url = self.prometheus.url
        return self.shell(f"chaos-litmus -f {plan} --prometheus-endpoint {url} --with-experiments --with-rbac"
                          f" | chaos-watch --prometheus-url {url} --interval 1s --recovery-timeout 30s"
                          f" --state-dir {self.tmp / 'state'}")


@pytest.fixture(scope="module")
def mesh(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    install_litmus_crds(sandbox)
    sandbox.apply("\n---\n".join(json.dumps(o) for o in manifests()))
    wait_rolled_out(sandbox, [NAMESPACE])
    configured = run(f"chaos-inventory -n {NAMESPACE}", env=sandbox.env(), timeout=60)
    assert configured.returncode == 0, configured.stderr.decode()
    sim = TrafficSim(str(sandbox.admin_kubeconfig), json.loads(configured.stdout), families={NAMESPACE: "istio"},
                     code_only=[(API, DB)], never_called=[(WEB, DB)]).start()
    prometheus = prom.start([sim.address])
    runner = LitmusRunner(str(sandbox.admin_kubeconfig), prometheus.url).start()
    try:
        prometheus.wait_for_samples(f'istio_requests_total{{destination_workload_namespace="{NAMESPACE}",'
                                    'destination_workload="db"}')
        time.sleep(4 * SCRAPE)  # a few scrapes so that rate() and increase() have points
        yield Mesh(sandbox, prometheus, tmp_path_factory.mktemp("mesh"))
    finally:
        runner.close()
        prometheus.stop()
        sim.close()
        sandbox.run_kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        sandbox.run_kubectl("delete", "persistentvolume", f"sandbox-pv-{NAMESPACE}", "--wait=false", check=False)
        sandbox.run_kubectl("delete", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/managed-by=chaosgen",
                            check=False)


def inventory(mesh: Mesh) -> dict:
    result = mesh.shell(f"chaos-inventory -n {NAMESPACE} --prometheus-url {mesh.prometheus.url} --telemetry-window 10m")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_live_inventory_finds_the_code_only_edge_and_demotes_the_idle_one(mesh: Mesh) -> None:
    topology = inventory(mesh)
    edges = {(d["from"], d["to"]): d for d in topology["dependencies"]}
    observed = [e for e in edges[(API, DB)]["evidence"] if isinstance(e, dict)]
    assert [e["source"] for e in observed] == ["istio"] and observed[0]["requests"] > 0
    assert edges[(API, DB)]["confidence"] >= 0.9
    assert edges[(WEB, DB)]["confidence"] < 0.5
    assert any(isinstance(e, dict) and e["summary"] == "configured, no traffic in 10m" for e in edges[(WEB, DB)]["evidence"])
    assert {w["id"]: w.get("telemetry") for w in topology["workloads"]} == {WEB: ["istio"], API: ["istio"], DB: ["istio"]}


@pytest.fixture(scope="module")
def plan(mesh: Mesh) -> Path:
    path = mesh.tmp / "plan.json"
    result = mesh.shell(f"chaos-inventory -n {NAMESPACE} --prometheus-url {mesh.prometheus.url} --telemetry-window 10m"
                        f" | chaos-suggest -n 10 | jq {shlex.quote(SHORTEN)} > {path}")
    assert result.returncode == 0, result.stderr
    return path


def test_the_plan_reads_istio_only(plan: Path) -> None:
    experiments = json.loads(plan.read_text())["experiments"]
    queries = [c["query"] for e in experiments for c in e["abort_thresholds"] + e["steady_state"] if "query" in c]
    assert any("istio_requests_total{reporter='source'" in q for q in queries)
    assert not any("http_request" in q for q in queries)


def test_the_pipeline_aborts_a_real_breach_through_the_istio_threshold(mesh: Mesh, plan: Path) -> None:
    document = json.loads(plan.read_text())
    document["experiments"] = [e for e in document["experiments"] if e["target"]["workload"] == DB
                               and e["fault"]["type"] == "pod-delete"]
    assert document["experiments"], "the planner proposes the single-replica db's pod-delete"
    only = mesh.tmp / "db-pod-delete.json"
    only.write_text(json.dumps(document))
    result = mesh.watch(only)
    assert result.returncode == 5, result.stderr
    (verdict,) = json.loads(result.stdout)["experiments"]
    assert verdict["verdict"] == "aborted", verdict
    assert verdict["reason"].startswith("threshold api-error-rate breached"), verdict["reason"]


def test_chaos_watch_refuses_the_app_conventions_query_on_an_istio_namespace(mesh: Mesh, plan: Path) -> None:
    document = json.loads(plan.read_text())
    experiment = next(e for e in document["experiments"] if any(t["name"] == "api-error-rate" for t in e["abort_thresholds"]))
    api = promql.Peer(NAMESPACE, "Deployment", "api", "api")
    old = promql.error_rate("app", api, api)
    for threshold in experiment["abort_thresholds"]:
        if threshold["name"] == "api-error-rate":
            threshold["query"], threshold["series"] = old.query, list(old.series)
    document["experiments"] = [experiment]
    path = mesh.tmp / "app-convention.json"
    path.write_text(json.dumps(document))
    result = mesh.watch(path)
    assert result.returncode == 4, result.stderr
    assert ("threshold api-error-rate can never fire: no series for "
            f'http_requests_total{{namespace="{NAMESPACE}",service="api"}}') in result.stderr
