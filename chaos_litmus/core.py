"""chaos-litmus core: an ExperimentPlan in, LitmusChaos 3.x manifests out, as plain dicts (no I/O, no exit).

Called by chaos_litmus.cli. check_plan rejects what must never reach a cluster; render builds, in apply order,
the RBAC each fault needs, the ChaosExperiment definitions and one ChaosEngine per experiment.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaosgen import engine_contract
from chaosgen.errors import InputRejected, PolicyViolation
from chaosgen.faults import FAULTS, PARAMETERS, Family, fault_named
from chaosgen.litmus import LITMUS_API_VERSION
from chaosgen.policy import PROBE_INTERVAL_SECONDS, abort_window_limit, enforce_plan
from chaosgen.secrets import redact_text
from chaosgen.units import parse_duration

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "chaosgen"
EXPERIMENT_ID_LABEL = "chaosgen.dev/experiment-id"
DEFAULT_PROMETHEUS_ENDPOINT = "http://prometheus.monitoring.svc:9090"
JOB_CLEANUP_POLICIES = ("delete", "retain")

# A probe passes while `actual <criteria> value` holds (litmus-go pkg/probe/comparator), so the probe that guards an
# abort threshold must state the safe side: the negation of the threshold's operator.
SAFE_CRITERIA = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}

# The workload kinds the ChaosEngine CRD lets an engine select by (appinfo.appkind, selectors.workloads[].kind);
# the policy's unsupported-target-kind rule keeps every other kind out of a plan.
APP_KINDS = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}
HOSTNAME_LABEL = "kubernetes.io/hostname"

# Runtime faults reach the container runtime through its socket (litmus-go pkg/generic/*/environment: defaults
# containerd at /run/containerd/containerd.sock).
CONTAINER_RUNTIMES = {
    "containerd": "/run/containerd/containerd.sock",
    "crio": "/var/run/crio/crio.sock",
    "docker": "/var/run/docker.sock",
}
_SOCKET_PATH = re.compile(r"(/[A-Za-z0-9._-]+)+")

K8S_PROBE_RESOURCES = {
    "pods": ("", "v1"), "services": ("", "v1"), "deployments": ("apps", "v1"), "statefulsets": ("apps", "v1"),
}

# Env values Litmus hands to its experiment processes that are not numbers, booleans or a catalogue choice: only
# names of the shape Kubernetes gives them (a container is a DNS label, a node a DNS subdomain).
_NAME_ENV = {
    "TARGET_CONTAINER": re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"),
    "TARGET_NODE": re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"),
}
_CLOSED_ENV_VALUE = re.compile(r"-?[0-9]+|true|false")

PROBE_TIMEOUT = "10s"
PROBE_RETRY_INTERVAL_SECONDS = PROBE_INTERVAL_SECONDS  # the policy bounds abort windows by it
STEADY_STATE_SOT_RETRIES = 3


def _seconds(duration: str) -> str:
    return str(max(1, math.ceil(parse_duration(duration))))


def _boolean(value: bool) -> str:
    return "true" if value else "false"


# How a parameter's value becomes the string a Litmus env var holds, by the catalogue's parameter type.
_LITMUS_STRING: dict[str, Callable[[Any], str]] = {"duration": _seconds, "boolean": _boolean}

# The tunables each fault's ChaosExperiment reads (tests check this against the vendored definitions).
FAULT_ENV: dict[str, frozenset[str]] = {fault.name: fault.litmus_env for fault in FAULTS}


@dataclass(frozen=True)
class Options:
    """What the command line decides about the output."""

    prometheus_endpoint: str = DEFAULT_PROMETHEUS_ENDPOINT
    job_cleanup_policy: str = "delete"
    with_experiments: bool = False
    with_rbac: bool = False
    container_runtime: str = "containerd"
    socket_path: str | None = None  # None: the runtime's default socket

    @property
    def runtime_env(self) -> list[dict[str, str]]:
        """CONTAINER_RUNTIME and SOCKET_PATH, the env Litmus's runtime faults read."""
        return [{"name": "CONTAINER_RUNTIME", "value": self.container_runtime},
                {"name": "SOCKET_PATH", "value": self.socket_path or CONTAINER_RUNTIMES[self.container_runtime]}]


def socket_path_problem(path: str) -> str | None:
    """Why a --socket-path cannot be handed to Litmus's helper pods (it becomes a hostPath), None when it can."""
    if len(path) > 255 or not _SOCKET_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        return f"--socket-path must be an absolute path of letters, digits, '.', '_', '-', got {path[:80]!r}"
    return None


@dataclass
class Rendering:
    """The manifests in apply order, and warnings for stderr."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_plan(plan: dict[str, Any], policy: dict[str, Any], source: str) -> None:
    """Reject a plan that the safety policy forbids or that cannot become valid Litmus objects (exit 3)."""
    enforce_plan(plan["experiments"], policy, source)
    first_index: dict[str, int] = {}
    for index, experiment in enumerate(plan["experiments"]):
        path = f"$.experiments[{index}]"
        if experiment["id"] in first_index:
            raise InputRejected(
                f"duplicate experiment id {experiment['id']} (also at $.experiments[{first_index[experiment['id']]}]);"
                " it names the ChaosEngine", source, f"{path}.id",
            )
        first_index[experiment["id"]] = index
        for env in fault_env(experiment):
            if not _closed_env_value(env["name"], env["value"]):
                raise PolicyViolation(
                    "untrusted-engine-input",
                    f"{env['name']}={env['value'][:60]!r} is neither from a closed set nor a Kubernetes name",
                    source, f"{path}.parameters",
                )
        _check_comparisons(experiment, source, path)
        for number, check in enumerate(experiment["steady_state"]):
            if check["type"] == "k8s" and check["namespace"] != experiment["target"]["namespace"]:
                raise InputRejected(
                    f"a k8s check reads namespace {check['namespace']}, but the engine's service account is granted "
                    f"only in the target's namespace {experiment['target']['namespace']} (Litmus would get a 403)",
                    source, f"{path}.steady_state[{number}].namespace",
                )
            if "url" in check and redact_text(check["url"]) != check["url"]:
                raise InputRejected(
                    "the URL carries a credential, which would be written into the cluster", source,
                    f"{path}.steady_state[{number}].url",
                )


def _check_comparisons(experiment: dict[str, Any], source: str, path: str) -> None:
    """Litmus's comparator parses the value with strconv.ParseFloat: NaN or an infinity makes a probe that never
    holds (every comparison with NaN is false), so such a value is refused, not rendered."""
    for field_name in ("abort_thresholds", "steady_state"):
        for number, check in enumerate(experiment[field_name]):
            if "value" in check and not math.isfinite(check["value"]):
                raise InputRejected(f"{check['value']} is not a number a probe can compare with", source,
                                    f"{path}.{field_name}[{number}].value")


def render(plan: dict[str, Any], options: Options, definitions: Mapping[str, dict[str, Any]]) -> Rendering:
    """RBAC, then ChaosExperiments, then ChaosEngines (plan order); definitions are the vendored ChaosExperiments."""
    rendering = Rendering()
    engines = []
    for experiment in plan["experiments"]:
        engines.append(chaos_engine(experiment, options))
        rendering.warnings.extend(ignored_parameters(experiment))
    uses = sorted({(e["target"]["namespace"], e["fault"]["type"]) for e in plan["experiments"]})
    if options.with_rbac:
        rendering.documents.extend(rbac_objects(uses, definitions, _k8s_probe_rules(plan["experiments"])))
    if options.with_experiments:
        rendering.documents.extend(chaos_experiment(definitions[fault], namespace) for namespace, fault in uses)
    rendering.documents.extend(engines)
    return rendering


def chaos_engine(experiment: dict[str, Any], options: Options) -> dict[str, Any]:
    """The ChaosEngine of one experiment, named after its id, in the target's namespace."""
    target = experiment["target"]
    fault = experiment["fault"]["type"]
    env = fault_env(experiment)
    if fault_named(fault).container_runtime:
        env.extend(options.runtime_env)
    components: dict[str, Any] = {"env": env}
    engine_spec: dict[str, Any] = {"engineState": "active", **target_selection(experiment)}
    litmus_node = target.get("litmus_node")
    if fault_named(fault).family is Family.NODE and litmus_node:
        # The drain evicts every pod on its node but DaemonSets: Litmus's runner and experiment pods are pinned to
        # another node (a nodeSelector is the only placement knob the operator and chaos-runner apply).
        engine_spec["components"] = {"runner": {"nodeSelector": {HOSTNAME_LABEL: litmus_node}}}
        components["nodeSelector"] = {HOSTNAME_LABEL: litmus_node}
    return {
        "apiVersion": LITMUS_API_VERSION,
        "kind": "ChaosEngine",
        "metadata": {
            "name": experiment["id"],
            "namespace": target["namespace"],
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, EXPERIMENT_ID_LABEL: experiment["id"]},
            "annotations": engine_contract.encode(experiment),
        },
        "spec": {
            **engine_spec,
            "chaosServiceAccount": service_account_name(fault),
            "jobCleanUpPolicy": options.job_cleanup_policy,
            "experiments": [{
                "name": fault_named(fault).litmus_experiment,
                "spec": {
                    "components": components,
                    "probe": probes(experiment, options.prometheus_endpoint),
                },
            }],
        },
    }


def target_selection(experiment: dict[str, Any]) -> dict[str, Any]:
    """How the engine names its target: the workload by kind and name (spec.selectors.workloads), which Litmus
    resolves through the pods' owners; a fault Litmus aims by the first label only gets appinfo with that label.

    appinfo.applabel with several labels would be an OR in Litmus (a pod carrying any of them is a target), so it
    never carries more than the one label that the plan puts first because it is unique to the target.
    """
    target = experiment["target"]
    kind = APP_KINDS[target["kind"]]
    if fault_named(experiment["fault"]["type"]).first_label_only:
        first_label = target["label_selector"].split(",", 1)[0]
        return {"appinfo": {"appns": target["namespace"], "applabel": first_label, "appkind": kind}}
    return {"selectors": {"workloads": [{"kind": kind, "namespace": target["namespace"], "names": target["name"]}]}}


def service_account_name(fault: str) -> str:
    return f"{fault}-sa"


def fault_env(experiment: dict[str, Any]) -> list[dict[str, str]]:
    """The env tunables the fault understands, set from the plan's parameters; Litmus defaults fill the rest."""
    fault = fault_named(experiment["fault"]["type"])
    parameters = dict(experiment["parameters"])
    # The policy bounds the larger of the two percentages; without a parameter the blast radius says how many.
    blast_percent = experiment["blast_radius"].get("pods_affected_percent", 0)
    if "pods_affected_percent" not in parameters and blast_percent > 0:
        parameters["pods_affected_percent"] = blast_percent
    env = [
        {"name": parameter.litmus_env, "value": _LITMUS_STRING.get(parameter.type, str)(parameters[name])}
        for name, parameter in PARAMETERS.items()
        if name in parameters and fault.accepts(name)
    ]
    target = experiment["target"]
    env.extend({"name": name, "value": target[key]} for key, name in fault.target_env if target.get(key))
    return env


def _closed_env_value(name: str, value: str) -> bool:
    """Whether an env value is a number, a boolean, a catalogue choice, or a name of the shape Kubernetes allows."""
    pattern = _NAME_ENV.get(name)
    if pattern is not None:
        return len(value) <= 253 and pattern.fullmatch(value) is not None
    choices = {choice for parameter in PARAMETERS.values() if parameter.litmus_env == name for choice in parameter.choices}
    return value in choices or _CLOSED_ENV_VALUE.fullmatch(value) is not None


def ignored_parameters(experiment: dict[str, Any]) -> list[str]:
    """A warning for each parameter the fault has no tunable for, so a plan never silently loses a setting."""
    fault = fault_named(experiment["fault"]["type"])
    return [
        f"experiment {experiment['id']}: parameter {key} does not apply to {fault.name}; ignored"
        for key in sorted(experiment["parameters"])
        if not fault.accepts(key)
    ]


def format_number(value: float) -> str:
    """A threshold value as the string Litmus's comparator parses: 5.0 -> "5", 0.05 -> "0.05"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def for_litmus_shell(query: str) -> str:
    """The query as the Litmus runner needs it: it runs `promql --host E "<query>"` through /bin/sh -c.

    Inside sh double quotes only $, `, " and \\ are special, so escaping exactly those gives the shell back the
    original query: label matchers keep their quotes and nothing in a query can run as a command.
    """
    return "".join("\\" + char if char in '$`"\\' else char for char in query)


def _retries_spanning(seconds: float) -> int:
    """Attempts, PROBE_RETRY_INTERVAL_SECONDS apart, so that a probe fails only after `seconds` of failures."""
    return math.ceil(seconds / PROBE_RETRY_INTERVAL_SECONDS) + 1


def _abort_retries(window: str, duration: str | None) -> int:
    """The retries of an abort probe: spanning its `for`, but never past the policy's abort window (the chaos
    duration plus one interval), because Litmus cancels continuous probes when the chaos ends."""
    seconds = parse_duration(window)
    if duration is not None:
        limit = abort_window_limit(duration)
        seconds = min(seconds, math.floor(limit / PROBE_RETRY_INTERVAL_SECONDS) * PROBE_RETRY_INTERVAL_SECONDS)
    return _retries_spanning(seconds)


def nan_safe(query: str, criteria: str, value: float) -> str:
    """The query of an abort probe, with a NaN or a missing sample reading as a value on the safe side.

    Litmus's comparator fails on NaN whatever the criteria (but !=), so an idle service's 0/0 or empty histogram
    would abort a healthy run; chaos-watch counts neither NaN nor no sample as a breach, and neither does this:
    `>= -Inf` drops a NaN sample (every comparison with NaN is false) and `or vector(...)` fills the gap.
    """
    safe = {"<": value - 1, ">": value + 1, "!=": value + 1}.get(criteria, value)
    return f"(({query}) >= -Inf) or vector({format_number(safe)})"


def _run_properties(retries: int, **extra: Any) -> dict[str, Any]:
    return {
        "probeTimeout": PROBE_TIMEOUT,
        "interval": f"{PROBE_RETRY_INTERVAL_SECONDS}s",
        "retry": retries,
        **extra,
    }


def _prom_probe(name: str, endpoint: str, query: str, criteria: str, value: float) -> dict[str, Any]:
    return {
        "name": name,
        "type": "promProbe",
        "promProbe/inputs": {
            "endpoint": endpoint,
            "query": for_litmus_shell(query),
            "comparator": {"criteria": criteria, "value": format_number(value)},
        },
    }


def abort_probe(threshold: dict[str, Any], endpoint: str, duration: str | None) -> dict[str, Any]:
    """A Continuous promProbe that holds while the threshold is not breached and stops the engine once it is
    breached for the threshold's `for` duration."""
    criteria = SAFE_CRITERIA[threshold["operator"]]
    probe = _prom_probe(
        f"abort-{threshold['name']}", endpoint, nan_safe(threshold["query"], criteria, threshold["value"]), criteria,
        threshold["value"],
    )
    probe["mode"] = "Continuous"
    probe["runProperties"] = _run_properties(
        _abort_retries(threshold["for"], duration),
        probePollingInterval=f"{PROBE_RETRY_INTERVAL_SECONDS}s", stopOnFailure=True,
    )
    return probe


def steady_state_probes(check: dict[str, Any], endpoint: str, recovery_seconds: int) -> list[dict[str, Any]]:
    """The steady-state check before chaos (SOT) and after it (EOT); EOT retries for the expected recovery time.

    A failed SOT probe stops the experiment before any fault (stopOnFailure): without it Litmus only records the
    failure and injects anyway (litmus-go pkg/probe/probe.go).
    """
    modes = (("sot", "SOT", _run_properties(STEADY_STATE_SOT_RETRIES, stopOnFailure=True)),
             ("eot", "EOT", _run_properties(_retries_spanning(recovery_seconds))))
    return [
        {**_steady_state_probe(check, endpoint), "name": f"steady-{check['name']}-{suffix}", "mode": mode,
         "runProperties": run_properties}
        for suffix, mode, run_properties in modes
    ]


def _steady_state_probe(check: dict[str, Any], endpoint: str) -> dict[str, Any]:
    if check["type"] == "prometheus":
        return _prom_probe(check["name"], endpoint, check["query"], check["operator"], check["value"])
    if check["type"] == "k8s":
        group, version = K8S_PROBE_RESOURCES[check["resource"]]
        inputs = {
            "group": group, "version": version, "resource": check["resource"], "namespace": check["namespace"],
            "labelSelector": check["label_selector"], "operation": check["operation"],
        }
        return {"name": check["name"], "type": "k8sProbe", "k8sProbe/inputs": inputs}
    return {
        "name": check["name"],
        "type": "httpProbe",
        "httpProbe/inputs": {
            "url": check["url"],
            "insecureSkipVerify": False,
            "method": {"get": {"criteria": "==", "responseCode": str(check["expected_status"])}},
        },
    }


def probes(experiment: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """Abort-threshold probes, then steady-state probes; never a cmdProbe (it would run arbitrary commands)."""
    duration = experiment["parameters"].get("duration")
    found = [abort_probe(threshold, endpoint, duration) for threshold in experiment["abort_thresholds"]]
    for check in experiment["steady_state"]:
        found.extend(steady_state_probes(check, endpoint, experiment["expected_recovery_seconds"]))
    return _unique_names(found)


def _unique_names(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Litmus keys probe results by name, so a repeated name (the schema allows it) gets a -2, -3... suffix."""
    taken: set[str] = set()
    for probe in found:
        name, number = probe["name"], 1
        while name in taken:
            number += 1
            name = f"{probe['name']}-{number}"
        probe["name"] = name
        taken.add(name)
    return found


def _metadata(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {**(labels or {}), MANAGED_BY_LABEL: MANAGED_BY}
    return metadata


def chaos_experiment(definition: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The upstream ChaosExperiment, placed in the engine's namespace (Litmus looks it up there)."""
    experiment = copy.deepcopy(definition)
    experiment["metadata"] = _metadata(definition["metadata"]["name"], namespace, definition["metadata"].get("labels"))
    return experiment


def _k8s_probe_rules(experiments: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(namespace, fault) -> read rules for the resources its engines' k8sProbes name (check_plan keeps each in the
    target's namespace): the probes run with the engine's service account, and a 403 errors the experiment."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for experiment in experiments:
        use = (experiment["target"]["namespace"], experiment["fault"]["type"])
        for check in experiment["steady_state"]:
            if check["type"] == "k8s":
                wanted.setdefault(use, set()).add(check["resource"])
    return {
        use: [{"apiGroups": [K8S_PROBE_RESOURCES[resource][0]], "resources": [resource], "verbs": ["get", "list"]}
              for resource in sorted(resources)]
        for use, resources in wanted.items()
    }


def _grants(rules: list[dict[str, Any]], wanted: dict[str, Any]) -> bool:
    """Whether the rules already allow every verb of `wanted` on its resource."""
    group, resource = wanted["apiGroups"][0], wanted["resources"][0]
    verbs = {verb for rule in rules
             if {group, "*"} & set(rule.get("apiGroups", [])) and {resource, "*"} & set(rule.get("resources", []))
             for verb in rule.get("verbs", [])}
    return "*" in verbs or set(wanted["verbs"]) <= verbs


def rbac_objects(uses: list[tuple[str, str]], definitions: Mapping[str, dict[str, Any]],
                 probe_rules: Mapping[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """ServiceAccount and Role/RoleBinding per (namespace, fault), from the permissions of the fault's definition,
    widened by what the k8s steady-state probes of its engines read.

    A Cluster-scoped fault (node-drain: nodes, evictions on any node) gets one ClusterRole and a
    ClusterRoleBinding per namespace, named after it so that separate plans do not overwrite each other's subjects.
    """
    cluster_roles: dict[str, dict[str, Any]] = {}
    namespaced: list[dict[str, Any]] = []
    for namespace, fault in uses:
        definition = definitions[fault]["spec"]["definition"]
        name = service_account_name(fault)
        rules = copy.deepcopy(definition["permissions"])
        rules.extend(rule for rule in probe_rules.get((namespace, fault), []) if not _grants(rules, rule))
        subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        namespaced.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(name, namespace)})
        if definition["scope"] == "Cluster":
            cluster_roles[name] = {
                "apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _metadata(name), "rules": rules,
            }
            namespaced.append({
                "apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding", "metadata": _metadata(f"{name}-{namespace}"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [subject],
            })
        else:
            namespaced.append({
                "apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": _metadata(name, namespace), "rules": rules,
            })
            namespaced.append({
                "apiVersion": RBAC_API_VERSION, "kind": "RoleBinding", "metadata": _metadata(name, namespace),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [subject],
            })
    return [cluster_roles[name] for name in sorted(cluster_roles)] + namespaced
