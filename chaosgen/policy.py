"""The safety policy: what any stage lets through (chaos-suggest, chaos-litmus and chaos-watch all check it).

Loaded from --policy FILE (YAML or JSON, schema SafetyPolicy) over the defaults below; violations are
PolicyViolation errors that name the rule.
"""

from __future__ import annotations

from typing import Any

from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import InputRejected, PolicyViolation
from chaosgen.schemas import validate
from chaosgen.units import parse_duration

FAULT_TYPES = (
    "pod-delete", "container-kill", "pod-cpu-hog", "pod-memory-hog", "pod-network-latency", "pod-network-loss",
    "node-drain", "pod-autoscaler",
)

DEFAULT_POLICY: dict[str, Any] = {
    "denied_namespaces": [
        "kube-system", "kube-public", "kube-node-lease", "litmus", "chaos", "chaos-mesh", "chaos-testing",
        "monitoring", "observability", "prometheus",
    ],
    "allowed_namespaces": None,
    "allowed_faults": list(FAULT_TYPES),
    "max_pods_affected_percent": 50,
    "allow_total_loss": False,
    "max_duration": "10m",
    "require_abort_thresholds": True,
    "max_experiments": 20,
}


def load_policy(path: str | None) -> dict[str, Any]:
    """The effective policy: the defaults, overridden field by field by the --policy file when one is given."""
    if path is None:
        return dict(DEFAULT_POLICY)
    source = display_name(path)
    documents = parse_documents(read_bytes(path), source)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InputRejected("a policy file holds one YAML or JSON mapping", source)
    overrides = documents[0]
    validate(overrides, "SafetyPolicy", source)
    overrides = {key: value for key, value in overrides.items() if key not in ("apiVersion", "kind")}
    return {**DEFAULT_POLICY, **overrides}


def violations(experiment: dict[str, Any], policy: dict[str, Any], known_workloads: set[str] | None = None) -> list[tuple[str, str]]:
    """Every (rule, message) the experiment breaks; known_workloads, when given, are the ids that exist."""
    found: list[tuple[str, str]] = []
    target = experiment.get("target", {})
    namespace = target.get("namespace", "")
    fault = experiment.get("fault", {}).get("type")
    parameters = experiment.get("parameters", {})
    blast = experiment.get("blast_radius", {})

    namespaces = {namespace, *blast.get("namespaces", [])} - {""}
    for denied in sorted(namespaces & set(policy["denied_namespaces"])):
        found.append(("denied-namespace", f"namespace {denied} may not be targeted"))
    allowed = policy.get("allowed_namespaces")
    if allowed is not None:
        for outside in sorted(namespaces - set(allowed)):
            found.append(("namespace-not-allowed", f"namespace {outside} is not in allowed_namespaces"))
    if fault not in policy["allowed_faults"]:
        found.append(("fault-not-allowed", f"fault {fault} is not in allowed_faults"))

    expected_id = f"{namespace}/{target.get('kind')}/{target.get('name')}"
    if target.get("workload") != expected_id:
        found.append(("target-mismatch", f"target.workload {target.get('workload')} is not {expected_id}"))
    if known_workloads is not None and target.get("workload") not in known_workloads:
        found.append(("unknown-target", f"workload {target.get('workload')} does not exist in the topology"))

    percent = max(parameters.get("pods_affected_percent", 0), blast.get("pods_affected_percent", 0))
    if percent > policy["max_pods_affected_percent"]:
        total_loss_allowed = percent == 100 and policy["allow_total_loss"] and blast.get("total_loss") is True
        if not total_loss_allowed:
            found.append((
                "max-pods-affected",
                f"{percent}% of pods affected exceeds {policy['max_pods_affected_percent']}%"
                + (" (100% needs allow_total_loss and a total-loss hypothesis)" if percent == 100 else ""),
            ))

    duration = parameters.get("duration")
    if duration is not None and parse_duration(duration) > parse_duration(policy["max_duration"]):
        found.append(("max-duration", f"duration {duration} exceeds {policy['max_duration']}"))
    if policy["require_abort_thresholds"] and not experiment.get("abort_thresholds"):
        found.append(("abort-thresholds-required", "an experiment needs at least one abort threshold"))
    return found


def enforce(experiment: dict[str, Any], policy: dict[str, Any], source: str, path: str, known_workloads: set[str] | None = None) -> None:
    """Raise PolicyViolation for the first rule the experiment breaks."""
    for rule, message in violations(experiment, policy, known_workloads):
        raise PolicyViolation(rule, message, source, path)
