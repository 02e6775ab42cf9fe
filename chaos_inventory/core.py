"""Building a Topology from Kubernetes objects: workloads, Services, the dependency graph, tiers, criticality, risks.

Pure: plain dicts in, a Topology dict out, no I/O. chaos-inventory's CLI feeds it the objects of manifest files
(manifests.py); the live-cluster reader feeds it the objects it lists plus `runtime`, the facts only a running
cluster knows:

    runtime = {
        "pods": [<v1 Pod>, ...],                         # matched to workloads by namespace and selector
        "endpointslices": [<discovery.k8s.io/v1 EndpointSlice>, ...],   # by label kubernetes.io/service-name
        "nodes": [<v1 Node>, ...],                       # zone from topology.kubernetes.io/zone
    }

Every key is optional. With runtime, workloads get `runtime` (pods, ready replicas, restarts, nodes, zones),
Services get `ready_endpoints`, and the risks all-replicas-one-node, all-replicas-one-zone, no-ready-endpoints and
not-ready are added. Objects with a field of the wrong shape raise MalformedObject (exit 3) naming the field.

This module links Services and protections (PDBs, HPAs) to workloads and assembles the Topology; the steps live in
fields.py (shape-checked reads), model.py (objects to records), dependencies.py, tiers.py, risks.py (criticality and
risks), runtime.py (live-cluster facts) and records.py (the output records).
"""

from __future__ import annotations

from typing import Any

from chaos_inventory import telemetry
from chaos_inventory.dependencies import dependency_edges, edge_records, external_hosts, merge_observed
from chaos_inventory.fields import MalformedObject
from chaos_inventory.model import KNOWN_KINDS, Inputs, Service, Workload, read_objects
from chaos_inventory.records import service_record, workload_record
from chaos_inventory.risks import direct_callers, transitive_callers
from chaos_inventory.runtime import apply_runtime
from chaos_inventory.tiers import assign_tiers
from chaosgen import API_VERSION, __version__

__all__ = ["GENERATOR", "KNOWN_KINDS", "MalformedObject", "build_topology", "selector_matches"]

GENERATOR = f"chaos-inventory {__version__}"


def build_topology(objects: list[dict], source: dict, runtime: dict | None = None,
                   readings: telemetry.Readings | None = None) -> dict:
    """The Topology of objects (Kubernetes objects as plain dicts, namespaces already set); called by the CLI.
    With readings (Prometheus answers, --prometheus-url), traffic adds, confirms and demotes dependencies."""
    inputs = read_objects(objects)
    workloads = sorted(inputs.workloads.values(), key=lambda w: w.id)
    services = sorted(inputs.services.values(), key=lambda s: s.id)
    by_label = _label_index(workloads)
    _select(by_label, services, inputs.exposed)
    _protect(by_label, workloads, inputs)
    edges = dependency_edges(workloads, inputs)
    observation = telemetry.observe(readings, workloads) if readings is not None else None
    if observation is not None:
        added, idle = merge_observed(edges, observation, inputs.workloads)
    assign_tiers(workloads, edges)
    dependencies = edge_records(edges, inputs.workloads)
    if runtime:
        apply_runtime(runtime, workloads, services)
    callers = transitive_callers(workloads, dependencies)
    direct = direct_callers(dependencies)
    coverage = observation.coverage if observation is not None else None
    workload_records = [workload_record(w, callers.get(w.id, 0), direct.get(w.id, 0), coverage) for w in workloads]
    external = external_hosts(dependencies)
    metadata: dict[str, Any] = {"generator": GENERATOR, "source": source}
    if inputs.duplicates:
        listed = sorted(inputs.duplicates)
        more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
        metadata["warnings"] = [f"{len(listed)} workloads are defined more than once, the last definition is used: "
                                f"{', '.join(listed[:5])}{more}"]
    topology: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Topology",
        "metadata": metadata,
        "workloads": workload_records,
        "services": [service_record(s) for s in services],
        "dependencies": dependencies,
        "external": external,
        "summary": {
            "workloads": len(workload_records),
            "services": len(services),
            "dependencies": len(dependencies),
            "external": len(external),
            "risks": sum(len(w["risks"]) for w in workload_records),
        },
    }
    if observation is not None:
        topology["telemetry"] = telemetry.summary(observation, added, idle)
    return topology


def selector_matches(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels; used for PDBs and NetworkPolicies."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or ()
        present = key in labels
        if (operator == "In" and labels.get(key) not in values) \
                or (operator == "NotIn" and present and labels[key] in values) \
                or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


_LabelIndex = dict[tuple[str, str, str | None], list[Workload]]


def _label_index(workloads: list[Workload]) -> _LabelIndex:
    """Workloads by (namespace, label, value), and by (namespace, "", None) all of a namespace: selectors match
    through it so that matching stays linear in the number of objects."""
    index: _LabelIndex = {}
    for workload in workloads:
        index.setdefault((workload.namespace, "", None), []).append(workload)
        for key, value in workload.labels.items():
            index.setdefault((workload.namespace, key, value), []).append(workload)
    return index


def _candidates(index: _LabelIndex, namespace: str, match_labels: dict[str, str]) -> list[Workload]:
    """The workloads of a namespace that may match: those carrying the rarest of the selector's labels."""
    lists = [index.get((namespace, k, v), []) for k, v in match_labels.items()]
    lists = lists or [index.get((namespace, "", None), [])]
    return min(lists, key=len)


def _select(by_label: _LabelIndex, services: list[Service], exposed: set[tuple[str, str]]) -> None:
    """Services select workloads by pod-template labels, in their own namespace."""
    for service in services:
        service.exposed = service.type in ("NodePort", "LoadBalancer") or (service.namespace, service.name) in exposed
        if not service.selector or service.type == "ExternalName":
            continue
        candidates = _candidates(by_label, service.namespace, service.selector)
        service.selects = [w for w in candidates if all(w.labels.get(k) == v for k, v in service.selector.items())]
        for workload in service.selects:
            workload.services.append(service)


def _protect(by_label: _LabelIndex, workloads: list[Workload], inputs: Inputs) -> None:
    by_name = {(w.namespace, w.kind, w.name): w for w in workloads}
    for namespace, name, selector, spec in sorted(inputs.pdbs, key=lambda p: (p[0], p[1])):
        given = selector.get("matchLabels")
        match_labels: dict[str, str] = given if isinstance(given, dict) else {}
        for workload in _candidates(by_label, namespace, match_labels):
            if workload.pdb is None and workload.kind != "Pod" and selector_matches(selector, workload.labels):
                workload.pdb = {"name": name, "spec": spec}
    for namespace, name, spec in sorted(inputs.hpas, key=lambda h: (h[0], h[1])):
        target = spec["scaleTargetRef"]
        scaled = by_name.get((namespace, target.get("kind"), target.get("name")))
        if scaled is not None and scaled.hpa is None:
            scaled.hpa = {"name": name, "spec": spec}
