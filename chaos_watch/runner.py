"""Running the experiments: apply, observe, abort, recovery. The I/O half of chaos-watch.

cli.py builds a Runner from its seams (Cluster, EngineBackend, MetricsReader, Journal) and calls run(); everything
that decides something (thresholds, outages, verdicts) is in core.py, the checks before chaos in preflight.py, and
what the chaos engine itself does (start, watch, stop) behind the EngineBackend. Each experiment runs in a worker
thread so that the main thread stays free to receive SIGINT/SIGTERM; an interrupted run sets `cancel`, and every
worker stops its engine in a finally before the RunResult is written.
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

from chaos_watch import core, evidence, preflight
from chaos_watch.cluster import Cluster
from chaos_watch.engine import EngineBackend, EngineRun
from chaos_watch.journal import Journal, process_identity
from chaos_watch.metrics import MetricsReader, number, sample
from chaos_watch.target import desired_replicas
from chaosgen.errors import EnvironmentFailure, Interrupted

log = logging.getLogger("chaos_watch")

# Support objects go in before the engines, in an order in which each finds what it refers to; the backend's own
# support kinds (Litmus: ChaosExperiment) come after these.
APPLY_ORDER = ("Namespace", "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "ConfigMap")
STOP_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Settings:
    interval: float = 2.0
    timeout: float | None = None
    recovery_timeout: float = 300.0
    on_metrics_loss: str = "abort"
    dry_run: bool = False
    parallel: int = 1
    stop_timeout: float = 60.0
    allow_inert_thresholds: bool = False


def default_timeout(engine: core.Engine) -> float:
    """How long an engine may run when --timeout is not given: its chaos duration plus two minutes of slack."""
    return engine.chaos_seconds + 120.0


class Runner:
    def __init__(self, cluster: Cluster, backend: EngineBackend, metrics: MetricsReader | None, journal: Journal,
                 policy: dict[str, Any], settings: Settings, emit: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.backend = backend
        self.metrics = metrics
        self.journal = journal
        self.policy = policy
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.cancel = threading.Event()
        self.cancel_reason = ""
        self._wakers: list[threading.Event] = []
        self.last_observations: list[core.Observation] = []

    # -- the run -------------------------------------------------------------------------------------------------

    def run(self, engines: list[core.Engine], support: list[dict[str, Any]]) -> list[core.Observation]:
        """Run every engine (at most `parallel` at once) and return what was observed, in input order.

        Called by the CLI in the main thread; an Interrupted or KeyboardInterrupt here cancels the workers, waits
        for each to stop its engine, and is raised again once they have.
        """
        self.journal.record("run", server=self.cluster.server(), started_at=core.iso_utc(self.clock()),
                            engines=[f"{e.namespace}/{e.name}" for e in engines], process=process_identity())
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
        # A stop the engine never confirmed leaves the journal open, so that `chaos-watch cleanup` looks again.
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
        order = APPLY_ORDER + self.backend.support_kinds
        ordered = sorted(support, key=lambda o: order.index(o["kind"]) if o["kind"] in order else len(order))
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
        try:
            if self.cancel.is_set():
                observation.skipped_reason = f"not started: {self.cancel_reason}"
                return
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
        finally:
            # The one line a user sees per experiment even without a terminal; not an event of the RunResult.
            verdict, reason = core.decide(observation)
            self.emit({"experiment": engine.experiment_id, "t": observation.offset(self.clock()), "type": "verdict",
                       "message": f"{verdict}: {reason}"})

    def _execute(self, observation: core.Observation) -> None:
        engine = observation.engine
        wake = threading.Event()

        def on_pod(change: core.PodChange) -> None:
            if observation.started_at is not None:
                self._emit(observation, "pod-ready" if change.ready else "pod-lost", f"pod {change.pod}", at=change.t)

        self._wakers.append(wake)
        try:
            run = self.backend.start(engine, wake, on_pod)
            try:
                initially_ready = self._inject(observation, run, wake)
                assert observation.started_at is not None  # _inject sets it first thing
                self._recover(observation, run, wake)
                observation.chaos_result = run.chaos_result()
                self._notice_outside_stop(observation, run)
                observation.outages = core.outages(initially_ready, run.pod_changes(), self._desired(engine),
                                                   observation.started_at)
                observation.ended_at = self.clock()
                self._keep_kube_events(observation, initially_ready | {c.pod for c in run.pod_changes()})
            finally:
                run.close()
                self._bound_timeline(observation)
        finally:
            self._wakers.remove(wake)

    def _inject(self, observation: core.Observation, run: EngineRun, wake: threading.Event) -> set[str]:
        """Apply the engine and observe it until it ends; returns the target pods that were ready before."""
        engine = observation.engine
        applied = False
        try:
            observation.started_at = self.clock()
            self._emit(observation, "apply", f"{self.backend.engine_kind} {engine.namespace}/{engine.name} "
                       f"({engine.fault} on {engine.target})")
            initially_ready = run.ready_pods()
            self._apply(engine.manifest)
            applied = True
            self._observe(observation, run, wake)
        finally:
            # Whatever ends the observation (a signal, a lost cluster, a bug), chaos we started is stopped.
            if applied and not observation.chaos_ended:
                by = "signal" if self.cancel.is_set() else "error"
                self._abort(observation, run, wake, by, self.cancel_reason or "chaos-watch failed while observing", None)
        return initially_ready

    def _observe(self, observation: core.Observation, run: EngineRun, wake: threading.Event) -> None:
        """Until the engine completes: evaluate thresholds every interval, abort on breach/metrics loss/timeout/signal."""
        engine = observation.engine
        settings = self.settings
        started_at = observation.started_at
        assert started_at is not None  # _inject sets it before it observes
        deadline = started_at + (settings.timeout or default_timeout(engine))
        next_evaluation = self.clock()
        last_status = None
        injected = False
        while True:
            now = self.clock()
            if self.cancel.is_set():
                return  # the finally in _inject stops the engine, recorded as aborted by signal
            status = run.status()
            if status != last_status and status:
                self._emit(observation, "engine-status", f"engine status {status}")
                last_status = status
            if not injected and (run.chaos_result() or {}).get("phase") == "Running":
                # The engine's result says its chaos is under way: the timeline's "injected" mark.
                injected = True
                self._emit(observation, "injected", f"{self.backend.name} reports the chaos running")
            if run.ended():
                observation.chaos_ended = True
                self._emit(observation, "chaos-ended", f"{self.backend.name} reports the engine {run.status()}")
                self._notice_outside_stop(observation, run)
                return
            if now >= next_evaluation:
                verdict = self._evaluate(observation, now)
                if verdict is not None:
                    by, reason, threshold = verdict
                    self._abort(observation, run, wake, by, reason, threshold)
                    return
                next_evaluation = max(next_evaluation + settings.interval, now + settings.interval / 4)
            if now >= deadline:
                self._abort(observation, run, wake, "timeout",
                            f"the engine did not complete within {deadline - started_at:g}s (--timeout)", None)
                return
            wake.wait(max(0.0, min(next_evaluation, deadline) - self.clock()))
            wake.clear()

    def _evaluate(self, observation: core.Observation, now: float) -> tuple[str, str, str | None] | None:
        """Sample every threshold once; (aborted_by, reason, threshold name) when the experiment must stop."""
        lost: list[str] = []
        for state in observation.thresholds:
            value, problem = sample(self.metrics, state.threshold.query)
            if problem:
                lost.append(problem)
            was_breached = state.breached_now
            breached = state.observe(now, value)
            observation.samples.append({"t": observation.offset(now), "name": state.threshold.name,
                                        "value": None if value is None or math.isnan(value) else round(value, 6),
                                        "breached": breached})
            if breached:
                t = state.threshold
                reason = (f"threshold {t.name} breached: {number(value)} {t.operator} {number(t.value)}"
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

    def _holds(self, observation: core.Observation, now: float, name: str, query: str, operator: str,
               limit: float) -> bool:
        """Whether a steady-state condition holds now, recorded on the timeline; no value (Prometheus gone, no
        series) is not holding."""
        value, _ = sample(self.metrics, query)
        known = value is not None and not math.isnan(value)
        holds = value is not None and known and core.compare(value, operator, limit)
        observation.steady_state_samples.append({"t": observation.offset(now), "name": name,
                                                 "value": round(value, 6) if value is not None and known else None,
                                                 "holds": holds})
        return holds

    def _abort(self, observation: core.Observation, run: EngineRun, wake: threading.Event, by: str, reason: str,
               threshold: str | None) -> None:
        """Ask the engine to stop, wait for it to report the chaos over, and record who and why."""
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
            self.backend.stop(engine.namespace, engine.name)
        except EnvironmentFailure as e:
            self._emit(observation, "stop-failed", f"the stop could not be requested: {e}")
            return
        self._emit(observation, "stop-requested", f"stop requested ({by}: {reason})", at=requested)
        deadline = requested + self.settings.stop_timeout
        while self.clock() < deadline:
            if run.ended():
                abort.update(stopped_at=observation.offset(self.clock()), confirmed=True)
                self._emit(observation, "stopped", f"{self.backend.name} reports the engine {run.status()}")
                return
            wake.wait(min(STOP_POLL_SECONDS, max(0.0, deadline - self.clock())))
            wake.clear()
        self._emit(observation, "stop-unconfirmed", f"the engine was not reported stopped within {self.settings.stop_timeout:g}s")

    def _notice_outside_stop(self, observation: core.Observation, run: EngineRun) -> None:
        """Record an abort by someone else when the engine, or its result, says stopped and chaos-watch never asked:
        such a run was cut short, so it must not pass."""
        if observation.abort is None and (run.stopped() or core.result_stopped(run.chaos_result())):
            observation.abort = core.outside_stop(observation, self.clock(), run.stopped_by())
            self._emit(observation, "stopped-externally", observation.abort["reason"])

    def _recover(self, observation: core.Observation, run: EngineRun, wake: threading.Event) -> None:
        """Wait until the target is back at its desired ready replicas, every threshold holds again and the
        experiment's Prometheus steady state holds again. The steady state is stricter than "not breached" (an
        error rate below the limit, not at it), and the next experiment's preflight checks it: without it a run
        of several experiments skips the next one on the previous one's residue.

        After an abort on lost metrics there is nothing to wait for in Prometheus: recovery is then measured from
        pod readiness alone, and the event says that the thresholds and steady state went unchecked."""
        desired = self._desired(observation.engine)
        deadline = self.clock() + self.settings.recovery_timeout
        next_evaluation = self.clock()
        metrics_lost = observation.abort is not None and observation.abort["by"] == "metrics-loss"
        steady = [] if metrics_lost else core.steady_state_queries(observation.engine)
        thresholds = [] if metrics_lost else observation.thresholds
        thresholds_state, steady_holds = "hold", True
        while not self.cancel.is_set():
            now = self.clock()
            if now >= next_evaluation and (thresholds or steady):
                if thresholds:
                    thresholds_state = self._thresholds_state(observation, now)
                steady_holds = all([self._holds(observation, now, *check) for check in steady])
                next_evaluation = now + self.settings.interval
            ready = len(run.ready_pods())
            unchecked = "; thresholds and steady state not checked: metrics were lost" if metrics_lost else ""
            if ready >= desired and thresholds_state == "hold" and steady_holds:
                observation.recovered = True
                self._emit(observation, "recovered", f"{ready}/{desired} target pods ready"
                           + (unchecked or ", every threshold and the steady state hold"))
                return
            if now >= deadline:
                observation.recovered = False
                metrics = unchecked or (f", thresholds {thresholds_state}, steady state "
                                        f"{'holds' if steady_holds else 'does not hold'}")
                self._emit(observation, "not-recovered", f"{ready}/{desired} target pods ready{metrics}"
                           f" after --recovery-timeout {self.settings.recovery_timeout:g}s")
                return
            wake.wait(max(0.0, min(next_evaluation, deadline) - self.clock()))
            wake.clear()

    def _thresholds_state(self, observation: core.Observation, now: float) -> str:
        """Sample every threshold once during recovery: "hold", "still breached", or "unreadable" (no value)."""
        self._evaluate(observation, now)
        latest = observation.samples[-len(observation.thresholds):]
        if any(s["value"] is None for s in latest):
            return "unreadable (no sample)"
        if any(s["breached"] for s in latest) or any(state.pending_since is not None for state in observation.thresholds):
            return "still breached"
        return "hold"

    # -- preflight -----------------------------------------------------------------------------------------------

    def _preflight(self, observation: core.Observation, support_names: set[tuple[str, str | None, str]]) -> bool:
        """Every check before chaos; a failure skips the experiment (or marks it error for environment checks)."""
        checks = preflight.checks(observation.engine, support_names, self.backend, self.cluster, self.metrics, self.policy,
                                  self.settings.allow_inert_thresholds)
        observation.preflight.extend(checks)
        failed = [c for c in checks if not c["ok"]]
        for failure in failed:
            self._emit(observation, "preflight-failed", f"{failure['check']}: {failure['message']}")
        if not failed:
            return True
        first = failed[0]
        reason = f"preflight {first['check']} failed: {first['message']}"
        if preflight.is_environment_check(first["check"], self.backend):
            observation.error_reason = reason
        else:
            observation.skipped_reason = reason
        return False

    def _keep_kube_events(self, observation: core.Observation, pods: set[str]) -> None:
        """The namespace's Kubernetes events about the target and the pods the run disrupted, for chaos-report.
        Evidence, not a verdict: a cluster that does not answer costs the events and a warning, not the run."""
        engine = observation.engine
        namespace = self.backend.target_namespace(engine)
        try:
            listed = self.cluster.list("v1", "Event", namespace)
        except EnvironmentFailure as e:
            log.warning("%s: the Kubernetes events of %s could not be read: %s", engine.experiment_id, namespace, e)
            return
        observation.kube_events, observation.omitted["kube_events"] = evidence.kube_events(
            listed, namespace, engine.target_kind_name, pods, observation.started_at or self.clock(), self.clock(),
            observation.offset)

    @staticmethod
    def _bound_timeline(observation: core.Observation) -> None:
        """Keep the RunResult's size bounded however long the run (evidence.py says what is kept)."""
        observation.samples, observation.omitted["samples"] = evidence.bounded_samples(observation.samples)
        observation.steady_state_samples, observation.omitted["steady_state_samples"] = evidence.bounded_samples(
            observation.steady_state_samples)
        observation.events, observation.omitted["events"] = evidence.bounded_events(observation.events)

    def _desired(self, engine: core.Engine) -> int:
        return desired_replicas(self.cluster, engine, self.backend.target_namespace(engine))

    # -- progress ------------------------------------------------------------------------------------------------

    def _emit(self, observation: core.Observation, kind: str, message: str, at: float | None = None) -> None:
        entry = observation.event(self.clock() if at is None else at, kind, message)
        self.emit({"experiment": observation.engine.experiment_id, **entry})
