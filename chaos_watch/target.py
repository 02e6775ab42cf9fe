"""The experiment's target workload: its desired and ready replicas, and its pods' readiness as a watch reports it.

Engine-independent Kubernetes: the preflight checks the target's steady state with it, the runner measures
recovery against its desired replicas, and a backend feeds TargetPods from its pod watch.
"""

from __future__ import annotations

from typing import Any, cast

from chaos_watch import core
from chaos_watch.cluster import Cluster

WORKLOAD_API = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1"}


class TargetPods:
    """The target's pods as the pod watch reports them: who is ready now, and every change with its true time.

    The watch sees the whole namespace; only the pods the engine selects (selection.matches) count.
    """

    def __init__(self, selection: core.PodSelection) -> None:
        self.selection = selection
        self.ready: dict[str, bool] = {}
        self.changes: list[core.PodChange] = []

    def update(self, event_type: str, pod: dict[str, Any], received: float) -> core.PodChange | None:
        if not self.selection.matches(pod):
            return None
        # Keyed by name: a StatefulSet's replacement pod reuses it, which is exactly "the replica is back".
        name = pod["metadata"]["name"]
        now_ready, stamp = _pod_readiness(event_type, pod)
        was_ready = self.ready.get(name, False)
        if event_type == "DELETED":
            self.ready.pop(name, None)
        else:
            self.ready[name] = now_ready
        if now_ready == was_ready:
            return None
        change = core.PodChange(core.event_time(stamp, received), name, now_ready)
        self.changes.append(change)
        return change

    def ready_names(self) -> set[str]:
        return {name for name, ready in self.ready.items() if ready}


def _pod_readiness(event_type: str, pod: dict[str, Any]) -> tuple[bool, float | None]:
    """Whether a pod serves, and the API timestamp of its last change of that (deletion or Ready transition)."""
    metadata = pod["metadata"]
    deleting = metadata.get("deletionTimestamp")
    if event_type == "DELETED" or deleting:
        stamp = core.parse_k8s_time(deleting)
        # deletionTimestamp is when the grace period ends; the pod stopped serving when deletion was requested.
        return False, None if stamp is None else stamp - float(metadata.get("deletionGracePeriodSeconds") or 0)
    status = pod.get("status") or {}
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if condition is None:
        return False, None
    ready = condition.get("status") == "True" and status.get("phase") == "Running"
    return ready, core.parse_k8s_time(condition.get("lastTransitionTime"))


def _workload(cluster: Cluster, engine: core.Engine, namespace: str) -> tuple[str, str, dict[str, Any] | None] | None:
    """(kind, name, the live object or None) of a replicated target; None for a target that is not one."""
    kind_name = engine.target_kind_name
    if kind_name is None or kind_name[0] not in WORKLOAD_API:
        return None
    kind, name = kind_name
    return kind, name, cluster.get(WORKLOAD_API[kind], kind, namespace, name)


def readiness_check(cluster: Cluster, engine: core.Engine, namespace: str) -> tuple[str, bool, str]:
    """The preflight's "target" check: the workload exists and has all its desired replicas ready."""
    found = _workload(cluster, engine, namespace)
    if found is None:
        return "target", True, f"target {engine.target} is not a replicated workload; readiness not checked"
    kind, name, workload = found
    if workload is None:
        return "target", False, f"{kind} {namespace}/{name} does not exist"
    desired = (workload.get("spec") or {}).get("replicas", 1)
    ready = (workload.get("status") or {}).get("readyReplicas", 0) or 0
    if ready < desired:
        return "target", False, f"{kind} {namespace}/{name} has {ready}/{desired} ready replicas (steady state does not hold)"
    return "target", True, f"{kind} {namespace}/{name} has {ready}/{desired} ready replicas"


def desired_replicas(cluster: Cluster, engine: core.Engine, namespace: str) -> int:
    """How many ready pods mean "recovered": the workload's spec.replicas, 1 for a target that is not replicated."""
    found = _workload(cluster, engine, namespace)
    workload = found[2] if found else None
    return cast(int, ((workload or {}).get("spec") or {}).get("replicas", 1))
