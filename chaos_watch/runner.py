"""Running the experiments: preflight, apply, observe, abort, recovery. The I/O half of chaos-watch.

cli.py builds a Runner from the three seams (Cluster, MetricsReader, Journal) and calls run(); everything that
decides something (thresholds, outages, verdicts) is in core.py. Each experiment runs in a worker thread so that
the main thread stays free to receive SIGINT/SIGTERM; an interrupted run sets `cancel`, and every worker stops its
engine in a finally before the RunResult is written.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chaosgen.errors import EnvironmentFailure, Interrupted
from chaos_watch import core
from chaos_watch.cluster import Cluster
from chaos_watch.journal import Journal, applied_objects
from chaos_watch.prometheus import MetricsReader, MetricsUnavailable

log = logging.getLogger("chaos_watch")

LITMUS = "litmuschaos.io/v1alpha1"
LITMUS_CRDS = ("chaosengines.litmuschaos.io", "chaosexperiments.litmuschaos.io", "chaosresults.litmuschaos.io")
INACTIVE_ENGINE = ("completed", "stopped")
RETRY_SECONDS = 60.0
# Support objects go in before the engines, in an order in which each finds what it refers to.
APPLY_ORDER = ("Namespace", "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding",
               "ConfigMap", "ChaosExperiment")
WORKLOAD_API = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1"}
# Preflight checks whose failure is the environment's fault (verdict error, exit 4) rather than the input's.
ENVIRONMENT_CHECKS = ("litmus-crds", "prometheus")


@dataclass(frozen=True)
class Settings:
    interval: float = 2.0
    timeout: float | None = None
    recovery_timeout: float = 300.0
    on_metrics_loss: str = "abort"
    dry_run: bool = False
    parallel: int = 1
    stop_timeout: float = 60.0


def default_timeout(engine: core.Engine) -> float:
    """How long an engine may run when --timeout is not given: its chaos duration plus two minutes of slack."""
    return engine.chaos_seconds + 120.0


class TargetPods:
    """The target's pods as the pod watch reports them: who is ready now, and every change with its true time."""

    def __init__(self) -> None:
        self.ready: dict[str, bool] = {}
        self.changes: list[core.PodChange] = []

    def update(self, event_type: str, pod: dict[str, Any], received: float) -> core.PodChange | None:
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


class Runner:
    def __init__(self, cluster: Cluster, metrics: MetricsReader | None, journal: Journal, policy: dict[str, Any],
                 settings: Settings, emit: Callable[[dict[str, Any]], None], clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.journal = journal
        self.policy = policy
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.cancel = threading.Event()
        self.cancel_reason = ""
        self._wakers: list[threading.Event] = []
        self._crd_problem: str | None | bool = False
        self.last_observations: list[core.Observation] = []

    # -- the run -------------------------------------------------------------------------------------------------

    def run(self, engines: list[core.Engine], support: list[dict[str, Any]]) -> list[core.Observation]:
        """Run every engine (at most `parallel` at once) and return what was observed, in input order.

        Called by the CLI in the main thread; an Interrupted or KeyboardInterrupt here cancels the workers, waits
        for each to stop its engine, and is raised again once they have.
        """
        self.journal.record("run", server=self.cluster.server(), started_at=core.iso_utc(self.clock()),
                            engines=[f"{e.namespace}/{e.name}" for e in engines])
        support_names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in support}
        self._apply_support(support)
        observations = [core.Observation(e, thresholds=[core.ThresholdState(t) for t in e.thresholds]) for e in engines]
        self.last_observations = observations
        with ThreadPoolExecutor(max_workers=max(1, self.settings.parallel), thread_name_prefix="experiment") as pool:
            futures = [pool.submit(self._run_one, o, support_names) for o in observations]
            interrupted: BaseException | None = None
            for future in futures:
                while True:
                    try:
                        future.result()
                        break
                    except (Interrupted, KeyboardInterrupt) as e:
                        interrupted = interrupted or e
                        self.interrupt(str(e) or "interrupted by SIGINT")
        # A stop Litmus never confirmed leaves the journal open, so that `chaos-watch cleanup` looks again.
        unconfirmed = [o for o in observations if o.abort and not o.abort["confirmed"]]
        if not self.settings.dry_run and not unconfirmed:
            self.journal.record("finished", at=core.iso_utc(self.clock()))
        if interrupted is not None:
            raise Interrupted(self.cancel_reason) from interrupted
        return observations

    def interrupt(self, reason: str) -> None:
        """Stop everything: each running experiment aborts (by signal), the ones not started are skipped."""
        if not self.cancel.is_set():
            self.cancel_reason = reason
            log.warning("%s: stopping the running experiments", reason)
        self.cancel.set()
        for waker in list(self._wakers):
            waker.set()

    def _apply_support(self, support: list[dict[str, Any]]) -> None:
        ordered = sorted(support, key=lambda o: APPLY_ORDER.index(o["kind"]) if o["kind"] in APPLY_ORDER else len(APPLY_ORDER))
        for obj in ordered:
            self._apply(obj)

    def _apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        if not self.settings.dry_run:
            existing = self.cluster.get(obj["apiVersion"], obj["kind"], metadata.get("namespace"), metadata["name"])
            self.journal.record("apply", apiVersion=obj["apiVersion"], kind=obj["kind"], namespace=metadata.get("namespace"),
                                name=metadata["name"], existed=existing is not None)
        return self.cluster.apply(obj, dry_run=self.settings.dry_run)

    # -- one experiment ------------------------------------------------------------------------------------------

    def _run_one(self, observation: core.Observation, support_names: set[tuple[str, str | None, str]]) -> None:
        engine = observation.engine
        if self.cancel.is_set():
            observation.skipped_reason = f"not started: {self.cancel_reason}"
            return
        try:
            if not self._preflight(observation, support_names):
                return
            if self.settings.dry_run:
                self._apply(engine.manifest)
                observation.preflight.append({"check": "dry-run-apply", "ok": True, "message": "server-side dry-run apply accepted"})
                observation.skipped_reason = "dry run: preflight and server-side dry-run apply passed; no chaos injected"
                return
            self._execute(observation)
        except EnvironmentFailure as e:
            observation.error_reason = str(e)
            self._emit(observation, "error", str(e))

    def _execute(self, observation: core.Observation) -> None:
        engine = observation.engine
        wake = threading.Event()
        stop_watches = threading.Event()
        state: dict[str, Any] = {"ChaosEngine": None, "ChaosResult": None}
        synced = {kind: threading.Event() for kind in ("ChaosEngine", "ChaosResult", "Pod")}
        pods = TargetPods()
        lock = threading.Lock()

        def on_object(kind: str) -> Callable[[str, dict[str, Any], float], None]:
            def handle(event: str, obj: dict[str, Any], received: float) -> None:
                if event == "SYNCED":
                    synced[kind].set()
                    return
                with lock:
                    if kind == "Pod":
                        change = pods.update(event, obj, received)
                    else:
                        state[kind], change = (None if event == "DELETED" else obj), None
                if change is not None and observation.started_at is not None:
                    self._emit(observation, "pod-ready" if change.ready else "pod-lost", f"pod {change.pod}", at=change.t)
                wake.set()
            return handle

        def view() -> tuple[Any, Any]:
            return state["ChaosEngine"], state["ChaosResult"]

        app_namespace = engine.appinfo.get("appns", engine.namespace)
        watches = [
            dict(api_version=LITMUS, kind="ChaosEngine", namespace=engine.namespace, name=engine.name),
            dict(api_version=LITMUS, kind="ChaosResult", namespace=engine.namespace, name=engine.result_name),
            dict(api_version="v1", kind="Pod", namespace=app_namespace, label_selector=engine.appinfo.get("applabel")),
        ]
        self._replace_inactive_engine(engine)
        self._wakers.append(wake)
        for spec in watches:
            threading.Thread(target=self._watch_quietly, args=({**spec, "handler": on_object(spec["kind"])}, stop_watches),
                             daemon=True, name=f"watch-{spec['kind']}").start()
        try:
            for kind, event in synced.items():
                if not event.wait(RETRY_SECONDS):
                    raise EnvironmentFailure(f"the {kind} watch did not start within {RETRY_SECONDS:g}s")
            initially_ready = self._inject(observation, wake, lock, pods, view)
            self._recover(observation, wake, lock, pods)
            with lock:
                observation.chaos_result = core.summarize_chaos_result(state["ChaosResult"])
                observation.outages = core.outages(initially_ready, pods.changes, self._desired(engine), observation.started_at)
            observation.ended_at = self.clock()
        finally:
            stop_watches.set()
            self._wakers.remove(wake)

    def _inject(self, observation: core.Observation, wake: threading.Event, lock: threading.Lock, pods: TargetPods,
                view: Callable[[], tuple[Any, Any]]) -> set[str]:
        """Apply the engine and observe it until it ends; returns the target pods that were ready before."""
        engine = observation.engine
        applied = False
        try:
            observation.started_at = self.clock()
            self._emit(observation, "apply", f"ChaosEngine {engine.namespace}/{engine.name} ({engine.fault} on {engine.target})")
            with lock:
                initially_ready = pods.ready_names()
            self._apply(engine.manifest)
            applied = True
            self._observe(observation, wake, lock, view)
        finally:
            # Whatever ends the observation (a signal, a lost cluster, a bug), chaos we started is stopped.
            if applied and not observation.chaos_ended:
                by = "signal" if self.cancel.is_set() else "error"
                self._abort(observation, wake, lock, lambda: view()[0], by,
                            self.cancel_reason or "chaos-watch failed while observing", None)
        return initially_ready

    def _watch_quietly(self, spec: dict[str, Any], stop: threading.Event) -> None:
        try:
            self.cluster.watch(**spec, stop=stop)
        except Exception as e:  # noqa: BLE001 - a dead watch must not kill the run; the timeout still guards it
            log.warning("watch of %s stopped: %s", spec["kind"], e)

    def _replace_inactive_engine(self, engine: core.Engine) -> None:
        """A finished engine of the same name (an earlier run) is deleted so that Litmus runs the new one."""
        existing = self.cluster.get(LITMUS, "ChaosEngine", engine.namespace, engine.name)
        if existing is None:
            return
        for kind, name in (("ChaosEngine", engine.name), ("ChaosResult", engine.result_name)):
            self.cluster.delete(LITMUS, kind, engine.namespace, name)
        deadline = time.monotonic() + 30
        while self.cluster.get(LITMUS, "ChaosEngine", engine.namespace, engine.name) is not None:
            if time.monotonic() > deadline:
                raise EnvironmentFailure(f"the previous ChaosEngine {engine.name} was not deleted within 30s")
            time.sleep(0.2)

    def _observe(self, observation: core.Observation, wake: threading.Event, lock: threading.Lock,
                 state_view: Callable[[], tuple[Any, Any]]) -> None:
        """Until the engine completes: evaluate thresholds every interval, abort on breach/metrics loss/timeout/signal."""
        engine = observation.engine
        settings = self.settings
        deadline = observation.started_at + (settings.timeout or default_timeout(engine))
        next_evaluation = self.clock()
        last_status = None
        while True:
            now = self.clock()
            if self.cancel.is_set():
                return  # the finally in _execute stops the engine, recorded as aborted by signal
            with lock:
                engine_obj, _ = state_view()
            status = ((engine_obj or {}).get("status") or {}).get("engineStatus")
            if status != last_status and status:
                self._emit(observation, "engine-status", f"engineStatus {status}")
                last_status = status
            if status in INACTIVE_ENGINE:
                observation.chaos_ended = True
                self._emit(observation, "chaos-ended", f"Litmus reports the engine {status}")
                return
            if now >= next_evaluation:
                verdict = self._evaluate(observation, now)
                if verdict is not None:
                    by, reason, threshold = verdict
                    self._abort(observation, wake, lock, lambda: state_view()[0], by, reason, threshold)
                    return
                next_evaluation = max(next_evaluation + settings.interval, now + settings.interval / 4)
            if now >= deadline:
                self._abort(observation, wake, lock, lambda: state_view()[0], "timeout",
                            f"the engine did not complete within {deadline - observation.started_at:g}s (--timeout)", None)
                return
            wake.wait(max(0.0, min(next_evaluation, deadline) - self.clock()))
            wake.clear()

    def _evaluate(self, observation: core.Observation, now: float) -> tuple[str, str, str | None] | None:
        """Sample every threshold once; (aborted_by, reason, threshold name) when the experiment must stop."""
        lost: list[str] = []
        for state in observation.thresholds:
            value, problem = self._sample(state.threshold.query)
            if problem:
                lost.append(problem)
            was_breached = state.breached_now
            breached = state.observe(now, value)
            observation.samples.append({"t": observation.offset(now), "name": state.threshold.name,
                                        "value": None if value is None or math.isnan(value) else round(value, 6),
                                        "breached": breached})
            if breached:
                t = state.threshold
                reason = (f"threshold {t.name} breached: {_number(value)} {t.operator} {_number(t.value)}"
                          + (f" for {t.for_text}" if t.for_seconds else ""))
                if not was_breached:
                    self._emit(observation, "breach", reason, at=now)
                return "threshold", reason, t.name
        if lost:
            if not observation.events or observation.events[-1]["type"] != "metrics-loss":
                self._emit(observation, "metrics-loss", lost[0], at=now)
            if self.settings.on_metrics_loss == "abort":
                return "metrics-loss", f"metrics lost: {lost[0]}", None
        return None

    def _sample(self, query: str) -> tuple[float | None, str | None]:
        """A threshold query's single value; one retry, because one dropped request is not yet a lost Prometheus."""
        if self.metrics is None:
            return None, "no Prometheus URL"
        for attempt in range(2):
            try:
                values = self.metrics.query(query)
                return (values[0] if len(values) == 1 else None), None
            except MetricsUnavailable as e:
                if attempt:
                    return None, str(e)
        return None, None

    def _holds(self, query: str, operator: str, limit: float) -> bool:
        """Whether a steady-state condition holds now; no value (Prometheus gone, no series) is not holding."""
        value, _ = self._sample(query)
        return value is not None and not math.isnan(value) and core.compare(value, operator, limit)

    def _abort(self, observation: core.Observation, wake: threading.Event, lock: threading.Lock,
               engine_view: Callable[[], Any], by: str, reason: str, threshold: str | None) -> None:
        """Patch engineState stop, wait for Litmus to report the engine stopped, and record who and why."""
        engine = observation.engine
        breach_at = next((s.first_breach_at for s in observation.thresholds if s.threshold.name == threshold), None)
        requested = self.clock()
        abort: dict[str, Any] = {
            "by": by, "reason": reason, "threshold": threshold,
            "breach_at": observation.offset(breach_at) if breach_at is not None else None,
            "requested_at": observation.offset(requested), "stopped_at": None, "confirmed": False,
        }
        observation.abort = abort
        observation.chaos_ended = True
        self.journal.record("stop", namespace=engine.namespace, name=engine.name, by=by, reason=reason)
        try:
            self.cluster.stop_engine(engine.namespace, engine.name)
        except EnvironmentFailure as e:
            self._emit(observation, "stop-failed", f"engineState stop could not be patched: {e}")
            return
        self._emit(observation, "stop-requested", f"engineState stop ({by}: {reason})", at=requested)
        deadline = requested + self.settings.stop_timeout
        while self.clock() < deadline:
            with lock:
                status = ((engine_view() or {}).get("status") or {}).get("engineStatus")
            if status in INACTIVE_ENGINE:
                abort.update(stopped_at=observation.offset(self.clock()), confirmed=True)
                self._emit(observation, "stopped", f"Litmus reports the engine {status}")
                return
            wake.wait(min(0.5, max(0.0, deadline - self.clock())))
            wake.clear()
        self._emit(observation, "stop-unconfirmed", f"the engine was not reported stopped within {self.settings.stop_timeout:g}s")

    def _recover(self, observation: core.Observation, wake: threading.Event, lock: threading.Lock,
                 pods: TargetPods) -> None:
        """Wait until the target is back at its desired ready replicas, every threshold holds again and the
        experiment's Prometheus steady state holds again. The steady state is stricter than "not breached" (an
        error rate below the limit, not at it), and the next experiment's preflight checks it: without it a run
        of several experiments skips the next one on the previous one's residue."""
        desired = self._desired(observation.engine)
        deadline = self.clock() + self.settings.recovery_timeout
        next_evaluation = self.clock()
        steady = core.steady_state_queries(observation.engine)
        thresholds_hold, steady_holds = not observation.thresholds, not steady
        while not self.cancel.is_set():
            now = self.clock()
            if now >= next_evaluation and (observation.thresholds or steady):
                if observation.thresholds:
                    self._evaluate(observation, now)
                    latest = observation.samples[-len(observation.thresholds):]
                    thresholds_hold = all(s["value"] is not None and not s["breached"] for s in latest) and all(
                        state.pending_since is None for state in observation.thresholds)
                steady_holds = all(self._holds(query, operator, limit) for _, query, operator, limit in steady)
                next_evaluation = now + self.settings.interval
            with lock:
                ready = len(pods.ready_names())
            if ready >= desired and thresholds_hold and steady_holds:
                observation.recovered = True
                self._emit(observation, "recovered", f"{ready}/{desired} target pods ready, every threshold and the "
                           "steady state hold")
                return
            if now >= deadline:
                observation.recovered = False
                self._emit(observation, "not-recovered",
                           f"{ready}/{desired} target pods ready, thresholds {'hold' if thresholds_hold else 'still breached'}"
                           f", steady state {'holds' if steady_holds else 'does not hold'}"
                           f" after --recovery-timeout {self.settings.recovery_timeout:g}s")
                return
            wake.wait(max(0.0, min(next_evaluation, deadline) - self.clock()))
            wake.clear()

    # -- preflight -----------------------------------------------------------------------------------------------

    def _preflight(self, observation: core.Observation, support_names: set[tuple[str, str | None, str]]) -> bool:
        """Every check before chaos; a failure skips the experiment (or marks it error for environment checks)."""
        engine = observation.engine
        checks = observation.preflight

        def check(name: str, ok: bool, message: str) -> None:
            checks.append({"check": name, "ok": ok, "message": message})

        problems = core.engine_violations(engine, self.policy)
        check("policy", not problems, "; ".join(f"policy rule {rule}: {message}" for rule, message in problems)
              or "the safety policy allows the experiment")
        crd_problem = self._crds()
        check("litmus-crds", crd_problem is None, crd_problem or "Litmus CRDs installed")
        if crd_problem is None:
            known = (engine.fault and ("ChaosExperiment", engine.namespace, engine.fault) in support_names) or (
                engine.fault and self.cluster.get(LITMUS, "ChaosExperiment", engine.namespace, engine.fault) is not None)
            check("chaos-experiment", bool(known), f"ChaosExperiment {engine.fault} "
                  + ("present" if known else f"not found in namespace {engine.namespace}"))
            existing = self.cluster.get(LITMUS, "ChaosEngine", engine.namespace, engine.name)
            active = existing is not None and _engine_active(existing)
            check("no-active-engine", not active, f"ChaosEngine {engine.name} "
                  + ("is already running" if active else "not running"))
        check(*self._steady_target(engine))
        self._check_thresholds(engine, check)
        failed = [c for c in checks if not c["ok"]]
        for failure in failed:
            self._emit(observation, "preflight-failed", f"{failure['check']}: {failure['message']}")
        if not failed:
            return True
        first = failed[0]
        reason = f"preflight {first['check']} failed: {first['message']}"
        if first["check"] in ENVIRONMENT_CHECKS:
            observation.error_reason = reason
        else:
            observation.skipped_reason = reason
        return False

    def _crds(self) -> str | None:
        if self._crd_problem is False:
            missing = [name for name in LITMUS_CRDS
                       if self.cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) is None]
            self._crd_problem = f"Litmus CRDs missing: {', '.join(missing)}" if missing else None
        return self._crd_problem  # type: ignore[return-value]

    def _steady_target(self, engine: core.Engine) -> tuple[str, bool, str]:
        kind_name = engine.target_kind_name
        if kind_name is None or kind_name[0] not in WORKLOAD_API:
            return "target", True, f"target {engine.target} is not a replicated workload; readiness not checked"
        kind, name = kind_name
        namespace = engine.appinfo.get("appns", engine.namespace)
        workload = self.cluster.get(WORKLOAD_API[kind], kind, namespace, name)
        if workload is None:
            return "target", False, f"{kind} {namespace}/{name} does not exist"
        desired = (workload.get("spec") or {}).get("replicas", 1)
        ready = (workload.get("status") or {}).get("readyReplicas", 0) or 0
        if ready < desired:
            return "target", False, f"{kind} {namespace}/{name} has {ready}/{desired} ready replicas (steady state does not hold)"
        return "target", True, f"{kind} {namespace}/{name} has {ready}/{desired} ready replicas"

    def _desired(self, engine: core.Engine) -> int:
        kind_name = engine.target_kind_name
        if kind_name is None or kind_name[0] not in WORKLOAD_API:
            return 1
        workload = self.cluster.get(WORKLOAD_API[kind_name[0]], kind_name[0],
                                    engine.appinfo.get("appns", engine.namespace), kind_name[1])
        return ((workload or {}).get("spec") or {}).get("replicas", 1)

    def _check_thresholds(self, engine: core.Engine, check: Callable[[str, bool, str], None]) -> None:
        """Each abort query answers with exactly one series and is not breached yet; each Prometheus steady-state
        check of the experiment holds. (name, query, operator, value, whether the condition must hold)."""
        conditions = [(f"threshold-{t.name}", t.query, t.operator, t.value, False) for t in engine.thresholds]
        conditions += [(f"steady-{name}", query, operator, value, True)
                       for name, query, operator, value in core.steady_state_queries(engine)]
        if not conditions:
            return
        if self.metrics is None:
            check("prometheus", False, "no Prometheus URL (--prometheus-url or PROMETHEUS_URL)")
            return
        for name, query, operator, limit, must_hold in conditions:
            try:
                values = self.metrics.query(query)
            except MetricsUnavailable as e:
                check("prometheus", False, str(e))
                return
            if len(values) != 1:
                check(name, False, f"query returns {len(values)} series, not exactly one")
                continue
            value = values[0]
            holds = not math.isnan(value) and core.compare(value, operator, limit)
            condition = f"{_number(value)} {operator} {_number(limit)}"
            if holds != must_hold:
                check(name, False, f"steady state does not hold: not {condition}" if must_hold
                      else f"already breached before chaos: {condition}")
            else:
                check(name, True, f"one series, value {_number(value)}")

    # -- progress ------------------------------------------------------------------------------------------------

    def _emit(self, observation: core.Observation, kind: str, message: str, at: float | None = None) -> None:
        entry = observation.event(self.clock() if at is None else at, kind, message)
        self.emit({"experiment": observation.engine.experiment_id, **entry})


def _engine_active(engine: dict[str, Any]) -> bool:
    """Running until Litmus says otherwise: engineState stop that Litmus has not confirmed still counts."""
    return (engine.get("status") or {}).get("engineStatus") not in INACTIVE_ENGINE


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def stop_leftovers(cluster: Cluster, records: list[dict[str, Any]], delete: bool, wait_seconds: float,
                   say: Callable[[str], None]) -> int:
    """What `chaos-watch cleanup` does for one journal: stop the active engines, optionally delete what was created.

    Returns how many engines it stopped.
    """
    stopped = 0
    objects = applied_objects(records)
    for obj in objects:
        if obj["kind"] != "ChaosEngine":
            continue
        live = cluster.get(obj["apiVersion"], "ChaosEngine", obj.get("namespace"), obj["name"])
        if live is None or not _engine_active(live):
            continue
        cluster.stop_engine(obj["namespace"], obj["name"])
        stopped += 1
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            live = cluster.get(obj["apiVersion"], "ChaosEngine", obj["namespace"], obj["name"])
            if live is None or ((live.get("status") or {}).get("engineStatus") in INACTIVE_ENGINE):
                break
            time.sleep(0.5)
        say(f"stopped ChaosEngine {obj['namespace']}/{obj['name']}")
    if delete:
        for obj in reversed(objects):
            if obj.get("existed"):
                continue
            cluster.delete(obj["apiVersion"], obj["kind"], obj.get("namespace"), obj["name"])
            say(f"deleted {obj['kind']} {obj.get('namespace') or ''}/{obj['name']}")
    return stopped
