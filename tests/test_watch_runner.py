"""The runner's decisions through its seams, with small in-memory stand-ins for the Cluster, the MetricsReader and
the Journal (injected, not patched): breach, metrics loss with --on-metrics-loss abort|continue, timeout, skipped
preflight, the journal written before each create, and leftovers stopped by cleanup. LitmusBackend runs over the
fake Cluster; a scripted EngineBackend shows that the runner needs nothing of Litmus itself."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from chaos_watch import core
from chaos_watch.leftovers import stop_leftovers
from chaos_watch.litmus import LITMUS_CRDS, LitmusBackend
from chaos_watch.runner import Runner, Settings
from chaosgen.errors import PrometheusQueryRejected, PrometheusUnreachable
from chaosgen.policy import DEFAULT_POLICY
from chaosgen.schemas import validate
from tests.sandbox import watch_app
from tests.sandbox.litmus_runner import result_status


class FakeCluster:
    """Objects in a dict; a ChaosEngine completes `chaos_seconds` after it is applied unless stopped first, and
    writes its ChaosResult (verdict Pass, or Stopped) as Litmus does."""

    def __init__(self, chaos_seconds: float = 0.6, honour_stop: bool = True) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.handlers: list[tuple[str, Any]] = []
        self.chaos_seconds = chaos_seconds
        self.honour_stop = honour_stop
        self.stops: list[str] = []
        self.lock = threading.Lock()
        for name in LITMUS_CRDS:
            self.objects[("CustomResourceDefinition", "", name)] = {"metadata": {"name": name}}
        self.objects[("ChaosExperiment", "shop", "pod-delete")] = watch_app.chaos_experiment()
        self.objects[("Deployment", "shop", "web")] = {"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}
        for index in range(3):
            self._set(("Pod", "shop", f"web-{index}"), {"metadata": {
                "name": f"web-{index}", "labels": {"app": "web", "pod-template-hash": "5d8f"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f", "controller": True}]}, "status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})

    def server(self) -> str:
        return "https://fake"

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace or "", name))

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict]:
        return [o for (k, ns, _), o in self.objects.items() if k == kind and ns == (namespace or "")]

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        if not dry_run:
            key = (obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
            self._set(key, dict(obj))
            if obj["kind"] == "ChaosEngine":
                self._status(key, "initialized")
                timer = threading.Timer(self.chaos_seconds, lambda: self._finish(key))
                timer.daemon = True
                timer.start()
        return obj

    def _finish(self, key: tuple[str, str, str]) -> None:
        if ((self.objects.get(key) or {}).get("status") or {}).get("engineStatus") == "initialized":
            self._result(key, "Completed", "Pass")
            self._status(key, "completed")

    def _result(self, key: tuple[str, str, str], phase: str, verdict: str) -> None:
        name = f"{key[2]}-pod-delete"
        self._set(("ChaosResult", key[1], name), {"metadata": {"name": name, "namespace": key[1]},
                                                 "status": result_status(phase, verdict, [])})

    def stop_from_outside(self, key: tuple[str, str, str], manager: str) -> None:
        """What `kubectl patch chaosengine ... engineState: stop` does: the field changes owner, Litmus stops."""
        engine = self.objects[key]
        owner = {"manager": manager, "operation": "Update", "time": "2099-01-01T00:00:00Z",
                 "fieldsV1": {"f:spec": {"f:engineState": {}}}}
        applied = {"manager": "chaosgen", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                   "fieldsV1": {"f:spec": {"f:appinfo": {}}}}
        self.objects[key] = {**engine, "metadata": {**engine["metadata"], "managedFields": [applied, owner]},
                             "spec": {**engine["spec"], "engineState": "stop"}}
        self._result(key, "Stopped", "Stopped")
        self._status(key, "stopped")

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        self.objects.pop((kind, namespace or "", name), None)

    def stop_engine(self, namespace: str, name: str) -> None:
        self.stops.append(name)
        key = ("ChaosEngine", namespace, name)
        self.objects[key] = {**self.objects[key], "spec": {**self.objects[key]["spec"], "engineState": "stop"}}
        if self.honour_stop:
            self._result(key, "Stopped", "Stopped")
            self._status(key, "stopped")

    def _status(self, key: tuple[str, str, str], status: str) -> None:
        self._set(key, {**self.objects[key], "status": {"engineStatus": status}})

    def _set(self, key: tuple[str, str, str], obj: dict[str, Any]) -> None:
        with self.lock:
            self.objects[key] = obj
            handlers = [h for kind, h in self.handlers if kind == key[0]]
        for handler in handlers:
            handler("MODIFIED", obj, time.time())

    def watch(self, api_version: str, kind: str, namespace: str, handler: Any, stop: threading.Event,
              name: str | None = None, label_selector: str | None = None) -> None:
        with self.lock:
            self.handlers.append((kind, handler))
            current = [o for (k, _, n), o in self.objects.items() if k == kind and (name is None or n == name)]
        for obj in current:
            handler("SYNC", obj, time.time())
        handler("SYNCED", {}, time.time())
        stop.wait()


class ScriptedMetrics:
    """Returns the next value of a script per query (the last one repeats); None raises PrometheusUnreachable."""

    def __init__(self, *values: float | None) -> None:
        self.values = list(values)
        self.calls = 0

    def query(self, promql: str) -> list[float]:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        if value is None:
            raise PrometheusUnreachable("Prometheus http://fake: unreachable: NewConnectionError (after 2 attempts)")
        return [value]

    def series(self, matchers: Any, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        """Every selector has a series: the inert-threshold check is tested in test_watch_preflight.py."""
        return [{"__name__": "present"}]


class ListJournal:
    path = "memory"

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.cluster = cluster

    def record(self, op: str, **fields: Any) -> None:
        if op == "apply" and self.cluster is not None:
            fields["created_yet"] = self.cluster.get("", fields["kind"], fields["namespace"], fields["name"]) is not None
        self.records.append({"op": op, **fields})


def run(cluster: FakeCluster, metrics: ScriptedMetrics, journal: ListJournal | None = None, **settings: Any) -> core.Observation:
    engine = core.parse_engines([watch_app.engine("web-pod-delete", "web")], "test")[0]
    runner = Runner(cluster, LitmusBackend(cluster), metrics, journal or ListJournal(), dict(DEFAULT_POLICY),
                    Settings(**{"interval": 0.05, "recovery_timeout": 2, "stop_timeout": 2, **settings}), emit=lambda e: None)
    return runner.run([engine], [])[0]


def test_quiet_metrics_pass_and_the_journal_precedes_each_create() -> None:
    cluster = FakeCluster()
    journal = ListJournal(cluster)
    observation = run(cluster, ScriptedMetrics(0.0), journal)
    assert core.decide(observation)[0] == "passed"
    applies = [r for r in journal.records if r["op"] == "apply"]
    assert [(r["kind"], r["created_yet"]) for r in applies] == [("ChaosEngine", False)]
    assert [r["op"] for r in journal.records] == ["run", "apply", "finished"]


@pytest.mark.slow
def test_a_breach_stops_the_engine_and_says_why() -> None:
    cluster = FakeCluster(chaos_seconds=5)
    observation = run(cluster, ScriptedMetrics(0.0, 0.0, 0.9))
    verdict, reason = core.decide(observation)
    assert verdict == "aborted" and reason == "threshold web-error-rate breached: 0.9 > 0.5"
    assert cluster.stops == ["web-pod-delete"] and observation.abort["confirmed"] is True
    assert observation.abort["threshold"] == "web-error-rate"


@pytest.mark.slow
@pytest.mark.parametrize("policy, aborted", [("abort", True), ("continue", False)])
def test_metrics_loss_aborts_unless_told_to_continue(policy: str, aborted: bool) -> None:
    cluster = FakeCluster(chaos_seconds=0.5)
    observation = run(cluster, ScriptedMetrics(0.0, None), on_metrics_loss=policy)
    assert (observation.abort is not None) is aborted
    if aborted:
        assert observation.abort["by"] == "metrics-loss" and "unreachable" in observation.abort["reason"]
    else:
        assert cluster.stops == [] and any(e["type"] == "metrics-loss" for e in observation.events)


@pytest.mark.slow
def test_timeout_aborts_and_an_unconfirmed_stop_keeps_the_journal_open() -> None:
    cluster = FakeCluster(chaos_seconds=60, honour_stop=False)
    journal = ListJournal()
    observation = run(cluster, ScriptedMetrics(0.0), journal, timeout=0.3)
    assert observation.abort["by"] == "timeout" and observation.abort["confirmed"] is False
    assert "finished" not in [r["op"] for r in journal.records]
    records = [{"op": "apply", "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine", "namespace": "shop",
                "name": "web-pod-delete", "existed": False}]
    cluster.honour_stop = True
    cluster._status(("ChaosEngine", "shop", "web-pod-delete"), "initialized")
    said: list[str] = []
    assert stop_leftovers(LitmusBackend(cluster), cluster, records, delete=True, wait_seconds=1, say=said.append) == 1
    assert said == ["stopped ChaosEngine shop/web-pod-delete", "deleted ChaosEngine shop/web-pod-delete"]


def test_preflight_skips_an_unready_target_without_applying() -> None:
    cluster = FakeCluster()
    cluster.objects[("Deployment", "shop", "web")]["status"]["readyReplicas"] = 2
    observation = run(cluster, ScriptedMetrics(0.0))
    assert core.decide(observation) == ("skipped", "preflight target failed: Deployment shop/web has 2/3 ready "
                                                   "replicas (steady state does not hold)")
    assert ("ChaosEngine", "shop", "web-pod-delete") not in cluster.objects


def test_an_interrupt_stops_the_running_engine_and_skips_the_rest() -> None:
    cluster = FakeCluster(chaos_seconds=30)
    engines = core.parse_engines([watch_app.engine("web-pod-delete", "web"), watch_app.engine("web-later", "web")], "test")
    runner = Runner(cluster, LitmusBackend(cluster), ScriptedMetrics(0.0), ListJournal(), dict(DEFAULT_POLICY),
                    Settings(interval=0.05, recovery_timeout=1, stop_timeout=2), emit=lambda e: None)
    # The CLI calls interrupt() from the signal handler's Interrupted; here a timer stands in for the signal.
    threading.Timer(0.5, runner.interrupt, args=("interrupted by SIGTERM",)).start()
    first, second = runner.run(engines, [])
    assert first.abort["by"] == "signal" and first.abort["reason"] == "interrupted by SIGTERM"
    assert cluster.stops == ["web-pod-delete"]
    assert core.decide(second) == ("skipped", "not started: interrupted by SIGTERM")


def test_a_prometheus_steady_state_check_that_does_not_hold_skips_the_experiment() -> None:
    manifest = watch_app.engine("web-pod-delete", "web")
    annotations = manifest["metadata"]["annotations"]
    experiment = json.loads(annotations["chaosgen.dev/experiment"])
    experiment["steady_state"] = [{"name": "web-ready", "type": "prometheus", "query": "ready", "operator": ">=", "value": 3}]
    annotations["chaosgen.dev/experiment"] = json.dumps(experiment)
    engine = core.parse_engines([manifest], "test")[0]
    cluster = FakeCluster()
    runner = Runner(cluster, LitmusBackend(cluster), ScriptedMetrics(0.0), ListJournal(), dict(DEFAULT_POLICY), Settings(),
                    emit=lambda e: None)
    observation = runner.run([engine], [])[0]
    assert core.decide(observation) == ("skipped", "preflight steady-web-ready failed: steady state does not hold: not 0 >= 3")


def test_recovery_waits_for_the_steady_state_not_only_for_the_thresholds() -> None:
    """An error rate at the limit no longer breaches (> 0.5) but is not the steady state (< 0.5) either: the target
    has not recovered, or the next experiment's preflight would find the previous one's residue."""
    manifest = watch_app.engine("web-pod-delete", "web")
    annotations = manifest["metadata"]["annotations"]
    experiment = json.loads(annotations["chaosgen.dev/experiment"])
    threshold = json.loads(annotations["chaosgen.dev/abort-thresholds"])[0]
    experiment["steady_state"] = [{"name": "web-error-rate-normal", "type": "prometheus", "query": threshold["query"],
                                   "operator": "<", "value": 0.5}]
    annotations["chaosgen.dev/experiment"] = json.dumps(experiment)
    engine = core.parse_engines([manifest], "test")[0]
    # Preflight reads the threshold and the steady state once each (0.0); from then on the rate sits at the limit.
    cluster = FakeCluster(chaos_seconds=0.3)
    runner = Runner(cluster, LitmusBackend(cluster), ScriptedMetrics(0.0, 0.0, 0.5), ListJournal(), dict(DEFAULT_POLICY),
                    Settings(interval=0.05, recovery_timeout=0.5, stop_timeout=2), emit=lambda e: None)
    observation = runner.run([engine], [])[0]
    assert observation.abort is None and observation.recovered is False
    assert core.decide(observation) == ("failed", "the target did not recover before the recovery timeout")
    assert "steady state does not hold" in [e for e in observation.events if e["type"] == "not-recovered"][0]["message"]


class ScriptedRun:
    """An EngineRun whose engine ends after `chaos_seconds` or when stopped; the target's pods stay ready."""

    def __init__(self, chaos_seconds: float, wake: threading.Event) -> None:
        self.state = "injecting"
        self.wake = wake
        self.closed = False
        self.timer = threading.Timer(chaos_seconds, self.end, args=("done",))
        self.timer.daemon = True
        self.timer.start()

    def end(self, state: str) -> None:
        if self.state == "injecting":
            self.state = state
            self.wake.set()

    def status(self) -> str | None:
        return self.state

    def ended(self) -> bool:
        return self.state != "injecting"

    def stopped(self) -> bool:
        return self.state == "halted"

    def stopped_by(self) -> str | None:
        return None

    def ready_pods(self) -> set[str]:
        return {"web-0", "web-1", "web-2"}

    def pod_changes(self) -> list[core.PodChange]:
        return []

    def chaos_result(self) -> dict[str, Any] | None:
        return {"name": "scripted", "phase": "Completed", "verdict": "Pass", "probe_success_percentage": None,
                "failed_step": None, "error_code": None, "probes": []}

    def close(self) -> None:
        self.timer.cancel()
        self.closed = True


class ScriptedEngine:
    """An EngineBackend that is not Litmus at all: the runner must need nothing else to drive it."""

    name = "Scripted"
    engine_kind = "ScriptedChaos"
    support_kinds: tuple[str, ...] = ()
    environment_checks = frozenset({"engine-installed"})

    def __init__(self, chaos_seconds: float = 0.6, installed: bool = True) -> None:
        self.chaos_seconds = chaos_seconds
        self.installed = installed
        self.runs: list[ScriptedRun] = []
        self.stops: list[str] = []

    def preflight(self, engine: core.Engine, support_names: set[tuple[str, str | None, str]]) -> list[tuple[str, bool, str]]:
        return [("engine-installed", self.installed, "installed" if self.installed else "not installed")]

    def target_namespace(self, engine: core.Engine) -> str:
        return engine.namespace

    def start(self, engine: core.Engine, wake: threading.Event, on_pod: Any) -> ScriptedRun:
        self.runs.append(ScriptedRun(self.chaos_seconds, wake))
        return self.runs[-1]

    def stop(self, namespace: str, name: str) -> None:
        self.stops.append(name)
        self.runs[-1].end("halted")

    def is_active(self, namespace: str, name: str) -> bool:
        return bool(self.runs) and not self.runs[-1].ended()


def run_scripted(backend: ScriptedEngine, metrics: ScriptedMetrics) -> tuple[core.Observation, FakeCluster]:
    cluster = FakeCluster(chaos_seconds=60)
    engine = core.parse_engines([watch_app.engine("web-pod-delete", "web")], "test")[0]
    runner = Runner(cluster, backend, metrics, ListJournal(), dict(DEFAULT_POLICY),
                    Settings(interval=0.05, recovery_timeout=2, stop_timeout=2), emit=lambda e: None)
    return runner.run([engine], [])[0], cluster


def test_the_runner_drives_any_engine_backend_through_the_seam() -> None:
    backend = ScriptedEngine(chaos_seconds=5)
    observation, _ = run_scripted(backend, ScriptedMetrics(0.0, 0.0, 0.9))
    assert core.decide(observation) == ("aborted", "threshold web-error-rate breached: 0.9 > 0.5")
    assert backend.stops == ["web-pod-delete"] and observation.abort["confirmed"] is True
    assert "Scripted reports the engine halted" in [e["message"] for e in observation.events]
    assert observation.preflight[1] == {"check": "engine-installed", "ok": True, "message": "installed"}
    assert observation.chaos_result["name"] == "scripted" and backend.runs[0].closed
    quiet = ScriptedEngine(chaos_seconds=0.3)
    observation, _ = run_scripted(quiet, ScriptedMetrics(0.0))
    assert core.decide(observation)[0] == "passed" and quiet.stops == []


def test_a_failed_environment_check_of_the_backend_is_an_error_and_applies_nothing() -> None:
    backend = ScriptedEngine(installed=False)
    observation, cluster = run_scripted(backend, ScriptedMetrics(0.0))
    assert core.decide(observation) == ("error", "preflight engine-installed failed: not installed")
    assert backend.runs == [] and ("ChaosEngine", "shop", "web-pod-delete") not in cluster.objects


class RejectingMetrics:
    """A Prometheus that refuses every query as invalid (HTTP 400 bad_data)."""

    def query(self, promql: str) -> list[float]:
        raise PrometheusQueryRejected(f"Prometheus http://fake rejected the query {promql!r}: bad_data: parse error")

    def series(self, matchers: Any, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        raise PrometheusQueryRejected(f"Prometheus http://fake rejected the selectors {matchers!r}: bad_data")


def test_a_query_prometheus_rejects_skips_the_experiment_instead_of_blaming_the_environment() -> None:
    cluster = FakeCluster()
    runner = Runner(cluster, LitmusBackend(cluster), RejectingMetrics(), ListJournal(), dict(DEFAULT_POLICY), Settings(),
                    emit=lambda e: None)
    observation = runner.run(core.parse_engines([watch_app.engine("web-pod-delete", "web")], "test"), [])[0]
    verdict, reason = core.decide(observation)
    assert verdict == "skipped" and reason.startswith("preflight threshold-web-error-rate failed: Prometheus http://fake "
                                                      "rejected the query")


def test_an_engine_stopped_from_outside_is_aborted_naming_who_stopped_it() -> None:
    """Someone runs `kubectl patch chaosengine ... engineState: stop` mid-run: chaos-watch did not ask, the run
    was cut short, so it is aborted (exit 5) by the manager the ChaosEngine's managedFields name, never passed."""
    cluster = FakeCluster(chaos_seconds=5)
    key = ("ChaosEngine", "shop", "web-pod-delete")
    threading.Timer(0.4, cluster.stop_from_outside, args=(key, "kubectl-patch")).start()
    observation = run(cluster, ScriptedMetrics(0.0))
    assert core.decide(observation) == ("aborted", "the engine was stopped by kubectl-patch, not by chaos-watch")
    assert observation.abort["by"] == "external" and observation.abort["manager"] == "kubectl-patch"
    assert cluster.stops == [], "chaos-watch did not stop it itself"
    result = core.experiment_result(observation, core.iso_utc)
    assert result["aborted_by"] == "external" and result["chaos_result"]["verdict"] == "Stopped"
    document = core.run_result([result], "test", {"type": "stdin"}, None, False)
    validate(document, "RunResult", "test")
    assert core.exit_code(document) == 5


def test_a_result_that_says_stopped_is_aborted_even_when_the_engine_says_completed() -> None:
    cluster = FakeCluster(chaos_seconds=0.3)
    cluster._result = lambda key, phase, verdict: FakeCluster._result(cluster, key, "Stopped", "Stopped")  # type: ignore[method-assign]
    observation = run(cluster, ScriptedMetrics(0.0))
    assert core.decide(observation) == ("aborted", "the engine was stopped from outside, not by chaos-watch")
    assert observation.abort["manager"] is None


def test_after_a_metrics_loss_abort_recovery_is_read_from_the_pods_alone_without_waiting() -> None:
    """No Prometheus sample can be read, so waiting for the thresholds to hold again would only run into
    --recovery-timeout and blame "thresholds still breached"; the pods say the target is back."""
    cluster = FakeCluster(chaos_seconds=30)
    started = time.monotonic()
    observation = run(cluster, ScriptedMetrics(0.0, None), recovery_timeout=30)
    assert observation.abort["by"] == "metrics-loss"
    assert time.monotonic() - started < 10, "recovery did not wait for metrics that cannot come"
    assert observation.recovered is True
    recovered = [e["message"] for e in observation.events if e["type"] == "recovered"]
    assert recovered == ["3/3 target pods ready; thresholds and steady state not checked: metrics were lost"]
    result = core.experiment_result(observation, core.iso_utc)
    assert result["verdict"] == "aborted" and result["time_to_recovery_seconds"] == 0.0


def test_unreadable_thresholds_during_recovery_are_not_called_breached() -> None:
    """--on-metrics-loss continue: Prometheus goes away and never answers again during recovery."""
    cluster = FakeCluster(chaos_seconds=0.3)
    observation = run(cluster, ScriptedMetrics(0.0, None), on_metrics_loss="continue", recovery_timeout=0.5)
    assert observation.recovered is False
    message = [e["message"] for e in observation.events if e["type"] == "not-recovered"][0]
    assert "thresholds unreadable (no sample)" in message and "still breached" not in message
    assert core.experiment_result(observation, core.iso_utc)["time_to_recovery_seconds"] is None


def test_every_finished_experiment_emits_one_verdict_line() -> None:
    cluster = FakeCluster()
    cluster.objects[("Deployment", "shop", "web")]["status"]["readyReplicas"] = 2
    emitted: list[dict[str, Any]] = []
    engine = core.parse_engines([watch_app.engine("web-pod-delete", "web")], "test")[0]
    Runner(cluster, LitmusBackend(cluster), ScriptedMetrics(0.0), ListJournal(), dict(DEFAULT_POLICY), Settings(),
           emit=emitted.append).run([engine], [])
    verdicts = [e for e in emitted if e["type"] == "verdict"]
    assert [e["message"] for e in verdicts] == ["skipped: preflight target failed: Deployment shop/web has 2/3 ready "
                                                "replicas (steady state does not hold)"]
