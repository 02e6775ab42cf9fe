"""chaos-inventory against a live cluster (the sandbox), run as a user runs it: the installed command in a shell.

Live and offline inventories of the same apps agree; runtime facts and risks come on top; the read-only identity
suffices and never touches Secrets; forbidden, unreachable, expired and misconfigured cases exit 4 in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO, run
from tests.sandbox.sandbox import Sandbox, free_port
from tests.sandbox.watch_world import apply_apps

pytestmark = pytest.mark.sandbox

APPS = {"shop": REPO / "k8s" / "3tier-app.yaml", "sock-shop": FIXTURES / "apps" / "sock-shop.yaml"}
RUNTIME_RISKS = {"not-ready", "all-replicas-one-node", "all-replicas-one-zone", "no-ready-endpoints"}
LIVE = "chaos-inventory -n shop -n sock-shop"


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """conftest.run with text output: the command as a user types it, in bash with pipefail."""
    result = run(command, env=env, timeout=120)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def assert_environment_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 4, nothing on stdout, one line on stderr that contains each of words."""
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def without_runtime(topology: dict) -> dict:
    """The parts a manifest can tell: runtime facts, risks drawn from them and the source removed."""
    workloads = []
    for workload in topology["workloads"]:
        workload = {key: value for key, value in workload.items() if key != "runtime"}
        workload["risks"] = [risk for risk in workload["risks"] if risk["id"] not in RUNTIME_RISKS]
        workloads.append(workload)
    services = [{key: value for key, value in service.items() if key != "ready_endpoints"}
                for service in topology["services"]]
    return {"workloads": workloads, "services": services, "dependencies": topology["dependencies"],
            "external": topology["external"]}


@pytest.fixture(scope="module")
def apps(sandbox: Sandbox) -> Sandbox:
    """The 3-tier app and Sock Shop running, every replica Ready (a PersistentVolume for postgres' claim)."""
    apply_apps(sandbox, list(APPS), *APPS.values())
    return sandbox


def test_live_inventory_agrees_with_the_manifests_and_adds_runtime_facts(apps: Sandbox) -> None:
    live = shell(LIVE, apps.env())
    offline = shell(f"chaos-inventory -f {APPS['shop']} -f {APPS['sock-shop']}", apps.env())
    assert live.returncode == 0, live.stderr
    assert offline.returncode == 0, offline.stderr
    live_topology, offline_topology = json.loads(live.stdout), json.loads(offline.stdout)

    assert without_runtime(live_topology) == without_runtime(offline_topology)
    assert live_topology["metadata"]["source"] == {
        "type": "cluster", "context": "chaosgen-sandbox", "server": apps.server, "namespaces": ["shop", "sock-shop"]}
    assert "partial" not in live_topology["metadata"]
    for workload in live_topology["workloads"]:
        facts = workload["runtime"]
        assert facts["ready_replicas"] == workload["replicas"] == facts["pods"], workload["id"]
        assert facts["nodes"] and facts["zones"] and facts["restarts"] == 0
    assert all(service.get("ready_endpoints", 1) > 0 for service in live_topology["services"])


def test_live_output_is_byte_identical_across_runs(apps: Sandbox) -> None:
    first, second = shell(LIVE, apps.env()), shell(LIVE, apps.env())
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


def test_runtime_risks_of_replicas_on_one_node_and_services_without_ready_endpoints(
    sandbox: Sandbox, sandbox_namespace: str
) -> None:
    def deployment(name: str, **pod: object) -> dict:
        template = {"metadata": {"labels": {"app": name}, "annotations": pod.pop("annotations", {})},
                    "spec": {"containers": [{"name": name, "image": "nginx:1.27"}], **pod}}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template}}

    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "stuck"},
               "spec": {"selector": {"app": "stuck"}, "ports": [{"port": 80}]}}
    objects = [deployment("packed", nodeSelector={"kubernetes.io/hostname": "kwok-node-0"}),
               deployment("stuck", annotations={"chaosgen.dev/ready-delay": "1h"}), service]
    sandbox.run_kubectl("apply", "-n", sandbox_namespace, "-f", "-", input=yaml.safe_dump_all(objects))
    sandbox.run_kubectl("rollout", "status", "deployment/packed", "-n", sandbox_namespace, "--timeout=60s")
    sandbox.run_kubectl("wait", "--for=jsonpath={.status.phase}=Pending", "pod", "-l", "app=stuck",
                        "-n", sandbox_namespace, "--timeout=60s")

    result = shell(f"chaos-inventory -n {sandbox_namespace}", sandbox.env())
    assert result.returncode == 0, result.stderr
    risks = {w["name"]: {r["id"] for r in w["risks"]} for w in json.loads(result.stdout)["workloads"]}
    assert "all-replicas-one-node" in risks["packed"] and "all-replicas-one-zone" in risks["packed"]
    assert {"not-ready", "no-ready-endpoints"} <= risks["stuck"]


def test_readonly_identity_reads_everything_with_one_list_per_kind_and_never_secrets(apps: Sandbox) -> None:
    admin = shell("chaos-inventory --exclude-namespace kube-system", apps.env())
    audited_before = len(apps.audit_log.read_text().splitlines())
    readonly = shell("chaos-inventory --exclude-namespace kube-system", apps.env(apps.readonly_kubeconfig))
    assert readonly.returncode == 0, readonly.stderr
    assert json.loads(readonly.stdout)["metadata"].get("partial") is None
    assert without_runtime(json.loads(readonly.stdout)) == without_runtime(json.loads(admin.stdout))

    events = [json.loads(line) for line in apps.audit_log.read_text().splitlines()[audited_before:]]
    requests = [e for e in events if e["stage"] == "ResponseComplete" and e["userAgent"] == "chaos-inventory"]
    assert {e["verb"] for e in requests} == {"list"}
    resources = sorted(e["objectRef"]["resource"] for e in requests)
    # Small lists fit one page, so each kind is exactly one cluster-wide request; Secrets are never asked for.
    assert len(resources) == len(set(resources)) == 15 and "secrets" not in resources
    assert all("/namespaces/" not in e["requestURI"] for e in requests)


def test_forbidden_optional_kinds_give_a_warning_and_a_partial_topology(sandbox: Sandbox) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "chaosgen-test-no-configmaps"},
            "rules": [rule for rule in yaml.safe_load_all((REPO / "k8s" / "rbac-inventory.yaml").read_text())
                      if rule["kind"] == "ClusterRole"][0]["rules"]}
    for rule in role["rules"]:
        rule["resources"] = [r for r in rule["resources"] if r not in ("configmaps", "endpointslices")]
    role["rules"] = [rule for rule in role["rules"] if rule["resources"]]
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "chaosgen-test-no-configmaps"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "chaosgen-test-no-configmaps"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "no-configmaps"}]}
    sandbox.apply(yaml.safe_dump_all([role, binding]))
    kubeconfig = sandbox.new_kubeconfig("no-configmaps", "no-configmaps")

    result = shell("chaos-inventory", sandbox.env(kubeconfig))
    assert result.returncode == 0, result.stderr
    metadata = json.loads(result.stdout)["metadata"]
    assert metadata["partial"] == ["configmaps", "endpointslices.discovery.k8s.io"]
    assert "not allowed to list configmaps" in result.stderr and "WARNING" in result.stderr


def test_forbidden_required_kind_exits_4_naming_the_verb_and_resource(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.new_kubeconfig("nobody", "nobody")
    assert_environment_failure(shell("chaos-inventory", sandbox.env(kubeconfig)),
                               "forbidden", "'list'", "deployments.apps")


def test_expired_credentials_exit_4(sandbox: Sandbox) -> None:
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    kubeconfig = sandbox.new_kubeconfig("expired", "chaosgen-readonly", not_after=expired)
    assert_environment_failure(shell("chaos-inventory", sandbox.env(kubeconfig)), "401", "credentials")


def test_unreachable_cluster_exits_4(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.new_kubeconfig("unreachable", "chaosgen-readonly",
                                        server=f"https://127.0.0.1:{free_port()}")
    assert_environment_failure(shell("chaos-inventory", sandbox.env(kubeconfig)), "cannot reach")


def test_wrong_context_exits_4(sandbox: Sandbox) -> None:
    assert_environment_failure(shell("chaos-inventory --context nowhere", sandbox.env()),
                               "nowhere", "chaosgen-sandbox")


@pytest.mark.parametrize("content", ["{not: [yaml", "apiVersion: v1\nkind: Config\n", None],
                         ids=["not-yaml", "no-contexts", "missing-file"])
def test_bad_kubeconfig_exits_4(sandbox: Sandbox, tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    assert_environment_failure(shell(f"chaos-inventory --kubeconfig {path}", sandbox.env()), "kubeconfig")


def test_all_namespaces_with_a_namespace_is_a_usage_error(sandbox: Sandbox) -> None:
    result = shell("chaos-inventory -A -n shop", sandbox.env())
    assert result.returncode == 2 and result.stdout == ""


def test_selector_and_namespace_flags_narrow_what_is_read(apps: Sandbox) -> None:
    selected = shell("chaos-inventory -n sock-shop -n shop -l name=carts", apps.env())
    assert selected.returncode == 0, selected.stderr
    topology = json.loads(selected.stdout)
    assert [w["id"] for w in topology["workloads"]] == ["sock-shop/Deployment/carts"]
    assert [s["id"] for s in topology["services"]] == ["sock-shop/Service/carts"]
    assert topology["workloads"][0]["runtime"]["ready_replicas"] == 1

    excluded = shell("chaos-inventory -A --exclude-namespace sock-shop --exclude-namespace default", apps.env())
    assert excluded.returncode == 0, excluded.stderr
    assert {w["namespace"] for w in json.loads(excluded.stdout)["workloads"]} >= {"shop"}
    assert "sock-shop" not in {w["namespace"] for w in json.loads(excluded.stdout)["workloads"]}


def test_a_namespace_that_does_not_exist_is_a_warning_or_with_strict_an_error(sandbox: Sandbox) -> None:
    warned = shell("chaos-inventory -n does-not-exist", sandbox.env())
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr == ("chaos-inventory: WARNING: nothing found in namespace does-not-exist (no workload, no "
                             "Service): does it exist?\n")
    assert json.loads(warned.stdout)["workloads"] == []
    assert_environment_failure(shell("chaos-inventory -n does-not-exist --strict", sandbox.env()),
                               "chaos-inventory: error: nothing found in namespace does-not-exist")
