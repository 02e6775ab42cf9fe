"""LitmusChaos as chaos-watch's EngineBackend: ChaosEngine/ChaosResult/ChaosExperiment through the Cluster seam.

A run is watched through three resumable watches (the ChaosEngine, its ChaosResult, the pods of the target's
namespace, of which TargetPods keeps the ones the engine selects by Litmus's rules); stopping is Litmus's
`engineState: stop`, and Litmus confirms it with engineStatus stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from chaos_watch import core
from chaos_watch.cluster import Cluster
from chaos_watch.engine import Check
from chaos_watch.target import TargetPods
from chaosgen.errors import EnvironmentFailure
from chaosgen.litmus import LITMUS_API_VERSION as LITMUS
from chaosgen.litmus import LITMUS_GROUP

log = logging.getLogger("chaos_watch")

LITMUS_CRDS = tuple(f"{plural}.{LITMUS_GROUP}" for plural in ("chaosengines", "chaosexperiments", "chaosresults"))
INACTIVE_ENGINE = ("completed", "stopped")
WATCH_START_SECONDS = 60.0
REPLACE_SECONDS = 30.0


class LitmusRun:
    """One ChaosEngine while it runs: the latest ChaosEngine and ChaosResult objects and the target's pods."""

    def __init__(self, stop_watches: threading.Event, selection: core.PodSelection) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any] | None] = {"ChaosEngine": None, "ChaosResult": None}
        self._pods = TargetPods(selection)
        self._stop_watches = stop_watches

    def handler(self, kind: str, synced: threading.Event, wake: threading.Event,
                on_pod: Callable[[core.PodChange], None]) -> Callable[[str, dict[str, Any], float], None]:
        """The watch handler of one kind: keep the latest state, report pod changes, wake the runner."""

        def handle(event: str, obj: dict[str, Any], received: float) -> None:
            if event == "SYNCED":
                synced.set()
                return
            with self._lock:
                if kind == "Pod":
                    change = self._pods.update(event, obj, received)
                else:
                    self._objects[kind], change = (None if event == "DELETED" else obj), None
            if change is not None:
                on_pod(change)
            wake.set()

        return handle

    def status(self) -> str | None:
        with self._lock:
            return ((self._objects["ChaosEngine"] or {}).get("status") or {}).get("engineStatus")

    def ended(self) -> bool:
        return self.status() in INACTIVE_ENGINE

    def stopped(self) -> bool:
        return self.status() == "stopped"

    def stopped_by(self) -> str | None:
        with self._lock:
            engine = self._objects["ChaosEngine"] or {}
        return engine_state_manager(engine)

    def ready_pods(self) -> set[str]:
        with self._lock:
            return self._pods.ready_names()

    def pod_changes(self) -> list[core.PodChange]:
        with self._lock:
            return list(self._pods.changes)

    def chaos_result(self) -> dict[str, Any] | None:
        with self._lock:
            return core.summarize_chaos_result(self._objects["ChaosResult"])

    def close(self) -> None:
        self._stop_watches.set()


def engine_state_manager(engine: dict[str, Any]) -> str | None:
    """The field manager that last set a ChaosEngine's spec.engineState (kubectl patch: kubectl-patch), from its
    managedFields; None when no entry owns the field."""
    owners = [entry for entry in (engine.get("metadata") or {}).get("managedFields") or []
              if "f:engineState" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})]
    # RFC 3339 UTC stamps of one format sort as strings; the latest owner is the one who set the value seen now.
    latest = max(owners, key=lambda entry: entry.get("time") or "", default=None)
    return latest.get("manager") if latest else None


class LitmusBackend:
    """The EngineBackend of LitmusChaos 3.x, over chaos-watch's Cluster seam."""

    name = "LitmusChaos"
    engine_kind = "ChaosEngine"
    support_kinds: tuple[str, ...] = ("ChaosExperiment",)
    environment_checks = frozenset({"litmus-crds"})

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._crd_problem: str | None | bool = False

    def preflight(self, engine: core.Engine, support_names: set[tuple[str, str | None, str]]) -> list[Check]:
        crd_problem = self._crds()
        checks: list[Check] = [("litmus-crds", crd_problem is None, crd_problem or "Litmus CRDs installed")]
        if crd_problem is None:
            known = (engine.fault and ("ChaosExperiment", engine.namespace, engine.fault) in support_names) or (
                engine.fault and self.cluster.get(LITMUS, "ChaosExperiment", engine.namespace, engine.fault) is not None)
            checks.append(("chaos-experiment", bool(known), f"ChaosExperiment {engine.fault} "
                           + ("present" if known else f"not found in namespace {engine.namespace}")))
            active = self.is_active(engine.namespace, engine.name)
            checks.append(("no-active-engine", not active, f"ChaosEngine {engine.name} "
                           + ("is already running" if active else "not running")))
        return checks

    def _crds(self) -> str | None:
        """Why the Litmus CRDs are unusable, None when they are installed; asked once per run."""
        if self._crd_problem is False:
            missing = [name for name in LITMUS_CRDS
                       if self.cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) is None]
            self._crd_problem = f"Litmus CRDs missing: {', '.join(missing)}" if missing else None
        return self._crd_problem  # type: ignore[return-value]

    def target_namespace(self, engine: core.Engine) -> str:
        return engine.pods.namespace

    def start(self, engine: core.Engine, wake: threading.Event, on_pod: Callable[[core.PodChange], None]) -> LitmusRun:
        watches: list[dict[str, Any]] = [
            dict(api_version=LITMUS, kind="ChaosEngine", namespace=engine.namespace, name=engine.name),
            dict(api_version=LITMUS, kind="ChaosResult", namespace=engine.namespace, name=engine.result_name),
            # The whole namespace: Litmus's selection (owners, an OR of labels) is no Kubernetes label selector.
            dict(api_version="v1", kind="Pod", namespace=self.target_namespace(engine), label_selector=None),
        ]
        self._replace_finished(engine)
        stop_watches = threading.Event()
        run = LitmusRun(stop_watches, engine.pods)
        synced = {spec["kind"]: threading.Event() for spec in watches}
        for spec in watches:
            handler = run.handler(spec["kind"], synced[spec["kind"]], wake, on_pod)
            threading.Thread(target=self._watch_quietly, args=({**spec, "handler": handler}, stop_watches),
                             daemon=True, name=f"watch-{spec['kind']}").start()
        for kind, event in synced.items():
            if not event.wait(WATCH_START_SECONDS):
                run.close()
                raise EnvironmentFailure(f"the {kind} watch did not start within {WATCH_START_SECONDS:g}s")
        return run

    def _watch_quietly(self, spec: dict[str, Any], stop: threading.Event) -> None:
        try:
            self.cluster.watch(**spec, stop=stop)
        except Exception as e:  # noqa: BLE001 - a dead watch must not kill the run; the timeout still guards it
            log.warning("watch of %s stopped: %s", spec["kind"], e)

    def _replace_finished(self, engine: core.Engine) -> None:
        """A finished engine of the same name (an earlier run) is deleted so that Litmus runs the new one."""
        if self.cluster.get(LITMUS, "ChaosEngine", engine.namespace, engine.name) is None:
            return
        for kind, name in (("ChaosEngine", engine.name), ("ChaosResult", engine.result_name)):
            self.cluster.delete(LITMUS, kind, engine.namespace, name)
        deadline = time.monotonic() + REPLACE_SECONDS
        while self.cluster.get(LITMUS, "ChaosEngine", engine.namespace, engine.name) is not None:
            if time.monotonic() > deadline:
                raise EnvironmentFailure(f"the previous ChaosEngine {engine.name} was not deleted within {REPLACE_SECONDS:g}s")
            time.sleep(0.2)

    def stop(self, namespace: str, name: str) -> None:
        self.cluster.stop_engine(namespace, name)

    def is_active(self, namespace: str, name: str) -> bool:
        # Running until Litmus says otherwise: engineState stop that Litmus has not confirmed still counts.
        live = self.cluster.get(LITMUS, "ChaosEngine", namespace, name)
        return live is not None and (live.get("status") or {}).get("engineStatus") not in INACTIVE_ENGINE
