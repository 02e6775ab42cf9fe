"""chaos-watch's pure logic: what the engines ask for, threshold evaluation, outages, verdicts and the RunResult.

Plain data in and out, no I/O and no clock: runner.py feeds it what the cluster and Prometheus said, with the times
at which they said it (seconds on one monotonic-ish scale), and turns its answers into API calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaosgen import API_VERSION, engine_contract
from chaosgen.errors import InputRejected
from chaosgen.litmus import LITMUS_GROUP
from chaosgen.policy import namespace_violations, pods_affected_violations, violations
from chaosgen.schemas import with_article
from chaosgen.units import parse_duration

VERDICTS = ("passed", "failed", "aborted", "skipped", "error")
# What Litmus writes in a ChaosResult's phase and verdict when the engine was stopped (engineState: stop).
STOPPED = "Stopped"
# Litmus failureOutput.errorCode values (litmus-go pkg/cerrors) of a run that never injected its fault: the
# hypothesis was not tested, so the verdict is error, not failed.
NOT_INJECTED_ERROR_CODES = frozenset({"TARGET_SELECTION_ERROR", "HELPER_ERROR", "HELPER_POD_FAILED_ERROR",
                                      "CONTAINER_RUNTIME_ERROR", "CHAOS_INJECT_ERROR"})
# Kubernetes writes object timestamps with whole seconds; a watch event received within this long after one is
# taken as the moment it happened (sub-second), a later one (a lagging or resumed watch) falls back to the stamp.
STAMP_RESOLUTION = 1.0
WATCH_LAG_TOLERANCE = 0.5


@dataclass(frozen=True)
class Threshold:
    name: str
    query: str
    operator: str
    value: float
    for_seconds: float
    for_text: str
    series: tuple[str, ...] = ()  # the selectors the plan says must have series (empty: preflight derives them)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Threshold:
        return cls(data["name"], data["query"], data["operator"], float(data["value"]),
                   parse_duration(data["for"]), data["for"], tuple(data.get("series", ())))


@dataclass(frozen=True)
class PodSelection:
    """The pods a ChaosEngine aims at, by Litmus's own rules (chaos-operator getTargets, litmus-go
    pkg/utils/common/pods.go and pkg/workloads/workloads.go).

    spec.selectors.workloads names workloads: a pod is a target when its owner, followed through a ReplicaSet to its
    Deployment, is one of them. appinfo.applabel is an OR: a pod carrying ANY of its comma-separated labels is a
    target, filtered by the owner's kind when appinfo.appkind says one.
    """

    namespace: str
    workloads: tuple[tuple[str, str], ...] = ()  # (lower-case kind, name)
    labels: tuple[tuple[str, str], ...] = ()
    kind: str | None = None

    def matches(self, pod: dict[str, Any]) -> bool:
        metadata = pod.get("metadata") or {}
        if metadata.get("namespace", self.namespace) != self.namespace:
            return False
        owner = pod_owner(pod)
        if self.workloads:
            return owner in self.workloads
        pod_labels = metadata.get("labels") or {}
        if not any(pod_labels.get(key) == value for key, value in self.labels):
            return False
        return self.kind is None or (owner is not None and owner[0] == self.kind)

    @classmethod
    def of_engine(cls, spec: dict[str, Any], engine_namespace: str) -> PodSelection:
        """What the engine spec selects: selectors.workloads when present (the operator prefers them), else appinfo."""
        workloads = ((spec.get("selectors") or {}).get("workloads")) or []
        if workloads:
            namespace = str(workloads[0].get("namespace") or engine_namespace)
            named = tuple((str(w.get("kind", "")).lower(), name.strip()) for w in workloads
                          for name in str(w.get("names") or "").split(",") if name.strip())
            return cls(namespace, workloads=named)
        appinfo = spec.get("appinfo") or {}
        pairs = [label.split("=", 1) for label in str(appinfo.get("applabel") or "").split(",") if "=" in label]
        return cls(str(appinfo.get("appns") or engine_namespace), labels=tuple((k.strip(), v.strip()) for k, v in pairs),
                   kind=str(appinfo["appkind"]).lower() if appinfo.get("appkind") else None)


def pod_owner(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(lower-case kind, name) of the workload that owns a pod, as litmus-go's GetPodOwnerTypeAndName reads it: a
    ReplicaSet named <deployment>-<pod-template-hash> stands for its Deployment, other owners for themselves."""
    metadata = pod.get("metadata") or {}
    owner = next((o for o in metadata.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        return None
    kind, name = str(owner.get("kind", "")).lower(), str(owner.get("name", ""))
    template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
    if kind == "replicaset" and template_hash and name.endswith(f"-{template_hash}"):
        return "deployment", name[: -len(template_hash) - 1]
    return kind, name


@dataclass(frozen=True)
class Engine:
    """One ChaosEngine of the input, with what chaos-litmus annotated on it."""

    name: str
    namespace: str
    experiment_id: str
    fault: str | None
    target: str | None
    thresholds: tuple[Threshold, ...]
    expected_recovery_seconds: int | None
    experiment: dict[str, Any] | None
    env: dict[str, str]
    pods: PodSelection
    manifest: dict[str, Any]

    @property
    def result_name(self) -> str:
        """Litmus names the ChaosResult <engine>-<experiment>."""
        return f"{self.name}-{self.fault}"

    @property
    def chaos_seconds(self) -> float:
        return float(self.env.get("TOTAL_CHAOS_DURATION") or 0)

    @property
    def target_kind_name(self) -> tuple[str, str] | None:
        if not self.target or self.target.count("/") != 2:
            return None
        _, kind, name = self.target.split("/")
        return kind, name


def split_documents(documents: list[Any], source: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of chaos-litmus output: multi-document YAML or a v1 List, flattened."""
    objects: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        where = f"$[{index}]" if len(documents) > 1 else "$"
        if not isinstance(document, dict) or "kind" not in document:
            raise InputRejected("expected Kubernetes objects (chaos-litmus output)", source, where)
        if document.get("kind") == "List":
            items = document.get("items")
            if not isinstance(items, list):
                raise InputRejected("a List needs items", source, f"{where}.items")
            objects.extend(split_documents(items, source) if items else [])
        elif document.get("apiVersion") == API_VERSION:
            raise InputRejected(f"chaos-watch expects chaos-litmus output (ChaosEngines), got {with_article(str(document['kind']))}",
                                source, f"{where}.kind")
        else:
            _check_object(document, source, where)
            objects.append(document)
    return objects


def _check_object(document: dict[str, Any], source: str, where: str) -> None:
    if not isinstance(document.get("apiVersion"), str):
        raise InputRejected("a Kubernetes object needs an apiVersion", source, f"{where}.apiVersion")
    name = document.get("metadata", {}).get("name") if isinstance(document.get("metadata"), dict) else None
    if not isinstance(name, str) or not name:
        raise InputRejected("a Kubernetes object needs metadata.name", source, f"{where}.metadata.name")


def parse_engines(objects: list[dict[str, Any]], source: str) -> list[Engine]:
    """Every ChaosEngine of the input, its engine-contract annotations decoded; malformed ones are InputRejected."""
    engines = []
    for index, obj in enumerate(objects):
        if obj.get("kind") != "ChaosEngine" or not obj["apiVersion"].startswith(LITMUS_GROUP + "/"):
            continue
        engines.append(_parse_engine(obj, source, f"$[{index}]"))
    if not engines:
        raise InputRejected("no ChaosEngine in the input (chaos-litmus output expected)", source)
    names = [(e.namespace, e.name) for e in engines]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        raise InputRejected(f"ChaosEngine {duplicate[0]}/{duplicate[1]} appears twice", source)
    return engines


def _parse_engine(obj: dict[str, Any], source: str, where: str) -> Engine:
    metadata = obj["metadata"]
    annotations = metadata.get("annotations") or {}
    spec = obj.get("spec") or {}
    experiments = spec.get("experiments") or []
    if len(experiments) != 1 or not isinstance(experiments[0], dict):
        raise InputRejected("a ChaosEngine must name exactly one experiment", source, f"{where}.spec.experiments")
    experiment_spec = experiments[0]
    env_list = (((experiment_spec.get("spec") or {}).get("components") or {}).get("env")) or []
    env = {item["name"]: str(item.get("value", "")) for item in env_list if isinstance(item, dict) and "name" in item}

    name = metadata["name"]
    namespace = metadata.get("namespace") or "default"
    annotated = engine_contract.decode(annotations, f"ChaosEngine {namespace}/{name}", source, f"{where}.metadata.annotations")
    return Engine(
        name=name,
        namespace=namespace,
        experiment_id=annotated.experiment_id or name,
        fault=experiment_spec.get("name"),
        target=annotated.target,
        thresholds=tuple(Threshold.from_dict(t) for t in annotated.abort_thresholds),
        expected_recovery_seconds=annotated.expected_recovery_seconds,
        experiment=annotated.experiment,
        env=env,
        pods=PodSelection.of_engine(spec, namespace),
        manifest=obj,
    )


def engine_violations(engine: Engine, policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The safety policy checked again on the annotated experiment AND on what the engine itself would do.

    Called by the preflight: an engine edited after chaos-litmus (more pods, longer, another namespace) must not
    slip through because its annotation still describes the safe version.
    """
    found: list[tuple[str, str]] = []
    experiment = engine.experiment
    if experiment is None:
        found.append(("experiment-annotation", f"annotation {engine_contract.EXPERIMENT} is missing"))
        experiment = {}
    else:
        found.extend(violations(experiment, policy))
    target = experiment.get("target", {})
    if engine.fault != experiment.get("fault", {}).get("type", engine.fault):
        found.append(("engine-mismatch", f"engine runs {engine.fault}, the experiment says {experiment['fault']['type']}"))
    if engine.fault not in policy["allowed_faults"]:
        found.append(("fault-not-allowed", f"fault {engine.fault} is not in allowed_faults"))
    app_namespace = engine.pods.namespace
    found.extend(namespace_violations({app_namespace, engine.namespace}, policy))
    if target and app_namespace != target.get("namespace"):
        found.append(("engine-mismatch", f"engine targets namespace {app_namespace}, not the target namespace {target.get('namespace')}"))
    if target:
        found.extend(_selection_violations(engine.pods, target))
    if engine.target and target and engine.target != target.get("workload"):
        found.append(("engine-mismatch", f"annotation target {engine.target} is not {target.get('workload')}"))
    percent_text = engine.env.get("PODS_AFFECTED_PERC") or "0"
    percent = int(percent_text) if percent_text.isdigit() else 100
    found.extend(pods_affected_violations(percent, engine.fault, experiment.get("blast_radius") or {}, policy))
    if engine.chaos_seconds > parse_duration(policy["max_duration"]):
        found.append(("max-duration", f"engine TOTAL_CHAOS_DURATION {engine.chaos_seconds:g}s exceeds {policy['max_duration']}"))
    if policy["require_abort_thresholds"] and not engine.thresholds:
        found.append(("abort-thresholds-required", f"annotation {engine_contract.ABORT_THRESHOLDS} is empty"))
    annotated = [t.get("name") for t in experiment.get("abort_thresholds", [])]
    if experiment and annotated != [t.name for t in engine.thresholds]:
        found.append(("engine-mismatch", "the engine's abort thresholds differ from its experiment's"))
    return sorted(set(found), key=found.index)


def _selection_violations(pods: PodSelection, target: dict[str, Any]) -> list[tuple[str, str]]:
    """The engine must aim at the annotated target only: that workload by name, or one label of its selector (Litmus
    ORs several labels, which reaches every pod carrying any of them)."""
    own = (str(target.get("kind", "")).lower(), target.get("name"))
    if pods.workloads:
        if set(pods.workloads) != {own}:
            return [("engine-mismatch", f"engine selects workloads {sorted(pods.workloads)}, not {own[0]} {own[1]}")]
        return []
    selector = {tuple(pair.split("=", 1)) for pair in str(target.get("label_selector", "")).split(",") if "=" in pair}
    if len(pods.labels) != 1 or not set(pods.labels) <= selector:
        shown = ",".join("=".join(pair) for pair in pods.labels)
        return [("engine-mismatch", f"engine applabel {shown or '(none)'} is not one label of {target.get('label_selector')}")]
    return []


def steady_state_queries(engine: Engine) -> list[tuple[str, str, str, float]]:
    """(name, query, operator, value) of the experiment's Prometheus steady-state checks, which must hold before
    chaos; the k8s and http kinds are Litmus's probes to run (the runner's target check covers readiness)."""
    checks = (engine.experiment or {}).get("steady_state") or []
    return [(c["name"], c["query"], c["operator"], float(c["value"])) for c in checks
            if isinstance(c, dict) and c.get("type") == "prometheus" and {"name", "query", "operator", "value"} <= set(c)]


def compare(value: float, operator: str, limit: float) -> bool:
    """True when `value operator limit` holds, i.e. the threshold's abort condition is met."""
    return {
        ">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit,
        "==": value == limit, "!=": value != limit,
    }[operator]


@dataclass
class ThresholdState:
    """One abort threshold over time: breached once its condition has held for its whole `for` duration."""

    threshold: Threshold
    pending_since: float | None = None
    first_breach_at: float | None = None
    worst: float | None = None
    breached_now: bool = False

    def observe(self, t: float, value: float | None) -> bool:
        """Record a sample taken at t (None: no value); True when the threshold is breached at t."""
        condition = value is not None and not math.isnan(value) and compare(value, self.threshold.operator, self.threshold.value)
        if value is not None and not math.isnan(value):
            self.worst = value if self.worst is None else _worse(self.threshold.operator, self.worst, value)
        if not condition:
            self.pending_since = None
            self.breached_now = False
            return False
        if self.pending_since is None:
            self.pending_since = t
        self.breached_now = t - self.pending_since >= self.threshold.for_seconds
        if self.breached_now and self.first_breach_at is None:
            self.first_breach_at = t
        return self.breached_now

    def as_dict(self, offset: Any) -> dict[str, Any]:
        """The RunResult entry; offset turns a runner time into seconds since the experiment started."""
        t = self.threshold
        return {
            "name": t.name, "query": t.query, "operator": t.operator, "value": t.value, "for": t.for_text,
            "breached": self.first_breach_at is not None,
            "first_breach_at": None if self.first_breach_at is None else offset(self.first_breach_at),
            "worst": _round(self.worst, 6),
        }


def _worse(operator: str, a: float, b: float) -> float:
    """The sample nearer the breaching side: the higher one for > and >=, the lower for < and <=."""
    if operator in (">", ">="):
        return max(a, b)
    if operator in ("<", "<="):
        return min(a, b)
    return b


@dataclass(frozen=True)
class PodChange:
    """A target pod became ready (ready=True) or stopped serving (deleted, terminating, Ready=False) at t."""

    t: float
    pod: str
    ready: bool


def event_time(stamp: float | None, received: float) -> float:
    """When something happened, from its whole-second API timestamp and the time its watch event reached us.

    Called for pod deletions and Ready transitions: the stamp is authoritative but truncated to the second; a
    receipt inside that second (plus a little lag) pins it down, a later receipt means the watch lagged.
    """
    if stamp is None:
        return received
    if stamp <= received < stamp + STAMP_RESOLUTION + WATCH_LAG_TOLERANCE:
        return received
    return stamp


def outages(initially_ready: set[str], changes: list[PodChange], desired: int, since: float) -> list[dict[str, Any]]:
    """Periods after `since` during which fewer than `desired` target pods were ready (up_at None: still down)."""
    ready = set(initially_ready)
    found: list[dict[str, Any]] = []
    down_at: float | None = None if len(ready) >= desired else since
    for change in sorted(changes, key=lambda c: (c.t, c.ready)):
        (ready.add if change.ready else ready.discard)(change.pod)
        t = max(change.t, since)
        if down_at is None and len(ready) < desired:
            down_at = t
        elif down_at is not None and len(ready) >= desired:
            found.append({"down_at": down_at, "up_at": t})
            down_at = None
    if down_at is not None:
        found.append({"down_at": down_at, "up_at": None})
    return [
        {"down_at": _round(o["down_at"] - since), "up_at": _round(None if o["up_at"] is None else o["up_at"] - since),
         "seconds": None if o["up_at"] is None else _round(o["up_at"] - o["down_at"])}
        for o in found
    ]


def time_to_recovery(found_outages: list[dict[str, Any]]) -> float | None:
    """The longest completed outage (seconds), 0 when the target never went below its desired ready replicas."""
    if any(o["up_at"] is None for o in found_outages):
        return None
    return max((o["seconds"] for o in found_outages), default=0.0)


@dataclass
class Observation:
    """Everything the runner saw of one experiment, in the shape decide() and experiment_result() need."""

    engine: Engine
    preflight: list[dict[str, Any]] = field(default_factory=list)
    skipped_reason: str | None = None
    error_reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    chaos_ended: bool = False
    abort: dict[str, Any] | None = None
    chaos_result: dict[str, Any] | None = None
    thresholds: list[ThresholdState] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    steady_state_samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    kube_events: list[dict[str, Any]] = field(default_factory=list)
    # How many timeline entries and Kubernetes events the bounds left out (evidence.py).
    omitted: dict[str, int] = field(default_factory=dict)
    outages: list[dict[str, Any]] = field(default_factory=list)
    recovered: bool | None = None

    def offset(self, t: float) -> float:
        return round(max(0.0, t - self.started_at), 3) if self.started_at is not None else 0.0

    def event(self, t: float, kind: str, message: str) -> dict[str, Any]:
        entry = {"t": self.offset(t), "type": kind, "message": message}
        self.events.append(entry)
        return entry


def summarize_chaos_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The RunResult's view of a Litmus ChaosResult object (status.experimentStatus, status.probeStatuses)."""
    if not result:
        return None
    status = result.get("status") or {}
    experiment = status.get("experimentStatus") or {}
    percentage = experiment.get("probeSuccessPercentage")
    try:
        probe_success = float(percentage) if percentage not in (None, "", "Awaited") else None
    except (TypeError, ValueError):
        probe_success = None
    probes = [
        {key: value for key, value in {
            "name": probe.get("name", ""), "type": probe.get("type"), "mode": probe.get("mode"),
            "verdict": (probe.get("status") or {}).get("verdict", ""),
            "description": (probe.get("status") or {}).get("description"),
        }.items() if value is not None}
        for probe in status.get("probeStatuses") or []
    ]
    return {
        "name": result["metadata"]["name"],
        "phase": experiment.get("phase"),
        "verdict": experiment.get("verdict"),
        "probe_success_percentage": probe_success,
        "failed_step": (experiment.get("failureOutput") or {}).get("failedStep"),
        "error_code": (experiment.get("failureOutput") or {}).get("errorCode"),
        "probes": sorted(probes, key=lambda p: p["name"]),
    }


def fault_injected(observation: Observation) -> bool:
    """False when Litmus failed before injecting the fault (target selection, helper, container runtime)."""
    result = observation.chaos_result or {}
    return not (result.get("verdict") == "Fail" and result.get("error_code") in NOT_INJECTED_ERROR_CODES)


def decide(observation: Observation) -> tuple[str, str]:
    """The experiment's verdict and a one-sentence reason, from what was observed.

    Order matters: a skip or an error means the hypothesis was never tested; an abort outranks whatever Litmus
    concluded afterwards; then Litmus's own verdict; then recovery against the hypothesis's expected time.
    """
    engine = observation.engine
    if observation.skipped_reason:
        return "skipped", observation.skipped_reason
    if observation.error_reason:
        return "error", observation.error_reason
    if observation.abort:
        return "aborted", observation.abort["reason"]
    result = observation.chaos_result or {}
    if not fault_injected(observation):
        return "error", f"the fault was not injected ({result['error_code']}): {result.get('failed_step')}"
    if result.get("verdict") == "Fail":
        step = result.get("failed_step")
        return "failed", f"Litmus verdict Fail{f': {step}' if step else ''}"
    if not observation.chaos_ended:
        return "error", "the chaos engine did not finish"
    breached = [s.threshold.name for s in observation.thresholds if s.first_breach_at is not None]
    if breached:
        return "failed", f"threshold {', '.join(breached)} breached"
    if observation.recovered is False:
        return "failed", "the target did not recover before the recovery timeout"
    ttr = time_to_recovery(observation.outages)
    expected = engine.expected_recovery_seconds
    if ttr is not None and expected is not None and ttr > expected:
        return "failed", f"recovered in {ttr:g}s, more than the expected {expected}s"
    if result.get("verdict") != "Pass":
        # chaos-watch saw nothing wrong, but the engine did not conclude Pass: that is not a confirmed hypothesis.
        if not result:
            return "error", "the engine wrote no result, so its own verdict is unknown"
        return "error", f"the engine's own result says {result.get('verdict') or 'nothing'}, not Pass"
    held = f"; recovered in {ttr:g}s (expected {expected}s)" if ttr is not None and expected is not None else ""
    return "passed", f"no threshold breached{held}"


def result_stopped(result: dict[str, Any] | None) -> bool:
    """Whether the engine's result (RunResult chaos_result shape) says the run was stopped rather than concluded;
    the runner asks it to notice a stop it did not request."""
    return result is not None and STOPPED in (result.get("phase"), result.get("verdict"))


def outside_stop(observation: Observation, t: float, manager: str | None) -> dict[str, Any]:
    """The abort record of an engine that someone else stopped (seen at t); manager: who, when the engine says."""
    who = f"by {manager}" if manager else "from outside"
    return {"by": "external", "reason": f"the engine was stopped {who}, not by chaos-watch", "threshold": None,
            "breach_at": None, "requested_at": observation.offset(t), "stopped_at": observation.offset(t),
            "confirmed": True, "manager": manager}


def experiment_result(observation: Observation, iso: Any) -> dict[str, Any]:
    """One entry of RunResult.experiments; iso turns a runner time into an RFC 3339 string."""
    engine = observation.engine
    verdict, reason = decide(observation)
    result: dict[str, Any] = {
        "id": engine.experiment_id,
        "engine": engine.name,
        "namespace": engine.namespace,
        "target": engine.target,
        "fault": engine.fault,
    }
    if engine.experiment and engine.experiment.get("hypothesis"):
        result["hypothesis"] = engine.experiment["hypothesis"]
    if engine.experiment and engine.experiment.get("blast_radius"):
        result["blast_radius"] = engine.experiment["blast_radius"]
    # A time to recovery exists only for a recovery: a fault that never ran caused no outage to recover from, and a
    # target that did not recover has no time (its pods' brief outage is not its recovery).
    started = observation.started_at is not None and verdict != "skipped"
    injected = fault_injected(observation) if started else None
    ttr = time_to_recovery(observation.outages) if injected and observation.recovered else None
    result.update({
        "verdict": verdict,
        "reason": reason,
        "aborted_by": observation.abort["by"] if observation.abort else None,
        "abort": observation.abort,
        "preflight": observation.preflight,
        "chaos_result": observation.chaos_result,
        "thresholds": [s.as_dict(observation.offset) for s in observation.thresholds],
        "samples": observation.samples,
        "steady_state_samples": observation.steady_state_samples,
        "events": observation.events,
        "kube_events": observation.kube_events,
        "omitted": {key: count for key, count in sorted(observation.omitted.items()) if count},
        "started_at": iso(observation.started_at) if observation.started_at is not None else None,
        "ended_at": iso(observation.ended_at) if observation.ended_at is not None else None,
        "expected_recovery_seconds": engine.expected_recovery_seconds,
        "time_to_recovery_seconds": ttr,
        "recovered": observation.recovered,
        "injected": injected,
        "outages": observation.outages,
    })
    return result


def run_result(results: list[dict[str, Any]], generator: str, source: dict[str, Any], journal: str | None,
               dry_run: bool, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The RunResult document, experiments in input order; run: its id and start time, which tell runs apart."""
    summary = {"total": len(results), **{verdict: 0 for verdict in VERDICTS}}
    for result in results:
        summary[result["verdict"]] += 1
    return {
        "apiVersion": API_VERSION, "kind": "RunResult",
        "metadata": {"generator": generator, "source": source}, **({"run": run} if run else {}),
        "dry_run": dry_run, "journal": journal, "summary": summary, "experiments": results,
    }


def exit_code(document: dict[str, Any]) -> int:
    """0 when every hypothesis held (or, in a dry run, every preflight passed); 5 deviated or aborted; 4 environment.

    A deviation outranks an environment error: it is the news the user ran chaos-watch for.
    """
    verdicts = [e["verdict"] for e in document["experiments"]]
    if any(v in ("failed", "aborted") for v in verdicts):
        return 5
    if "error" in verdicts:
        return 4
    if document["dry_run"]:
        passed_preflight = all(all(c["ok"] for c in e["preflight"]) for e in document["experiments"])
        return 0 if passed_preflight else 5
    return 5 if "skipped" in verdicts else 0


def iso_utc(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, the RunResult's timestamp format."""
    stamp = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_k8s_time(text: str | None) -> float | None:
    """Seconds since the epoch of a Kubernetes timestamp (2026-11-25T22:00:00Z, fractions allowed)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
