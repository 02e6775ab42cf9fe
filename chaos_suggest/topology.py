"""Lookups over one Topology that the built-in planner and the LLM guard share (no I/O).

TopologyIndex answers who calls whom; label_selector and app_containers read one workload's facts.
"""

from __future__ import annotations

from typing import Any, cast

# Roles (chaos-inventory's tier `other` workloads) whose dependencies a run must not break.
WATCHER_ROLES = ("observability", "chaos-engine")


class TopologyIndex:
    """Lookups over one Topology, built once in O(workloads + dependencies): workloads by id, callers by callee."""

    def __init__(self, topology: dict[str, Any]) -> None:
        self.workloads: dict[str, dict[str, Any]] = {w["id"]: w for w in topology["workloads"]}
        self.edges_into: dict[str, list[dict[str, Any]]] = {}
        for edge in topology["dependencies"]:
            known = edge["to"] in self.workloads and edge["from"] in self.workloads
            if known and not edge["external"] and edge["from"] != edge["to"]:
                self.edges_into.setdefault(edge["to"], []).append(edge)
        for edges in self.edges_into.values():
            edges.sort(key=lambda e: (-self.criticality(e["from"]), e["from"]))
        self.callers = {callee: list(dict.fromkeys(e["from"] for e in edges)) for callee, edges in self.edges_into.items()}
        self.served = {wid for service in topology["services"] for wid in service["selects"]}
        self._upstream: dict[str, list[str]] = {}
        # chaos-inventory --prometheus-url's record; None for a Topology read from configuration only.
        self.telemetry: dict[str, Any] | None = topology.get("telemetry")
        self.watchers_need = self._needed_by_watchers(topology["dependencies"])
        # How many workloads of a namespace carry each label: first_label_selector asks it per candidate.
        self.label_counts: dict[tuple[str, str, str], int] = {}
        for workload in self.workloads.values():
            for key, value in workload["labels"].items():
                label = (workload["namespace"], key, value)
                self.label_counts[label] = self.label_counts.get(label, 0) + 1

    def _needed_by_watchers(self, dependencies: list[dict[str, Any]]) -> dict[str, str]:
        """Workloads the run's own observability or chaos engine depends on, directly or not, each with the one
        that needs it: chaos there would blind the abort watcher or stop the engine."""
        calls: dict[str, list[str]] = {}
        for edge in dependencies:
            if not edge["external"] and edge["to"] in self.workloads:
                calls.setdefault(edge["from"], []).append(edge["to"])
        needed: dict[str, str] = {}
        for watcher in sorted(w for w, record in self.workloads.items() if record.get("role") in WATCHER_ROLES):
            stack = list(calls.get(watcher, []))
            while stack:
                callee = stack.pop()
                if callee not in needed and callee != watcher:
                    needed[callee] = watcher
                    stack.extend(calls.get(callee, []))
        return needed

    def on_node(self, node: str) -> list[str]:
        """Workloads with a pod on the node (runtime facts of a live inventory), but DaemonSets, which a drain
        leaves in place; sorted."""
        return sorted(wid for wid, w in self.workloads.items()
                      if w["kind"] != "DaemonSet" and node in (w.get("runtime", {}).get("nodes") or []))

    def criticality(self, workload_id: str) -> int:
        return cast(int, self.workloads[workload_id]["criticality"]["score"])

    def families(self, workload_id: str) -> list[str]:
        """The metric families whose series name this workload (empty without telemetry)."""
        return list(self.workloads[workload_id].get("telemetry", []))

    def observed_families(self, caller: str, callee: str) -> set[str]:
        """The families whose traffic evidence shows caller -> callee carrying requests in the telemetry window."""
        return {
            evidence["source"] for edge in self.edges_into.get(callee, []) if edge["from"] == caller
            for evidence in edge["evidence"] if isinstance(evidence, dict) and evidence["requests"] > 0
        }

    def direct_callers(self, workload_id: str) -> list[str]:
        """Workloads that call this one, most critical first (each once)."""
        return self.callers.get(workload_id, [])

    def transitive_callers(self, workload_id: str) -> list[str]:
        """Every workload that depends on this one directly or through others, sorted; memoised per workload."""
        if workload_id not in self._upstream:
            seen: set[str] = set()
            stack = [workload_id]
            while stack:
                for caller in self.direct_callers(stack.pop()):
                    if caller not in seen and caller != workload_id:
                        seen.add(caller)
                        stack.append(caller)
            self._upstream[workload_id] = sorted(seen)
        return self._upstream[workload_id]


def label_selector(workload: dict[str, Any]) -> str:
    """The equality selector of a workload's pods: its matchLabels, else its pod-template labels."""
    selector = workload["selector"] or workload["labels"]
    return ",".join(f"{key}={selector[key]}" for key in sorted(selector))


def first_label_selector(workload: dict[str, Any], index: TopologyIndex) -> str | None:
    """The workload's selector with a label that no other workload of its namespace carries first, for the faults
    Litmus aims by the first label only (node-drain, pod-autoscaler); None when no label of it is unique."""
    pairs = label_selector(workload).split(",")

    def carried_by_another(pair: str) -> bool:
        key, value = pair.split("=", 1)
        own = 1 if workload["labels"].get(key) == value else 0
        return index.label_counts.get((workload["namespace"], key, value), 0) > own

    unique = next((pair for pair in pairs if not carried_by_another(pair)), None)
    return None if unique is None else ",".join([unique, *(p for p in pairs if p != unique)])


def app_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The workload's containers but its init containers."""
    return [c for c in workload.get("containers", []) if not c.get("init")]
