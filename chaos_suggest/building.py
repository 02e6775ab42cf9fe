"""The built-in planner's second half: one chosen candidate built into a complete experiment (no I/O).

planner.select calls build_experiment. The fault's parameters come from the fault catalogue (chaosgen.faults):
its defaults, except where the weakness (duration, interval) or the target (pods affected, container, replica
count) decides. The texts tell the hypothesis of each weakness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from chaos_suggest import promql
from chaos_suggest.topology import TopologyIndex, app_containers, first_label_selector, label_selector
from chaos_suggest.weaknesses import DATA_TIERS, Candidate, Weakness
from chaosgen.faults import Family, Fault, fault_named
from chaosgen.policy import abort_window_limit
from chaosgen.units import format_duration, parse_duration

WATCHED_CALLERS = 3
CITED_EDGES = 10


@dataclass(frozen=True)
class Shape:
    """What a target looks like to an experiment: its pods, its callers and the services to watch."""

    workload: dict[str, Any]
    replicas: int
    affected: int
    requested_percent: int
    actual_percent: int
    callers: list[str]
    watched: list[Watch]
    unwatched: list[dict[str, Any]]  # callers (or the target) whose requests no metric family measures
    colocated: list[str]  # node-drain: the other workloads with a pod on the drained node


def _shape(index: TopologyIndex, candidate: Candidate, fault: Fault, policy: dict[str, Any]) -> Shape:
    workload = index.workloads[candidate.workload_id]
    replicas = workload["replicas"]
    nodes = len(set(workload.get("runtime", {}).get("nodes") or []))
    if fault.family is Family.CAPACITY:
        requested = 0  # it adds pods and touches none of the running ones
    elif fault.takes_pods_away and replicas == 1:
        requested = 100
    elif fault.family is Family.NODE:
        # Every other node the replicas run on keeps at least one of them: that many are never on the drained one.
        requested = -(-(replicas - max(nodes - 1, 0)) * 100 // replicas)
    elif fault.family is Family.DEGRADES and replicas == 1 and policy["allow_single_replica_degradation"]:
        requested = 100  # the only pod, within the policy's intensity bounds, watched through its callers
    else:
        requested = min(50, policy["max_pods_affected_percent"])
    # Litmus picks max(1, floor(percent * pods / 100)) pods; the blast radius states what that really is.
    if fault.family is Family.NODE:
        affected = replicas - max(nodes - 1, 0)
    else:
        affected = replicas if requested == 100 else 0 if requested == 0 else max(1, replicas * requested // 100)
    actual = -(-affected * 100 // replicas)
    callers = index.direct_callers(candidate.workload_id)[:WATCHED_CALLERS]
    pairs = _watched_pairs(index, candidate.workload_id)
    colocated: list[str] = []
    if fault.family is Family.NODE:
        # The drain evicts their pods too: their callers are watched as well, so that their errors abort the run
        # and are not blamed on the target.
        colocated = [wid for wid in index.on_node(_drained_node(workload)) if wid != candidate.workload_id]
        seen = {caller for caller, _ in pairs}
        for wid in colocated:
            for caller in index.direct_callers(wid):
                if caller not in seen and len(pairs) < len(callers) + WATCHED_CALLERS:
                    seen.add(caller)
                    pairs.append((caller, wid))
    watched, unwatched = watches(index, pairs)
    return Shape(workload, replicas, affected, requested, actual, callers, watched, unwatched, colocated)


def _drained_node(workload: dict[str, Any]) -> str:
    """The node a node-drain empties: the first of the target's nodes (the planner drains only targets seen on
    two nodes or more, so the second one is left for Litmus's own pods)."""
    return cast(str, sorted(workload.get("runtime", {}).get("nodes") or [""])[0])


@dataclass(frozen=True)
class Watch:
    """A workload whose requests an experiment watches, and the metric family that measures them."""

    workload: dict[str, Any]
    family: str
    callee: dict[str, Any]  # whose calls are watched: the target, or for a node-drain a workload evicted with it


def _watched_pairs(index: TopologyIndex, target_id: str) -> list[tuple[str, str]]:
    """(watched, callee) pairs: the target's first callers, or the target itself when it has none but serves."""
    callers = index.direct_callers(target_id)[:WATCHED_CALLERS]
    return [(watched_id, target_id) for watched_id in callers or ([target_id] if target_id in index.served else [])]


def watches(index: TopologyIndex, pairs: list[tuple[str, str]]) -> tuple[list[Watch], list[dict[str, Any]]]:
    """(watched, unwatched): each watched workload with the family that measures its calls to its callee;
    unwatched are those no family covers.

    Without telemetry in the Topology every one is watched through the app convention, as it always was. With it,
    an edge family (Istio, Linkerd, servicegraph) is used where it showed traffic on caller -> callee, else the app
    convention where its series name the watched workload, else nothing: a threshold on series that do not exist
    could never fire."""
    watched: list[Watch] = []
    unwatched: list[dict[str, Any]] = []
    for watched_id, callee_id in pairs:
        family: str | None = "app"
        if index.telemetry is not None:
            observed = index.observed_families(watched_id, callee_id)
            edge = [f for f in promql.EDGE_FAMILIES if f in observed]
            family = edge[0] if edge else "app" if "app" in index.families(watched_id) else None
        if family is None:
            unwatched.append(index.workloads[watched_id])
        else:
            watched.append(Watch(index.workloads[watched_id], family, index.workloads[callee_id]))
    return watched, unwatched


def telemetry_gap(index: TopologyIndex, target_id: str) -> str | None:
    """The rationale's (and the planner's warning's) sentence on whose requests no telemetry measures, or None."""
    _, unwatched = watches(index, _watched_pairs(index, target_id))
    if not unwatched:
        return None
    names = ", ".join(w["id"] for w in unwatched)
    families = ", ".join(sorted((index.telemetry or {}).get("families", {}))) or "none"
    return (f"No request telemetry measures {names} (families in Prometheus: {families}): its requests have no "
            f"abort threshold and {target_id} is watched through its replicas only.")


def build_experiment(index: TopologyIndex, candidate: Candidate, policy: dict[str, Any]) -> dict[str, Any]:
    """A complete ExperimentPlan experiment but for id and rank, which core.number_experiments adds."""
    fault = fault_named(candidate.weakness.fault)
    shape = _shape(index, candidate, fault, policy)
    workload = shape.workload
    text = TEXTS[candidate.weakness.key]
    recovery = _expected_recovery(candidate.weakness, fault, workload)
    duration = _clamped(text.duration_seconds, policy)
    parameters = _parameters(fault, shape, duration, text)
    total_loss = fault.takes_pods_away and shape.actual_percent == 100
    facts = _facts(shape, duration, recovery, parameters)
    gap = telemetry_gap(index, workload["id"])
    experiment: dict[str, Any] = {
        "title": text.title.format(**facts),
        "hypothesis": text.hypothesis.format(**facts) + _error_clause(shape),
        "generator": "builtin",
        "target": _target(index, workload, fault),
        "fault": {"type": fault.name},
        "parameters": parameters,
        "blast_radius": _blast_radius(index, shape, fault),
        "abort_thresholds": _abort_thresholds(index, shape, fault, recovery, total_loss, duration),
        "steady_state": _steady_state(index, shape),
        "expected_recovery_seconds": recovery,
        "rationale": {
            "summary": text.summary.format(**facts) + (f" {gap}" if gap else ""),
            "risks": candidate.risks,
            "dependencies": [f"{caller} -> {workload['id']}" for caller in index.direct_callers(workload["id"])[:CITED_EDGES]],
            "criticality": workload["criticality"]["score"],
        },
    }
    if total_loss:
        experiment["blast_radius"]["total_loss"] = True
    return experiment


@dataclass(frozen=True)
class Text:
    title: str
    hypothesis: str
    summary: str
    duration_seconds: int
    interval_seconds: int | None = None


# Placeholders: every parameter of the experiment ({memory_mb}, {cpu_cores}...), and {kind} {name} {affected}
# {replicas} {pods} {duration} {interval} {recovery} {container} {callers} {max_replicas} {available} {hpa}
# {latency_limit}
TEXTS = {
    "single-replica": Text(
        "Delete the only pod of {kind} {name}",
        "When {pods} is deleted, the {kind} controller recreates it and it is ready again within {recovery}s",
        "{kind} {name} runs a single replica: losing its pod is an outage of {name} and of every caller that "
        "needs it, so the test is whether it comes back fast enough and whether its callers tolerate the gap.",
        30, 30,
    ),
    "no-memory-limit": Text(
        "Consume {memory_mb} MiB of memory in {pods}",
        "When {memory_mb} MiB of extra memory is consumed for {duration} in {pods}, which sets no memory "
        "limit, the pods stay ready without OOM kills and {available}",
        "{kind} {name} sets no memory limit, so a leak or a spike in one pod can starve the node and its "
        "neighbours before anything stops it.",
        60,
    ),
    "no-readiness-probe": Text(
        "Kill the {container} container in {pods}",
        "When the {container} container is killed in {pods}, which has no readiness probe, the kubelet "
        "restarts it within {recovery}s although the restarted pod gets traffic before it is ready",
        "{kind} {name} has no readiness probe, so a restarted container is sent requests before it can serve "
        "them; killing its container shows whether clients see those errors.",
        30, 10,
    ),
    "no-anti-affinity": Text(
        "Drain the node that runs pods of {kind} {name}",
        "When the node running pods of {kind} {name} is drained, which has no pod anti-affinity or topology "
        "spread so all {replicas} replicas may share that node, its pods are rescheduled on other nodes and "
        "ready within {recovery}s",
        "{kind} {name} has {replicas} replicas but nothing keeps them on different nodes, so one node going "
        "away can take all of them at once.",
        60,
    ),
    "hpa": Text(
        "Burn {cpu_cores} CPU core in {pods} to trigger its autoscaler",
        "When {cpu_cores} CPU core is burned for {duration} in {pods}, the HorizontalPodAutoscaler {hpa} "
        "scales it out within {recovery}s and {available}",
        "{kind} {name} relies on the HorizontalPodAutoscaler {hpa} to absorb load; a CPU hog shows whether it "
        "scales out in time.",
        120,
    ),
    "no-cpu-limit": Text(
        "Burn {cpu_cores} CPU core in {pods}",
        "When {cpu_cores} CPU core is burned for {duration} in {pods}, which sets no CPU limit, "
        "{available}",
        "{kind} {name} sets no CPU limit, so a busy pod can take CPU from its neighbours on the node.",
        60,
    ),
    "dependency": Text(
        "Add {latency_ms}ms of network latency to {pods}",
        "When {latency_ms}ms of network latency is added for {duration} to {pods}, its callers {callers} keep "
        "a p99 latency below {latency_limit}s",
        "Its callers {callers} depend on {kind} {name}; a slow dependency tests their timeouts and retries.",
        60,
    ),
    "data-store-latency": Text(
        "Slow down {kind} {name} by {latency_ms}ms, as seen by its callers {callers}",
        "When {latency_ms}ms of network latency is added for {duration} to {pods}, a data store that must keep its "
        "pod, its callers {callers} absorb the delay within their timeouts and keep a p99 latency below "
        "{latency_limit}s",
        "Its callers {callers} depend on the data store {kind} {name}; a slow store is the common failure behind slow pages, "
        "and latency keeps its data where a pod-delete would not.",
        60,
    ),
    "data-store-pressure": Text(
        "Burn {cpu_cores} CPU core in {pods}",
        "When {cpu_cores} CPU core is burned for {duration} in {pods}, a data store under CPU pressure, it stays "
        "ready and is not restarted",
        "{kind} {name} is a data store with no known caller to watch; CPU pressure tests it without touching the "
        "data a removed pod would lose.",
        60,
    ),
    "soft-dependency": Text(
        "Drop {loss_percent}% of the packets of {pods}",
        "When {loss_percent}% of the network packets of {pods} are dropped for {duration}, its callers "
        "{callers}, which can serve without it, degrade gracefully instead of failing",
        "{callers} call {kind} {name} but do not strictly need it; an unreliable network to it shows whether "
        "they really cope without it.",
        60,
    ),
    "hpa-capacity": Text(
        "Scale {kind} {name} to its autoscaler maximum of {max_replicas} replicas",
        "When {kind} {name} is scaled from {replicas} to {max_replicas} replicas for {duration}, the cluster "
        "schedules every new pod and all are ready within {recovery}s",
        "The autoscaler of {kind} {name} may grow it to {max_replicas} replicas; whether the cluster has room for "
        "them is only known once they are scheduled.",
        60,
    ),
    "replicated": Text(
        "Delete {pods}",
        "When {pods} is deleted every {interval} for {duration}, {available} "
        "and the {kind} controller replaces the deleted pods within {recovery}s",
        "{kind} {name} has {replicas} replicas; losing some of them must not interrupt service.",
        30, 10,
    ),
}


def _clamped(seconds: int, policy: dict[str, Any]) -> int:
    return int(min(seconds, parse_duration(policy["max_duration"])))


def _max_replicas(workload: dict[str, Any]) -> int:
    return cast(int, workload.get("protection", {}).get("max_replicas") or workload["replicas"])


def _expected_recovery(weakness: Weakness, fault: Fault, workload: dict[str, Any]) -> int:
    """Seconds from the end of the fault until the steady state holds again."""
    if fault.family is Family.NODE or weakness.key in ("hpa", "hpa-capacity"):
        return 120
    if fault.family is Family.REMOVES_PODS:
        slow_start = workload["kind"] == "StatefulSet" or workload["tier"] in DATA_TIERS
        return 60 if slow_start else 30
    return 30


def _container(workload: dict[str, Any]) -> str | None:
    containers = app_containers(workload)
    return containers[0]["name"] if containers else None


def _parameters(fault: Fault, shape: Shape, duration: int, text: Text) -> dict[str, Any]:
    """The fault's parameters: decided per experiment where the weakness or the target says, else the catalogue's
    default; one that stays None (a workload that lists no container) is left to Litmus."""
    decided = {
        "duration": format_duration(duration),
        "interval": None if text.interval_seconds is None else format_duration(min(text.interval_seconds, duration)),
        "pods_affected_percent": shape.requested_percent,
        "container": _container(shape.workload),
        "replica_count": _max_replicas(shape.workload),
    }
    values = {parameter.name: decided.get(parameter.name, parameter.default) for parameter in fault.parameters}
    return {name: value for name, value in values.items() if value is not None}


def _facts(shape: Shape, duration: int, recovery: int, parameters: dict[str, Any]) -> dict[str, Any]:
    """The texts' placeholders: the experiment's parameters and what the target looks like."""
    workload = shape.workload
    return {
        **parameters,
        "kind": workload["kind"],
        "name": workload["name"],
        "affected": shape.affected,
        "replicas": shape.replicas,
        "pods": _pods(shape),
        "duration": format_duration(duration),
        "interval": parameters.get("interval", ""),
        "recovery": recovery,
        "container": parameters.get("container", "main"),
        "callers": ", ".join(w.split("/")[-1] for w in shape.callers) or "none",
        "max_replicas": _max_replicas(workload),
        "latency_limit": f"{promql.P99_LATENCY_LIMIT_SECONDS:g}",
        "available": _available(_min_available(shape)),
        "hpa": workload.get("protection", {}).get("hpa") or "",
    }


def _pods(shape: Shape) -> str:
    what = f"{shape.workload['kind']} {shape.workload['name']}"
    return f"the only pod of {what}" if shape.replicas == 1 else f"{shape.affected} of {shape.replicas} pods of {what}"


def _available(replicas: int) -> str:
    return f"at least {replicas} replica stays available" if replicas == 1 else f"at least {replicas} replicas stay available"


def _min_available(shape: Shape) -> int:
    return max(1, shape.replicas - shape.affected)


def _error_clause(shape: Shape) -> str:
    """The end of every hypothesis: whose error rate stays below the limit, or just the full stop."""
    limit = f"{promql.ERROR_RATE_LIMIT:.0%}"
    if shape.callers and shape.watched:
        names = ", ".join(w.workload["name"] for w in shape.watched)
        return f", and the error rate of its callers {names} stays below {limit}."
    if shape.watched:
        return f", and its own error rate stays below {limit}."
    return "."


def _target(index: TopologyIndex, workload: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """The target; a fault Litmus aims by the first label gets the label unique to the target first (the
    weaknesses drop the ones that have none), a node-drain the node to drain and another one for Litmus."""
    target = {
        "workload": workload["id"],
        "namespace": workload["namespace"],
        "kind": workload["kind"],
        "name": workload["name"],
        "label_selector": (first_label_selector(workload, index) if fault.first_label_only else None) or label_selector(workload),
    }
    nodes = sorted(set(workload.get("runtime", {}).get("nodes", [])))
    if fault.family is Family.NODE and len(nodes) >= 2:
        target["node"], target["litmus_node"] = nodes[0], nodes[1]
    return target


def _blast_radius(index: TopologyIndex, shape: Shape, fault: Fault) -> dict[str, Any]:
    workload_id = shape.workload["id"]
    callers = index.transitive_callers(workload_id)
    upstream = len(callers)
    description = f"{shape.affected} of {shape.replicas} pods of {workload_id}"
    if fault.family is Family.CAPACITY:
        description = f"{workload_id} scaled from {shape.replicas} to {_max_replicas(shape.workload)} replicas; no running pod is touched"
    if fault.family is Family.NODE:
        node = _drained_node(shape.workload)
        if shape.colocated:
            description += f"; the drain also evicts the pods on {node} of {', '.join(shape.colocated)}"
        else:
            description += f"; no other workload of the inventory has a pod on {node} (DaemonSet pods stay)"
        callers = sorted({*callers, *(c for wid in shape.colocated for c in [wid, *index.transitive_callers(wid)])} - {workload_id})
    workloads = [workload_id, *callers]
    namespaces = sorted({index.workloads[w]["namespace"] for w in workloads})
    if shape.callers:
        names = ", ".join(index.workloads[w]["name"] for w in shape.callers)
        more = upstream - len(shape.callers)
        description += f"; its callers {names}{f' and {more} more upstream workload(s)' if more > 0 else ''} may see errors"
    else:
        description += f"; {upstream} upstream workload(s) may see errors" if upstream else "; no known callers"
    return {
        "namespaces": namespaces,
        "workloads": workloads,
        "pods_affected_percent": shape.actual_percent,
        "max_pods": shape.affected,
        "description": description,
    }


def _slug(name: str) -> str:
    """A workload name as a check name, which allows no dots and no double dashes (web--v2.beta -> web-v2-beta)."""
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def _peer(workload: dict[str, Any]) -> promql.Peer:
    # servicegraph's service.name as chaos-inventory matches it when the pod spec sets no OTEL_SERVICE_NAME.
    service = workload["labels"].get("app.kubernetes.io/name") or workload["name"]
    return promql.Peer(workload["namespace"], workload["kind"], workload["name"], service)


def _signals(index: TopologyIndex, watch: Watch, latency: bool) -> list[tuple[str, str, promql.Signal]]:
    """(name suffix, what it measures, signal) of one watched workload: its error rate, and p99 when latency."""
    watched, target = _peer(watch.workload), _peer(watch.callee)
    prefix = promql.servicegraph_prefix(((index.telemetry or {}).get("families", {}).get("servicegraph") or {}).get("metrics", []))
    if watch.family == "app":
        whose = f"of {watch.workload['id']}"
    else:
        whose = f"of the calls {watch.workload['id']} -> {watch.callee['id']} ({watch.family})"
    found = [("error-rate", f"share of 5xx responses {whose}", promql.error_rate(watch.family, watched, target, prefix))]
    if latency:
        found.append(("p99-latency", f"p99 request duration {whose} in seconds",
                      promql.p99_latency(watch.family, watched, target, prefix)))
    return found


def _abort_thresholds(index: TopologyIndex, shape: Shape, fault: Fault, recovery: int, total_loss: bool,
                      duration: int) -> list[dict[str, Any]]:
    workload = shape.workload
    # A promProbe watches only while the chaos lasts: a longer window could never abort (the policy's rule).
    window = int(abort_window_limit(format_duration(duration)))
    limits = {"error-rate": promql.ERROR_RATE_LIMIT, "p99-latency": promql.P99_LATENCY_LIMIT_SECONDS}
    thresholds = []
    for watch in shape.watched:
        # A fault that adds latency is also judged by its callers' p99 latency.
        for suffix, description, signal in _signals(index, watch, fault.accepts("latency_ms")):
            thresholds.append({
                "name": f"{_slug(watch.workload['name'])}-{suffix}",
                "description": description,
                "query": signal.query,
                "series": list(signal.series),
                "operator": ">",
                "value": limits[suffix],
                "for": format_duration(min(30, window)),
            })
    # A total loss is expected to leave no replica for a while; only not coming back in time is a breach.
    floor, grace = (1, recovery + 30) if total_loss else (_min_available(shape), 30)
    replicas = promql.ready_replicas(workload["namespace"], workload["kind"], workload["name"])
    thresholds.append({
        "name": f"{_slug(workload['name'])}-replicas-unavailable",
        "description": f"ready replicas of {workload['id']} (kube-state-metrics)",
        "query": replicas.query,
        "series": list(replicas.series),
        "operator": "<",
        "value": floor,
        "for": format_duration(min(grace, window)),
    })
    return _unique_names(thresholds)


def _unique_names(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Callers of the same name in different namespaces would share a check name; number the repeats."""
    seen: dict[str, int] = {}
    for check in checks:
        base = check["name"]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            check["name"] = f"{base}-{seen[base]}"
    return checks


def _steady_state(index: TopologyIndex, shape: Shape) -> list[dict[str, Any]]:
    workload = shape.workload
    checks: list[dict[str, Any]] = [
        {
            "name": f"{_slug(workload['name'])}-pods-present",
            "type": "k8s",
            "resource": "pods",
            "namespace": workload["namespace"],
            "label_selector": label_selector(workload),
            "operation": "present",
        },
        {
            "name": f"{_slug(workload['name'])}-replicas-ready",
            "type": "prometheus",
            "query": promql.ready_replicas(workload["namespace"], workload["kind"], workload["name"]).query,
            "operator": ">=",
            "value": shape.replicas,
        },
    ]
    for watch in shape.watched:
        _, _, signal = _signals(index, watch, latency=False)[0]
        checks.append({
            "name": f"{_slug(watch.workload['name'])}-error-rate-normal",
            "type": "prometheus",
            "query": signal.query,
            "operator": "<",
            "value": promql.ERROR_RATE_LIMIT,
        })
    return _unique_names(checks)
