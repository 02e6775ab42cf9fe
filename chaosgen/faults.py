"""The fault catalogue: every fault type ChaosGen knows, in one place.

Each Fault says what it does and tests, which ExperimentPlan parameters it takes (with type, unit, default and
bounds) and how it runs on LitmusChaos (the ChaosExperiment and the env var each parameter becomes). Everything
else derives from it: the policy's allowed faults and total-loss set (chaosgen.policy), the built-in planner's
parameters (chaos_suggest), the LLM prompt's catalogue (prompts/experiment.j2), the ChaosEngine env
(chaos_litmus) and the report's remedies (chaos-report). schemas/common.schema.json keeps its own faultType enum,
because schemas are the contract; tests/test_fault_catalogue.py proves it and every consumer agree with this file.

A new fault type needs a Fault here, its vendored ChaosExperiment in chaos_litmus/experiments/ and its name in
the schema's faultType enum.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Family(StrEnum):
    """What a fault does to the target, which decides what an experiment with it may claim."""

    REMOVES_PODS = "removes-pods"  # pods go away and the controller must bring them back
    DEGRADES = "degrades"  # pods keep running, worse (CPU, memory, network)
    CAPACITY = "capacity"  # pods are added; none of the running ones is touched
    NODE = "node"  # a node goes away, and every pod on it


@dataclass(frozen=True)
class Parameter:
    """An ExperimentPlan parameter (experiment-plan.schema.json's parameters) and the Litmus env var it becomes.

    type is "duration" (a string such as 30s), "integer", "boolean", "string" or "enum" (one of choices).
    default is what the built-in planner sets; None when the planner derives the value per experiment
    (duration and interval from the weakness, pods_affected_percent, container and replica_count from the target).
    """

    name: str
    type: str
    litmus_env: str
    unit: str | None = None
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()


# In the order the ChaosEngine env lists them.
DURATION = Parameter("duration", "duration", "TOTAL_CHAOS_DURATION")
INTERVAL = Parameter("interval", "duration", "CHAOS_INTERVAL")
PODS_AFFECTED_PERCENT = Parameter("pods_affected_percent", "integer", "PODS_AFFECTED_PERC", "%", minimum=1, maximum=100)
FORCE = Parameter("force", "boolean", "FORCE", default=False)
SEQUENCE = Parameter("sequence", "enum", "SEQUENCE", default="serial", choices=("serial", "parallel"))
CPU_CORES = Parameter("cpu_cores", "integer", "CPU_CORES", "cores", default=1, minimum=1, maximum=16)
MEMORY_MB = Parameter("memory_mb", "integer", "MEMORY_CONSUMPTION", "MiB", default=500, minimum=1, maximum=65536)
LATENCY_MS = Parameter("latency_ms", "integer", "NETWORK_LATENCY", "ms", default=300, minimum=1, maximum=60000)
JITTER_MS = Parameter("jitter_ms", "integer", "JITTER", "ms", default=50, minimum=0, maximum=60000)
LOSS_PERCENT = Parameter(
    "loss_percent", "integer", "NETWORK_PACKET_LOSS_PERCENTAGE", "%", default=50, minimum=1, maximum=100,
)
CONTAINER = Parameter("container", "string", "TARGET_CONTAINER")
REPLICA_COUNT = Parameter("replica_count", "integer", "REPLICA_COUNT", "replicas", minimum=0, maximum=1000)

PARAMETERS: dict[str, Parameter] = {
    parameter.name: parameter
    for parameter in (
        DURATION, INTERVAL, PODS_AFFECTED_PERCENT, FORCE, SEQUENCE, CPU_CORES, MEMORY_MB, LATENCY_MS, JITTER_MS,
        LOSS_PERCENT, CONTAINER, REPLICA_COUNT,
    )
}


@dataclass(frozen=True)
class Fault:
    """One fault type.

    parameters are the ones the planner sets and the prompt offers, in the order the plan lists them;
    also_accepted are Litmus tunables a plan may set but that neither offers. target_env maps a field of the
    experiment's target to the Litmus env var it fills when present (node-drain's target.node -> TARGET_NODE).
    target_kinds are the workload kinds Litmus can aim it at: its ChaosEngine selects a target by a kind the CRD
    accepts (deployment, statefulset, daemonset), so ReplicaSet, Job, CronJob and bare Pod targets are refused.
    first_label_only: Litmus's experiment reads only the first label of appinfo.applabel (litmus-go
    pkg/generic/{node-drain,pod-autoscaler}/environment getAppDetails indexes Labels[0] and panics on a names-only
    selector), so the engine selects by one label, which must be unique to the target.
    container_runtime: its helper pods reach the node's container runtime; the engine also gets CONTAINER_RUNTIME
    and SOCKET_PATH, from chaos-litmus's flags rather than the plan.
    """

    name: str
    family: Family
    tests: str
    parameters: tuple[Parameter, ...]
    litmus_experiment: str
    also_accepted: tuple[Parameter, ...] = ()
    target_env: tuple[tuple[str, str], ...] = ()
    target_kinds: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet")
    first_label_only: bool = False
    container_runtime: bool = False

    @property
    def takes_pods_away(self) -> bool:
        """Whether the controller must bring the target's pods back: only then may a hypothesis be total loss."""
        return self.family in (Family.REMOVES_PODS, Family.NODE)

    def accepts(self, parameter: str) -> bool:
        return any(p.name == parameter for p in (*self.parameters, *self.also_accepted))

    @property
    def litmus_env(self) -> frozenset[str]:
        """The tunables this fault's ChaosExperiment reads from the ChaosEngine."""
        accepted = {p.litmus_env for p in (*self.parameters, *self.also_accepted)}
        return frozenset(accepted | {env for _, env in self.target_env})


_POD_SELECTION = (DURATION, PODS_AFFECTED_PERCENT)

FAULTS: tuple[Fault, ...] = (
    Fault(
        "pod-delete", Family.REMOVES_PODS,
        "deletes pods of the target; tests rescheduling, replica redundancy, PDBs and callers' retries",
        (DURATION, INTERVAL, PODS_AFFECTED_PERCENT, SEQUENCE, FORCE), "pod-delete", also_accepted=(CONTAINER,),
    ),
    Fault(
        "container-kill", Family.REMOVES_PODS,
        "kills one container in pods of the target; tests restarts and liveness probes",
        (DURATION, INTERVAL, PODS_AFFECTED_PERCENT, SEQUENCE, CONTAINER), "container-kill", container_runtime=True,
    ),
    Fault(
        "pod-cpu-hog", Family.DEGRADES,
        "burns CPU inside pods of the target; tests CPU limits, throttling and autoscaling",
        (*_POD_SELECTION, CPU_CORES, CONTAINER), "pod-cpu-hog", also_accepted=(SEQUENCE,),
        container_runtime=True,
    ),
    Fault(
        "pod-memory-hog", Family.DEGRADES,
        "allocates memory inside pods of the target; tests memory limits and OOM handling",
        (*_POD_SELECTION, MEMORY_MB, CONTAINER), "pod-memory-hog", also_accepted=(SEQUENCE,),
        container_runtime=True,
    ),
    Fault(
        "pod-network-latency", Family.DEGRADES,
        "delays the target's network traffic; tests callers' timeouts and retries",
        (*_POD_SELECTION, LATENCY_MS, JITTER_MS, CONTAINER), "pod-network-latency", also_accepted=(SEQUENCE,),
        container_runtime=True,
    ),
    Fault(
        "pod-network-loss", Family.DEGRADES,
        "drops a share of the target's packets; tests callers' retries and circuit breakers",
        (*_POD_SELECTION, LOSS_PERCENT, CONTAINER), "pod-network-loss", also_accepted=(SEQUENCE,),
        container_runtime=True,
    ),
    Fault(
        "node-drain", Family.NODE,
        "drains the node running the target's pods; tests anti-affinity, spread and PDBs",
        (DURATION,), "node-drain", target_env=(("node", "TARGET_NODE"),),
        target_kinds=("Deployment", "StatefulSet"), first_label_only=True,
    ),
    Fault(
        "pod-autoscaler", Family.CAPACITY,
        "scales the target to replica_count; tests scaling and the capacity behind it",
        (DURATION, REPLICA_COUNT), "pod-autoscaler",
        # litmus-go's pod-autoscaler scales Deployments and StatefulSets only ("application type is not supported").
        target_kinds=("Deployment", "StatefulSet"), first_label_only=True,
    ),
)

BY_NAME: dict[str, Fault] = {fault.name: fault for fault in FAULTS}
FAULT_TYPES: tuple[str, ...] = tuple(BY_NAME)
# The faults for which a "recovers from total loss" hypothesis makes sense. Degrading every pod at once (a hog,
# latency) is never allowed.
TOTAL_LOSS_FAULTS: tuple[str, ...] = tuple(fault.name for fault in FAULTS if fault.takes_pods_away)


def fault_named(name: str) -> Fault:
    """The catalogue record of a fault type; KeyError for a name the schema would have rejected."""
    return BY_NAME[name]
