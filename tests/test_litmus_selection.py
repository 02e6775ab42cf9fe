"""Every engine ChaosGen renders hits only its target, judged by Litmus's own selection rules (issue 9).

The oracle below follows litmus-go 3.28 / chaos-operator 3.18, not chaos-watch's code: selectors.workloads match a
pod by its owner (ReplicaSet -> Deployment when the ReplicaSet name ends with the pod's pod-template-hash);
appinfo.applabel is split on commas and each label lists pods on its own, the lists merged (an OR), filtered by the
owner's kind only; node-drain and pod-autoscaler read the first label only, and pod-autoscaler matches it against
the workloads' metadata labels. Pods are the apps' pod templates, one per workload, owned as their controller would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import FIXTURES, REPO

APPS = [*sorted((FIXTURES / "apps").glob("*.yaml")), REPO / "k8s" / "3tier-app.yaml"]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
SHARED = {"app.kubernetes.io/part-of": "shop", "environment": "prod"}


def workloads_of(manifest: Path, shared: dict[str, str] | None = None) -> list[dict[str, Any]]:
    found = [d for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") in WORKLOAD_KINDS]
    for workload in found:
        workload.setdefault("metadata", {}).setdefault("namespace", "default")
        if shared:  # every pod (and workload) of the namespace carries the same labels
            workload["metadata"]["labels"] = {**workload["metadata"].get("labels", {}), **shared}
            template = workload["spec"]["template"].setdefault("metadata", {})
            template["labels"] = {**template.get("labels", {}), **shared}
    return found


def pod_of(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod the workload's controller would create: template labels, owned like Kubernetes owns it."""
    labels = dict(workload["spec"]["template"]["metadata"].get("labels", {}))
    name = workload["metadata"]["name"]
    if workload["kind"] == "Deployment":
        labels["pod-template-hash"] = "7c9d"
        owner = ("ReplicaSet", f"{name}-7c9d")
    else:
        owner = (workload["kind"], name)
    return {"namespace": workload["metadata"]["namespace"], "labels": labels, "owner": owner, "workload": name}


def owner_of(pod: dict[str, Any]) -> tuple[str, str]:
    """litmus-go pkg/utils/common GetPodOwnerTypeAndName."""
    kind, name = pod["owner"]
    template_hash = pod["labels"].get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(template_hash):
        return "deployment", name[: -len(template_hash) - 1]
    return kind.lower(), name


def litmus_targets(engine: dict[str, Any], pods: list[dict[str, Any]], workloads: list[dict[str, Any]]) -> set[str]:
    """The workloads whose pods (or, for pod-autoscaler, whose objects) Litmus acts on for this engine."""
    spec, fault = engine["spec"], engine["spec"]["experiments"][0]["name"]
    selected = spec.get("selectors", {}).get("workloads")
    if selected:
        assert fault not in ("node-drain", "pod-autoscaler"), "Litmus panics on Labels[0] of a names-only selector"
        hit = set()
        for entry in selected:
            for name in entry["names"].split(","):
                hit |= {p["workload"] for p in pods if p["namespace"] == entry["namespace"] and owner_of(p) == (entry["kind"], name)}
        return hit
    appinfo = spec["appinfo"]
    labels = appinfo["applabel"].split(",")
    if fault in ("node-drain", "pod-autoscaler"):
        labels = labels[:1]
    key, value = labels[0].split("=", 1)
    if fault == "pod-autoscaler":
        return {w["metadata"]["name"] for w in workloads if w["kind"].lower() == appinfo["appkind"]
                and w["metadata"]["namespace"] == appinfo["appns"] and w["metadata"].get("labels", {}).get(key) == value}
    hit = set()
    for label in labels:
        key, value = label.split("=", 1)
        hit |= {p["workload"] for p in pods if p["namespace"] == appinfo["appns"] and p["labels"].get(key) == value
                and owner_of(p)[0] == appinfo.get("appkind", owner_of(p)[0])}
    return hit


def render(topology: dict[str, Any], count: int = 40) -> list[dict[str, Any]]:
    text = json.dumps(topology)
    plan = subprocess.run(["chaos-suggest", "-n", str(count)], input=text, capture_output=True, text=True, check=True).stdout
    out = subprocess.run(["chaos-litmus", "--format", "json"], input=plan, capture_output=True, text=True, check=True).stdout
    return [item for item in json.loads(out)["items"] if item["kind"] == "ChaosEngine"]


def inventory(manifest_text: str) -> dict[str, Any]:
    out = subprocess.run(["chaos-inventory", "-f", "-"], input=manifest_text, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def with_placement(topology: dict[str, Any]) -> dict[str, Any]:
    """Runtime facts a live inventory would add: replicas spread over two nodes, risks that invite a drain, and an
    autoscaler maximum, so that node-drain and pod-autoscaler are planned too."""
    for workload in topology["workloads"]:
        if workload["kind"] in ("Deployment", "StatefulSet"):
            workload["replicas"] = max(workload["replicas"], 2)
            workload["runtime"] = {**workload.get("runtime", {}), "nodes": ["node-a", "node-b"]}
            workload["risks"] = [*workload["risks"], {"id": "no-anti-affinity", "severity": "medium", "message": "m"}]
            workload.setdefault("protection", {})["max_replicas"] = workload["replicas"] + 2
    return topology


@pytest.mark.parametrize("shared", [None, SHARED], ids=["as-is", "shared-labels"])
@pytest.mark.parametrize("manifest", APPS, ids=[p.stem for p in APPS])
def test_each_engine_hits_only_its_target(manifest: Path, shared: dict[str, str] | None) -> None:
    workloads = workloads_of(manifest, shared)
    pods = [pod_of(w) for w in workloads]
    topology = with_placement(inventory(yaml.safe_dump_all(
        [d for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") not in WORKLOAD_KINDS] + workloads)))
    engines = render(topology)
    faults = {e["spec"]["experiments"][0]["name"] for e in engines}
    assert {"pod-delete", "node-drain", "pod-autoscaler"} <= faults
    for engine in engines:
        target = json.loads(engine["metadata"]["annotations"]["chaosgen.dev/experiment"])["target"]
        assert litmus_targets(engine, pods, workloads) == {target["name"]}, (engine["metadata"]["name"], engine["spec"])
