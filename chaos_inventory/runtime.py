"""Facts only a live cluster knows: where each workload's pods run and are ready, and Services' ready endpoints."""

from __future__ import annotations

from typing import Any

from chaos_inventory.model import Service, Workload

_ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def apply_runtime(runtime: dict, workloads: list[Workload], services: list[Service]) -> None:
    """Pods, EndpointSlices and Nodes from a live cluster: where replicas run and whether Services have endpoints."""
    zone_of = {}
    for node in runtime.get("nodes") or ():
        metadata = node.get("metadata") or {}
        labels = metadata.get("labels") or {}
        zone = next((labels[k] for k in _ZONE_LABELS if labels.get(k)), None)
        if zone:
            zone_of[metadata.get("name")] = zone
    by_selector_item: dict[tuple[str, str, str], list[tuple[Workload, dict[str, Any]]]] = {}
    all_facts = []
    for workload in workloads:
        facts: dict[str, Any] = {"ready_replicas": 0, "restarts": 0, "pods": 0, "nodes": [], "zones": []}
        workload.runtime = facts
        all_facts.append(facts)
        if workload.selector:
            key, value = next(iter(sorted(workload.selector.items())))
            by_selector_item.setdefault((workload.namespace, key, value), []).append((workload, facts))
    for pod in runtime.get("pods") or ():
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        namespace, labels = metadata.get("namespace", "default"), metadata.get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
        for key, value in labels.items():
            for workload, facts in by_selector_item.get((namespace, key, value), ()):
                if all(labels.get(k) == v for k, v in workload.selector.items()):
                    facts["pods"] += 1
                    facts["ready_replicas"] += ready
                    facts["restarts"] += restarts
                    if node and node not in facts["nodes"]:
                        facts["nodes"].append(node)
                    if node in zone_of and zone_of[node] not in facts["zones"]:
                        facts["zones"].append(zone_of[node])
    for facts in all_facts:
        facts["nodes"].sort()
        facts["zones"].sort()
    ready_by_service: dict[tuple[str, str | None], int] = {}
    for endpoint_slice in runtime.get("endpointslices") or ():
        metadata = endpoint_slice.get("metadata") or {}
        service_name = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        service_key = (metadata.get("namespace", "default"), service_name)
        ready_endpoints = sum(1 for e in endpoint_slice.get("endpoints") or ()
                              if (e.get("conditions") or {}).get("ready") is not False)
        ready_by_service[service_key] = ready_by_service.get(service_key, 0) + ready_endpoints
    if "endpointslices" in runtime:
        for service in services:
            if service.selects:
                service.ready_endpoints = ready_by_service.get((service.namespace, service.name), 0)
    zones_in_cluster = len(set(zone_of.values()))
    for workload in workloads:
        workload.zones_in_cluster = zones_in_cluster


def runtime_risks(workload: Workload, facts: dict[str, Any]) -> list[dict]:
    """The risks apply_runtime's facts show; called by risks.workload_risks for workloads read from a live cluster."""
    risks = []
    if facts["ready_replicas"] < workload.replicas:
        severity = "high" if facts["ready_replicas"] == 0 else "medium"
        risks.append({"id": "not-ready", "severity": severity,
                      "message": f"{facts['ready_replicas']} of {workload.replicas} replicas ready"})
    if workload.replicas > 1 and facts["pods"] > 1 and len(facts["nodes"]) == 1:
        risks.append({"id": "all-replicas-one-node", "severity": "high",
                      "message": f"all {facts['pods']} pods run on node {facts['nodes'][0]}"})
    if workload.replicas > 1 and facts["pods"] > 1 and len(facts["zones"]) == 1 and workload.zones_in_cluster > 1:
        risks.append({"id": "all-replicas-one-zone", "severity": "medium",
                      "message": f"all {facts['pods']} pods run in zone {facts['zones'][0]}"})
    empty = sorted(s.name for s in workload.services if s.ready_endpoints == 0)
    if empty:
        risks.append({"id": "no-ready-endpoints", "severity": "high",
                      "message": f"Service {', '.join(empty)} has no ready endpoints"})
    return risks
