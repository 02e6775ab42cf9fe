"""The compatible runner selects like litmus-go (issue 9): on an app whose Deployments share a label, a pod-delete
aimed at one of them through spec.selectors.workloads deletes only its pods, counted through the API; the same
engine with a multi-label appinfo.applabel reaches the sibling too (Litmus ORs the labels)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from test_real_litmus import LITMUS_CRDS, _deployment, _engine, _pod_uids

from tests.sandbox.litmus_runner import LitmusRunner
from tests.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture
def runner(sandbox: Sandbox) -> Iterator[LitmusRunner]:
    sandbox.apply(LITMUS_CRDS)
    started = LitmusRunner(str(sandbox.admin_kubeconfig)).start()
    try:
        yield started
    finally:
        started.close()


def _deleted(sandbox: Sandbox, ns: str, name: str, target: dict) -> set[str]:
    kubectl_ns = ("-n", ns)
    sandbox.apply(*(json.dumps(d) for d in [_deployment("web", 2), _deployment("api", 2)]), extra=kubectl_ns)
    for app in ("web", "api"):
        sandbox.run_kubectl("rollout", "status", f"deployment/{app}", *kubectl_ns, "--timeout=60s")
    before = {app: _pod_uids(sandbox, ns, app) for app in ("web", "api")}
    sandbox.apply(json.dumps(_engine(name, target)), extra=kubectl_ns)
    deadline, status = time.monotonic() + 120, {}
    while time.monotonic() < deadline and status.get("engineStatus") != "completed":
        time.sleep(1)
        status = json.loads(sandbox.run_kubectl("get", "chaosengine", name, *kubectl_ns, "-o", "json").stdout).get("status") or {}
    assert status.get("engineStatus") == "completed", status
    return {app for app, uids in before.items() if uids - _pod_uids(sandbox, ns, app)}


def test_a_workloads_selector_deletes_only_the_named_deployments_pods(
        sandbox: Sandbox, sandbox_namespace: str, runner: LitmusRunner) -> None:
    target = {"selectors": {"workloads": [{"kind": "deployment", "namespace": sandbox_namespace, "names": "web"}]}}
    assert _deleted(sandbox, sandbox_namespace, "by-name", target) == {"web"}


def test_a_multi_label_applabel_is_an_or_and_reaches_the_sibling(
        sandbox: Sandbox, sandbox_namespace: str, runner: LitmusRunner) -> None:
    target = {"appinfo": {"appns": sandbox_namespace, "appkind": "deployment",
                          "applabel": "app=web,app.kubernetes.io/part-of=shop"}}
    assert _deleted(sandbox, sandbox_namespace, "by-labels", target) == {"web", "api"}
