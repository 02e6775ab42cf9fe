"""The safety policy: what any stage lets through (chaos-suggest, chaos-litmus and chaos-watch all check it).

Loaded from --policy FILE (YAML or JSON, schema SafetyPolicy) over the defaults below; violations are
PolicyViolation errors that name the rule. chaos-suggest's planner calls violations() on every candidate and
skips the ones that break a rule; every stage that reads a plan calls enforce_plan() on it.

The rules (the names PolicyViolation.rule carries):

- denied-namespace: the target or any namespace of the blast radius is in denied_namespaces.
- namespace-not-allowed: allowed_namespaces is set and a namespace of the experiment is not in it.
- fault-not-allowed: the fault type is not in allowed_faults.
- target-mismatch: target.workload is not `<namespace>/<kind>/<name>` of the target's own fields.
- unknown-target: the target does not exist in the Topology (checked when the known workload ids are given).
- blast-radius-target: blast_radius.workloads does not list the target itself.
- unsupported-target-kind: Litmus cannot aim the fault at the target's kind (the catalogue's Fault.target_kinds:
  the ChaosEngine CRD accepts deployment, statefulset and daemonset; ReplicaSet, Job, CronJob and bare Pods have
  no kind Litmus selects them by).
- node-drain-needs-nodes: a node-drain without target.node (Litmus would drain the node of a random pod carrying
  the first label) or without target.litmus_node, another node where Litmus's own pods run (a drain of their
  node evicts them, and the experiment never finishes).
- max-pods-affected: more than max_pods_affected_percent of the target's pods are affected (a pod-autoscaler that
  scales below the current replicas removes the difference; to 0 it removes every pod). 100% is allowed only
  for a total-loss experiment (blast_radius.total_loss true, a pod-removing fault from the catalogue's
  TOTAL_LOSS_FAULTS, whose hypothesis is that the controller recovers from losing every pod) and only when
  allow_total_loss is true.
- max-duration: parameters.duration is longer than max_duration.
- abort-thresholds-required: require_abort_thresholds is true and the experiment has none.
- abort-window-too-long: an abort threshold's `for` is longer than the chaos duration plus one probe interval, so
  it could never stop the experiment.
- invalid-promql: an abort threshold or steady-state query is not a PromQL expression.
- max-experiments: a plan holds more than max_experiments experiments.

Degradation faults (family degrades: latency, loss, CPU, memory) have bounds of their own, and these let one
affect every pod of a single-replica workload (blast_radius.max_pods 1), which max-pods-affected would refuse:
- max-latency: latency_ms plus jitter_ms exceeds max_latency_ms.
- max-packet-loss: loss_percent exceeds max_packet_loss_percent.
- max-cpu-cores: cpu_cores exceeds max_cpu_cores.
- max-memory: memory_mb exceeds max_memory_mb.
- degradation-unwatched: a degradation of every pod of a single-replica target whose abort thresholds watch none
  of the callers its blast radius names (a query names a workload by its name, promql's service label).
- tier-not-targeted: the target's tier (from the Topology) is not in target_tiers; tier `other` (load generators,
  the observability stack, service discovery) is left out by default.

allow_total_loss defaults to true because the weakest point of most small applications is a single-replica
workload (a database StatefulSet), and any fault on one pod of one replica affects 100% of its pods; the guard is
that only pod-removing faults whose hypothesis declares total loss may use it. Set it to false to keep every
single-replica workload out of reach. allow_single_replica_degradation (default true) is its counterpart for
degradation faults: a slow or lossy database is the test its callers need, and a single replica can be degraded
only whole; the intensity bounds and the callers' abort thresholds are what keep it safe.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import promql_parser

from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import InputRejected, PolicyViolation
from chaosgen.faults import FAULT_TYPES, TOTAL_LOSS_FAULTS, Family, fault_named
from chaosgen.schemas import validate
from chaosgen.units import parse_duration

DEFAULT_POLICY: dict[str, Any] = {
    "denied_namespaces": [
        "kube-system", "kube-public", "kube-node-lease", "litmus", "chaos", "chaos-mesh", "chaos-testing",
        "monitoring", "observability", "prometheus",
    ],
    "allowed_namespaces": None,
    "allowed_faults": list(FAULT_TYPES),
    "max_pods_affected_percent": 50,
    "allow_total_loss": True,
    "max_duration": "10m",
    "require_abort_thresholds": True,
    "max_experiments": 20,
    # Degradation bounds, named as a Litmus or Gremlin user knows them (Litmus defaults: 2000ms, 100%, 1 core).
    "allow_single_replica_degradation": True,
    "max_latency_ms": 2000,
    "max_packet_loss_percent": 50,
    "max_cpu_cores": 2,
    "max_memory_mb": 1024,
    "target_tiers": ["backend", "cache", "database", "frontend", "queue"],
}
# How often Litmus's promProbes poll a threshold (chaos-litmus renders them with it).
PROBE_INTERVAL_SECONDS = 5


def load_policy(path: str | None) -> dict[str, Any]:
    """The effective policy: the defaults, overridden field by field by the --policy file when one is given."""
    if path is None:
        return _normalised(DEFAULT_POLICY)
    source = display_name(path)
    documents = parse_documents(read_bytes(path), source)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InputRejected("a policy file holds one YAML or JSON mapping", source)
    overrides = documents[0]
    validate(overrides, "SafetyPolicy", source)
    overrides = {key: value for key, value in overrides.items() if key not in ("apiVersion", "kind")}
    return _normalised({**DEFAULT_POLICY, **overrides})


def _normalised(policy: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy with its lists sorted and without repeats: plans record it, and must not depend on file order."""
    normalised = copy.deepcopy(policy)
    for key in ("denied_namespaces", "allowed_namespaces", "allowed_faults", "target_tiers"):
        if normalised.get(key) is not None:
            normalised[key] = sorted(set(normalised[key]))
    return normalised


def namespace_violations(namespaces: set[str], policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The (rule, message) pairs for namespaces the policy keeps chaos out of; the planner asks this per target."""
    # Compared normalised, so that "kube-system\n" or "Kube-System" is still kube-system.
    namespaces = {_normalised_name(namespace) for namespace in namespaces}
    found = [
        ("denied-namespace", f"namespace {denied} may not be targeted")
        for denied in sorted(namespaces & {_normalised_name(n) for n in policy["denied_namespaces"]})
    ]
    allowed = policy.get("allowed_namespaces")
    if allowed is not None:
        found += [
            ("namespace-not-allowed", f"namespace {outside} is not in allowed_namespaces")
            for outside in sorted(namespaces - {_normalised_name(n) for n in allowed})
        ]
    return found


def _normalised_name(name: str) -> str:
    return name.strip().lower()


def violations(
    experiment: dict[str, Any], policy: dict[str, Any], known_workloads: set[str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> list[tuple[str, str]]:
    """Every (rule, message) the experiment breaks; known_workloads, when given, are the ids that exist, and
    replicas (workload id -> current replicas, from the Topology) tell what a scale-down removes."""
    target = experiment.get("target", {})
    namespace = target.get("namespace", "")
    fault = experiment.get("fault", {}).get("type")
    parameters = experiment.get("parameters", {})
    blast = experiment.get("blast_radius", {})

    found = namespace_violations({namespace, *blast.get("namespaces", [])} - {""}, policy)
    if fault not in policy["allowed_faults"]:
        found.append(("fault-not-allowed", f"fault {fault} is not in allowed_faults"))

    workload = target.get("workload")
    expected_id = f"{namespace}/{target.get('kind')}/{target.get('name')}"
    if workload != expected_id:
        found.append(("target-mismatch", f"target.workload {workload} is not {expected_id}"))
    if known_workloads is not None and workload not in known_workloads:
        found.append(("unknown-target", f"workload {workload} does not exist in the topology"))
    if "workloads" in blast and workload not in blast["workloads"]:
        found.append(("blast-radius-target", f"blast_radius.workloads does not list the target {workload}"))
    found += _target_kind_violations(fault, target)

    current = replicas.get(workload) if replicas is not None and isinstance(workload, str) else None
    percent = max(
        parameters.get("pods_affected_percent", 0), blast.get("pods_affected_percent", 0),
        scaled_away_percent(parameters.get("replica_count"), current) if fault == "pod-autoscaler" else 0,
    )
    found += pods_affected_violations(percent, fault, blast, policy)
    found += degradation_violations(experiment, policy)

    duration = parameters.get("duration")
    if duration is not None and parse_duration(duration) > parse_duration(policy["max_duration"]):
        found.append(("max-duration", f"duration {duration} exceeds {policy['max_duration']}"))
    if policy["require_abort_thresholds"] and not experiment.get("abort_thresholds"):
        found.append(("abort-thresholds-required", "an experiment needs at least one abort threshold"))
    found += _threshold_violations(experiment)
    return found


def _target_kind_violations(fault: str | None, target: dict[str, Any]) -> list[tuple[str, str]]:
    """What Litmus cannot aim this fault at: a kind its ChaosEngine has no selector for, a drain without its nodes."""
    if fault not in FAULT_TYPES:
        return []
    record, kind = fault_named(fault), target.get("kind")
    found = []
    if kind not in record.target_kinds:
        found.append(("unsupported-target-kind",
                      f"Litmus cannot aim {fault} at a {kind}; it targets {', '.join(record.target_kinds)}"))
    if record.family is Family.NODE:
        node, litmus_node = target.get("node"), target.get("litmus_node")
        if not node or not litmus_node or node == litmus_node:
            found.append(("node-drain-needs-nodes",
                          "node-drain needs target.node, the node to drain, and target.litmus_node, another node for "
                          "Litmus's own pods (known only from a live inventory): without them Litmus drains the node of a "
                          "random pod and may evict itself"))
    return found


def scaled_away_percent(replica_count: int | None, current: int | None) -> int:
    """The share of the target's pods a pod-autoscaler to replica_count removes: all of them at 0, the difference
    when the Topology's current replicas are known and more, none when it scales up (or nothing is known)."""
    if replica_count is None:
        return 0
    if replica_count == 0:
        return 100
    if current is None or replica_count >= current:
        return 0
    return -(-(current - replica_count) * 100 // current)


def abort_window_limit(duration: str) -> float:
    """The longest `for` an abort threshold may have: a probe only watches while the chaos lasts (and one poll)."""
    return parse_duration(duration) + PROBE_INTERVAL_SECONDS


def promql_problem(query: str) -> str | None:
    """Why a query is not one PromQL expression (the parser's words), or None when it is."""
    if any(ord(char) < 32 or ord(char) == 127 for char in query):
        return "it holds a control character"
    try:
        promql_parser.parse(query)
    except ValueError as e:
        return " ".join(str(e).split())[:200] or "it does not parse"
    return None


def _threshold_violations(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    duration = experiment.get("parameters", {}).get("duration")
    limit = abort_window_limit(duration) if duration is not None else math.inf
    for threshold in experiment.get("abort_thresholds", []):
        if parse_duration(threshold["for"]) > limit:
            found.append((
                "abort-window-too-long",
                f"abort threshold {threshold['name']} waits {threshold['for']}, longer than the {duration} of chaos"
                f" plus a {PROBE_INTERVAL_SECONDS}s probe interval: it could never abort",
            ))
    queries = [(f"abort threshold {t['name']}", t["query"]) for t in experiment.get("abort_thresholds", [])]
    queries += [(f"steady-state check {c['name']}", c["query"]) for c in experiment.get("steady_state", []) if "query" in c]
    for where, query in queries:
        problem = promql_problem(query)
        if problem is not None:
            found.append(("invalid-promql", f"the query of {where} is not PromQL: {problem}"))
    return found


def pods_affected_violations(percent: int, fault: str | None, blast: dict[str, Any], policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The max-pods-affected rule, for an experiment's parameters here and for an engine's env in chaos-watch."""
    total_loss_allowed = (
        percent == 100 and policy["allow_total_loss"] and blast.get("total_loss") is True and fault in TOTAL_LOSS_FAULTS
    )
    if percent <= policy["max_pods_affected_percent"] or total_loss_allowed or _whole_single_replica_degraded(fault, blast, policy):
        return []
    return [("max-pods-affected", _too_many_pods(percent, fault, blast, policy))]


def _too_many_pods(percent: int, fault: str | None, blast: dict[str, Any], policy: dict[str, Any]) -> str:
    message = f"{percent}% of pods affected exceeds {policy['max_pods_affected_percent']}%"
    if percent < 100:
        return message
    if _degrades(fault) and blast.get("total_loss") is not True:
        if not policy["allow_single_replica_degradation"]:
            return message + " and allow_single_replica_degradation is false"
        return message + " (a degradation may take every pod only of a single-replica target: blast_radius.max_pods 1)"
    if not policy["allow_total_loss"]:
        return message + " and allow_total_loss is false"
    if fault not in TOTAL_LOSS_FAULTS:
        return message + f" (total loss is allowed only for {', '.join(TOTAL_LOSS_FAULTS)}, not {fault})"
    if blast.get("total_loss") is not True:
        return message + " (100% needs blast_radius.total_loss: a hypothesis of recovery from total loss)"
    return message


# --- degradation faults: intensity bounds, whole single replicas, target tiers ---

# (parameter, policy bound, rule, unit); latency adds its jitter, the worst delay Litmus may apply.
_INTENSITY_BOUNDS = (
    ("latency_ms", "max_latency_ms", "max-latency", "ms"),
    ("loss_percent", "max_packet_loss_percent", "max-packet-loss", "%"),
    ("cpu_cores", "max_cpu_cores", "max-cpu-cores", " cores"),
    ("memory_mb", "max_memory_mb", "max-memory", " MiB"),
)


def _degrades(fault: str | None) -> bool:
    return fault in FAULT_TYPES and fault_named(fault).family is Family.DEGRADES


def _whole_single_replica_degraded(fault: str | None, blast: dict[str, Any], policy: dict[str, Any]) -> bool:
    """A degradation of the only pod there is: allowed by allow_single_replica_degradation, bounded elsewhere."""
    return _degrades(fault) and policy["allow_single_replica_degradation"] and blast.get("max_pods") == 1


def degradation_violations(experiment: dict[str, Any], policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The intensity bounds of any experiment, and for a whole single replica degraded, that its abort thresholds
    watch the callers its blast radius names. Called by violations(), so every stage and the LLM guard apply it."""
    parameters = experiment.get("parameters", {})
    found = []
    for parameter, bound, rule, unit in _INTENSITY_BOUNDS:
        value = parameters.get(parameter)
        if not isinstance(value, int):
            continue
        jitter = parameters.get("jitter_ms", 0) if parameter == "latency_ms" else 0
        if value + jitter > policy[bound]:
            what = f"{parameter} {value}" + (f" + jitter_ms {jitter}" if jitter else "")
            found.append((rule, f"{what} exceeds {bound} {policy[bound]}{unit}"))
    fault = experiment.get("fault", {}).get("type")
    blast = experiment.get("blast_radius", {})
    target = experiment.get("target", {}).get("workload")
    if _whole_single_replica_degraded(fault, blast, policy) and blast.get("pods_affected_percent") == 100:
        callers = [w.rpartition("/")[2] for w in blast.get("workloads", []) if w != target]
        queries = " ".join(str(t.get("query", "")) for t in experiment.get("abort_thresholds", []))
        # A caller's name as a label value, in either of PromQL's string quotes.
        if callers and not any(f'"{name}"' in queries or f"'{name}'" in queries for name in callers):
            found.append(("degradation-unwatched", f"{fault} on every pod of {target} needs an abort threshold on "
                                                   f"one of its callers {', '.join(callers[:3])}"))
    return found


def tier_violations(tier: str, policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The tier-not-targeted rule, for the planner and the LLM guard, which know the target's tier."""
    if tier in policy["target_tiers"]:
        return []
    return [("tier-not-targeted", f"tier {tier} is not in target_tiers ({', '.join(policy['target_tiers'])})")]


def enforce(experiment: dict[str, Any], policy: dict[str, Any], source: str, path: str, known_workloads: set[str] | None = None) -> None:
    """Raise PolicyViolation for the first rule the experiment breaks."""
    for rule, message in violations(experiment, policy, known_workloads):
        raise PolicyViolation(rule, message, source, path)


def enforce_plan(experiments: list[dict[str, Any]], policy: dict[str, Any], source: str, known_workloads: set[str] | None = None) -> None:
    """Raise PolicyViolation for the first rule a plan's experiments break, at $.experiments[i].

    Called by chaos-suggest on the plan it is about to write and by every later stage on the plan it reads.
    """
    if len(experiments) > policy["max_experiments"]:
        raise PolicyViolation(
            "max-experiments", f"{len(experiments)} experiments exceed {policy['max_experiments']}", source, "$.experiments"
        )
    for index, experiment in enumerate(experiments):
        enforce(experiment, policy, source, f"$.experiments[{index}]", known_workloads)
