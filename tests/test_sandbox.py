"""The sandbox control plane itself: real controllers recreate killed pods, RBAC holds, stop() is exact, and
everything we ship or render is accepted by a server-side dry-run apply."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO, fixture_files, run
from tests.sandbox.fixture import READY_DELAY
from tests.sandbox.sandbox import COMPONENTS, Sandbox, _is_ours, start

pytestmark = pytest.mark.sandbox

LITMUS_CRDS = FIXTURES / "crds" / "litmus-crds.yaml"
K8S_MANIFESTS = sorted((REPO / "k8s").glob("*.yaml"))
FIXTURE_APPS = fixture_files("apps/*.yaml")


def ready_pods(sandbox: Sandbox, namespace: str, selector: str) -> dict[str, bool]:
    """Pod name -> Ready, for the pods that match selector and are not being deleted."""
    pods = json.loads(sandbox.run_kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)
    return {
        pod["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
        )
        for pod in pods["items"]
        if "deletionTimestamp" not in pod["metadata"]
    }


def test_killed_pod_of_a_deployment_is_replaced_by_a_new_ready_pod(sandbox: Sandbox, sandbox_namespace: str) -> None:
    sandbox.run_kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "-n", sandbox_namespace)
    sandbox.run_kubectl("rollout", "status", "deployment/web", "-n", sandbox_namespace, "--timeout=60s")
    before = ready_pods(sandbox, sandbox_namespace, "app=web")
    assert len(before) == 2 and all(before.values())

    victim = sorted(before)[0]
    killed_at = time.monotonic()
    sandbox.run_kubectl("delete", "pod", victim, "-n", sandbox_namespace, "--wait=false")
    deadline = killed_at + 60
    while time.monotonic() < deadline:
        now = ready_pods(sandbox, sandbox_namespace, "app=web")
        if victim not in now and len(now) == 2 and all(now.values()):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no replacement became Ready within 60 s: {now}")
    recovery = time.monotonic() - killed_at
    (replacement,) = set(now) - set(before)
    assert replacement.startswith("web-")
    # kwok's readiness delay makes recovery measurable, as chaos-watch needs it to be.
    assert recovery >= READY_DELAY * 0.9


def test_statefulset_pods_become_ready_in_order(sandbox: Sandbox, sandbox_namespace: str) -> None:
    sandbox.apply(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": sandbox_namespace},
        "spec": {
            "serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
        },
    }))
    sandbox.run_kubectl("rollout", "status", "statefulset/db", "-n", sandbox_namespace, "--timeout=60s")
    assert ready_pods(sandbox, sandbox_namespace, "app=db") == {"db-0": True, "db-1": True}


def test_fake_nodes_are_ready_and_spread_over_zones(sandbox: Sandbox) -> None:
    nodes = json.loads(sandbox.run_kubectl("get", "nodes", "-o", "json").stdout)["items"]
    zones = {node["metadata"]["labels"]["topology.kubernetes.io/zone"] for node in nodes}
    assert len(nodes) == 3 and zones == {"zone-a", "zone-b", "zone-c"}
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


@pytest.mark.parametrize(("verb", "resource", "allowed"), [
    ("list", "pods", "yes"), ("list", "deployments.apps", "yes"), ("list", "endpointslices.discovery.k8s.io", "yes"),
    ("list", "configmaps", "yes"), ("list", "nodes", "yes"), ("list", "secrets", "no"), ("get", "secrets", "no"),
    ("delete", "pods", "no"), ("create", "deployments.apps", "no"), ("watch", "pods", "no"),
])
def test_readonly_identity_may_read_inventory_kinds_and_nothing_else(
    sandbox: Sandbox, verb: str, resource: str, allowed: str
) -> None:
    result = sandbox.run_kubectl("auth", "can-i", verb, resource, "-A", kubeconfig=sandbox.readonly_kubeconfig,
                                 check=False)
    assert result.stdout.strip() == allowed


def test_stop_ends_exactly_the_processes_it_started_and_removes_its_data(sandbox: Sandbox, tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    second = start(sandbox.bin_dir, nodes=1, data_dir=tmp_path / "second")
    try:
        assert second.timings["total"] < 30
        pids = dict(second.pids)
        assert set(pids) == set(COMPONENTS)
        assert all(_is_ours(pid, second.bin_dir / COMPONENTS[c]) for c, pid in pids.items())
    finally:
        second.stop()
    try:
        assert not any(_is_ours(pid, second.bin_dir / COMPONENTS[c]) for c, pid in pids.items())
        assert not (tmp_path / "second").exists()
        assert bystander.poll() is None
        # The session's sandbox is untouched.
        assert all(_is_ours(pid, sandbox.bin_dir / COMPONENTS[c]) for c, pid in sandbox.pids.items())
        sandbox.run_kubectl("get", "--raw", "/readyz")
    finally:
        bystander.kill()
        bystander.wait()


@pytest.fixture(scope="module")
def litmus_crds(sandbox: Sandbox) -> None:
    """The Litmus CRDs installed and established, as on a cluster where Litmus runs."""
    sandbox.apply(LITMUS_CRDS, extra=("--server-side",))
    # kubectl wait fails outright on a CRD whose status the apiserver has not written yet, so poll.
    deadline = time.monotonic() + 60
    while sandbox.run_kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s",
                              check=time.monotonic() > deadline).returncode != 0:
        time.sleep(0.5)


def _apply_namespaces(sandbox: Sandbox, manifests: list[Path]) -> None:
    """Namespaces are created for real: a dry-run Namespace does not let the objects inside it dry-run."""
    namespaces = [doc for path in manifests for doc in yaml.safe_load_all(path.read_text())
                  if doc and doc.get("kind") == "Namespace"]
    if namespaces:
        sandbox.apply(yaml.safe_dump_all(namespaces))


def _server_side_dry_run(sandbox: Sandbox, manifest: Path):
    """kubectl apply --dry-run=server --server-side --validate=strict of a file.

    Other tests of the session may already have applied the same objects for real (client-side); a dry run is about
    whether the server accepts the objects, so field-ownership conflicts with that earlier apply are forced.
    """
    return sandbox.run_kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                               "--field-manager=chaosgen-test", "--validate=strict", "-f", str(manifest), check=False)


@pytest.mark.parametrize("manifest", K8S_MANIFESTS, ids=lambda path: path.name)
def test_k8s_manifests_pass_a_server_side_dry_run(sandbox: Sandbox, litmus_crds: None, manifest: Path) -> None:
    _apply_namespaces(sandbox, [manifest])
    result = _server_side_dry_run(sandbox, manifest)
    assert result.returncode == 0, result.stderr


def _litmus_pipeline(app: Path, extra: str = "") -> str:
    return (f"chaos-inventory -f {app} | chaos-suggest -n 3 | "
            f"chaos-litmus --with-experiments --with-rbac {extra}")


@pytest.mark.parametrize("app", FIXTURE_APPS, ids=lambda path: path.stem)
def test_rendered_litmus_manifests_pass_a_server_side_dry_run(sandbox: Sandbox, litmus_crds: None, app: Path,
                                                              tmp_path: Path) -> None:
    rendered = run(_litmus_pipeline(app), env=sandbox.env())
    assert rendered.returncode == 0, rendered.stderr.decode()
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert {doc["kind"] for doc in documents} >= {"ChaosEngine", "ChaosExperiment", "ServiceAccount"}
    for namespace in sorted({doc["metadata"]["namespace"] for doc in documents if "namespace" in doc["metadata"]}):
        sandbox.run_kubectl("create", "namespace", namespace, check=False)
    output = tmp_path / "litmus.yaml"
    output.write_bytes(rendered.stdout)
    result = _server_side_dry_run(sandbox, output)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("app", FIXTURE_APPS, ids=lambda path: path.stem)
def test_chaos_litmus_validate_accepts_what_it_renders(sandbox: Sandbox, litmus_crds: None, app: Path) -> None:
    rendered = run(_litmus_pipeline(app), env=sandbox.env())
    assert rendered.returncode == 0, rendered.stderr.decode()
    for namespace in sorted({doc["metadata"]["namespace"] for doc in yaml.safe_load_all(rendered.stdout)
                             if doc and "namespace" in doc["metadata"]}):
        sandbox.run_kubectl("create", "namespace", namespace, check=False)
    validated = run(_litmus_pipeline(app, "--validate"), env=sandbox.env())
    assert validated.returncode == 0, validated.stderr.decode()
    assert validated.stdout == rendered.stdout


def test_chaos_litmus_validate_as_the_readonly_identity_is_an_environment_failure(
    sandbox: Sandbox, litmus_crds: None
) -> None:
    app = FIXTURE_APPS[0]
    env = sandbox.env(sandbox.readonly_kubeconfig)
    result = run(_litmus_pipeline(app, "--validate"), env=env)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert result.stdout == b""
    (litmus_error,) = [line for line in stderr.splitlines() if line.startswith("chaos-litmus:")]
    assert "not allowed" in litmus_error and "Traceback" not in stderr
