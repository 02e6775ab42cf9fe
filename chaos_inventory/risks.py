"""How critical each workload is (who depends on it, its tier, replicas, protection) and the risks its spec shows."""

from __future__ import annotations

from chaos_inventory.model import CONTROLLER_KINDS, DATA_TIERS, Container, Workload
from chaos_inventory.runtime import runtime_risks


def direct_callers(dependencies: list[dict]) -> dict[str, int]:
    callers: dict[str, set[str]] = {}
    for dependency in dependencies:
        if not dependency["external"]:
            callers.setdefault(dependency["to"], set()).add(dependency["from"])
    return {target: len(sources) for target, sources in callers.items()}


def transitive_callers(workloads: list[Workload], dependencies: list[dict]) -> dict[str, int]:
    """How many workloads reach each one through internal edges, as bitsets over strongly connected components."""
    index = {w.id: i for i, w in enumerate(workloads)}
    successors: list[list[int]] = [[] for _ in workloads]
    for dependency in dependencies:
        if not dependency["external"]:
            successors[index[dependency["from"]]].append(index[dependency["to"]])
    components = _strongly_connected(successors)
    component_of = {}
    for number, members in enumerate(components):
        for member in members:
            component_of[member] = number
    # Tarjan emits components callee-first; walking them in reverse visits every caller before its callees.
    reached_by = [0] * len(components)
    for number in range(len(components) - 1, -1, -1):
        members = components[number]
        own = 0
        for member in members:
            own |= 1 << member
        inherited = reached_by[number] | (own if len(members) > 1 else 0)
        for member in members:
            for successor in successors[member]:
                target = component_of[successor]
                if target != number:
                    reached_by[target] |= inherited | own
        reached_by[number] = inherited
    result = {}
    for workload_id, i in index.items():
        count = bin(reached_by[component_of[i]] & ~(1 << i)).count("1")
        if count:
            result[workload_id] = count
    return result


def _strongly_connected(successors: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm without recursion (thousands of workloads would overflow the stack)."""
    counter, indices, lowlinks, on_stack, stack, components = 0, {}, {}, set(), [], []
    for root in range(len(successors)):
        if root in indices:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                indices[node] = lowlinks[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if child < len(successors[node]):
                work.append((node, child + 1))
                successor = successors[node][child]
                if successor not in indices:
                    work.append((successor, 0))
                elif successor in on_stack:
                    lowlinks[node] = min(lowlinks[node], indices[successor])
                continue
            if lowlinks[node] == indices[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                lowlinks[parent] = min(lowlinks[parent], lowlinks[node])
    return components


_TIER_WEIGHT = {"database": 25, "queue": 20, "cache": 15, "frontend": 15, "backend": 10, "other": 0}


def criticality(workload: Workload, transitive: int, direct: int, stateful: bool) -> dict:
    score, reasons = 0, []
    if transitive:
        score += min(45, 12 * direct + 6 * (transitive - direct))
        reasons.append(f"{transitive} workload{'s' if transitive != 1 else ''} depend on it ({direct} directly)")
    score += _TIER_WEIGHT[workload.tier]
    reasons.append(f"tier {workload.tier}")
    if any(s.exposed for s in workload.services):
        score += 10
        reasons.append("exposed outside the cluster")
    if workload.kind in CONTROLLER_KINDS or workload.kind == "Pod":
        if workload.replicas <= 1:
            score += 15
            reasons.append("single replica")
        elif workload.replicas == 2:
            score += 5
            reasons.append("only 2 replicas")
        if workload.pdb is None:
            score += 5
            reasons.append("no PodDisruptionBudget")
        if workload.hpa is None:
            score += 5
            reasons.append("no HorizontalPodAutoscaler")
    if stateful:
        score += 10
        reasons.append("stateful")
    return {"score": min(100, score), "reasons": reasons}


def workload_risks(workload: Workload, stateful: bool, persistent: bool, direct: int) -> list[dict]:
    risks = []

    def add(risk_id: str, severity: str, message: str) -> None:
        risks.append({"id": risk_id, "severity": severity, "message": message})

    kind, replicas, app = workload.kind, workload.replicas, workload.app_containers
    long_running = kind not in ("Job", "CronJob")
    if (kind in CONTROLLER_KINDS or kind == "Pod") and replicas <= 1:
        severity = "high" if workload.tier in DATA_TIERS or direct else "medium"
        what = "a bare Pod: nothing recreates it" if kind == "Pod" else f"{replicas} replica"
        add("single-replica", severity, f"{what}; losing one pod takes {workload.name} down")
    if long_running:
        missing = [c.name for c in app if "readinessProbe" not in c.spec]
        if missing:
            add("no-readiness-probe", "medium",
                f"no readinessProbe on {', '.join(missing)}: traffic reaches pods before they are ready")
        missing = [c.name for c in app if "livenessProbe" not in c.spec]
        if missing:
            add("no-liveness-probe", "low",
                f"no livenessProbe on {', '.join(missing)}: a hung process is not restarted")
    for risk_id, section in (("no-resource-requests", "requests"), ("no-resource-limits", "limits")):
        missing = [c.name for c in app if not container_resources(c).get(section)]
        if missing:
            add(risk_id, "medium", f"no resource {section} on {', '.join(missing)}")
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        if workload.pdb is None:
            add("no-pdb", "medium" if replicas > 1 else "low",
                "no PodDisruptionBudget: a node drain may evict every pod at once")
        elif _pdb_blocks_eviction(workload.pdb["spec"], replicas):
            add("pdb-blocks-eviction", "medium",
                f"PodDisruptionBudget {workload.pdb['name']} allows no voluntary eviction: node drains hang")
    if workload.hpa is not None and workload.hpa["spec"].get("minReplicas", 1) <= 1:
        add("hpa-min-replicas-1", "medium",
            f"HorizontalPodAutoscaler {workload.hpa['name']} may scale down to 1 replica")
    untagged = [c.image for c in workload.containers if _untagged(c.image)]
    if untagged:
        add("image-latest-or-untagged", "medium", f"image {', '.join(sorted(set(untagged)))} has no fixed tag")
    if replicas > 1 and long_running and not _spreads(workload.pod_spec):
        add("no-anti-affinity", "medium",
            f"{replicas} replicas without podAntiAffinity or topologySpreadConstraints may share one node")
    if stateful and workload.tier in ("database", "queue") and not persistent:
        empty_dirs = sorted(str(v.get("name")) for v in workload.volumes if "emptyDir" in v)
        where = "the container filesystem"
        if empty_dirs:
            where = f"emptyDir volume {', '.join(empty_dirs)} and {where}"
        add("stateful-data-on-emptydir", "high",
            f"a {workload.tier} without a persistent volume keeps its data on {where}: deleting the pod loses it")
    if workload.runtime is not None:
        risks.extend(runtime_risks(workload, workload.runtime))
    return sorted(risks, key=lambda r: r["id"])


def container_resources(container: Container) -> dict:
    resources = container.spec.get("resources")
    return resources if isinstance(resources, dict) else {}


def _pdb_blocks_eviction(spec: dict, replicas: int) -> bool:
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        return max_unavailable in (0, "0%", "0")
    if isinstance(min_available, int) and not isinstance(min_available, bool):
        return min_available >= replicas
    return min_available == "100%"


def _untagged(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rpartition("/")[2]
    return ":" not in last or last.endswith(":latest")


def _spreads(pod_spec: dict) -> bool:
    affinity = pod_spec.get("affinity")
    return bool(pod_spec.get("topologySpreadConstraints")) or (
        isinstance(affinity, dict) and bool(affinity.get("podAntiAffinity")))
