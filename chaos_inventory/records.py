"""The Topology's workload and Service records, as the topology schema defines them."""

from __future__ import annotations

from typing import Any

from chaos_inventory.fields import scalar_text
from chaos_inventory.model import DATA_TIERS, Container, Service, Workload
from chaos_inventory.risks import container_resources, criticality, workload_risks
from chaos_inventory.telemetry import FAMILIES


def workload_record(workload: Workload, transitive: int, direct: int,
                    coverage: dict[str, set[str]] | None = None) -> dict:
    """coverage: the metric families that saw each workload (with --prometheus-url), recorded as `telemetry`."""
    persistent = workload.claim_templates or any("persistentVolumeClaim" in v for v in workload.volumes)
    stateful = workload.kind == "StatefulSet" or persistent or workload.tier in DATA_TIERS
    record: dict[str, Any] = {
        "id": workload.id,
        "namespace": workload.namespace,
        "kind": workload.kind,
        "name": workload.name,
        "replicas": workload.replicas,
        "labels": dict(sorted(workload.labels.items())),
        "selector": dict(sorted(workload.selector.items())),
        "stateful": stateful,
        "containers": [_container_record(c) for c in workload.containers],
        "tier": workload.tier,
        "tier_reasons": workload.tier_reasons,
        **({"role": workload.role} if workload.role else {}),
        "criticality": criticality(workload, transitive, direct, stateful),
        "risks": workload_risks(workload, stateful, persistent, direct),
        "protection": {
            "pdb": workload.pdb["name"] if workload.pdb else None,
            "hpa": workload.hpa["name"] if workload.hpa else None,
            "min_replicas": workload.hpa["spec"].get("minReplicas", 1) if workload.hpa else None,
            "max_replicas": workload.hpa["spec"].get("maxReplicas") if workload.hpa else None,
        },
    }
    if workload.runtime is not None:
        record["runtime"] = workload.runtime
    if coverage is not None:
        families = coverage.get(workload.id, set())
        record["telemetry"] = [family for family in FAMILIES if family in families]
    return record


def _container_record(container: Container) -> dict:
    resources = container_resources(container)
    return {
        "name": container.name,
        "image": container.image,
        "init": container.init,
        "ports": container.ports,
        "readiness_probe": "readinessProbe" in container.spec,
        "liveness_probe": "livenessProbe" in container.spec,
        "requests": _quantities(resources.get("requests")),
        "limits": _quantities(resources.get("limits")),
    }


def _quantities(values: Any) -> dict[str, str]:
    return {str(k): scalar_text(v) for k, v in sorted(values.items())} if isinstance(values, dict) else {}


def service_record(service: Service) -> dict:
    record: dict[str, Any] = {
        "id": service.id,
        "namespace": service.namespace,
        "name": service.name,
        "type": service.type,
        "selector": dict(sorted(service.selector.items())),
    }
    if service.external_name:
        record["external_name"] = service.external_name
    record["ports"] = service.ports
    record["selects"] = sorted(w.id for w in service.selects)
    record["exposed"] = service.exposed
    if service.ready_endpoints is not None:
        record["ready_endpoints"] = service.ready_endpoints
    return record
