"""The chaos-engine seam of chaos-watch: what the runner needs from the engine that injects the faults.

The runner (runner.py, preflight.py, leftovers.py) decides when to start, stop and give up; an EngineBackend knows
how its engine does each of those. LitmusChaos (litmus.py) is the only implementation today; another engine is a
new module implementing these two Protocols, handed to the Runner by cli.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from chaos_watch import core

# (check name, ok, message): one preflight check as the RunResult records it.
Check = tuple[str, bool, str]


class EngineRun(Protocol):
    """One engine while it runs, as the backend's watches see it; every method may be called from any thread."""

    def status(self) -> str | None:
        """The engine's own word for its state (Litmus: engineStatus), reported as it changes; None before any."""
        ...

    def ended(self) -> bool:
        """True once the engine reports its chaos over, whether completed or stopped."""
        ...

    def stopped(self) -> bool:
        """True once the engine reports that it was stopped (whoever asked) rather than that it completed."""
        ...

    def stopped_by(self) -> str | None:
        """Who asked the engine to stop, as its object records it (Kubernetes: the field manager that last set the
        stop); None when it does not say. The runner asks when a stop it did not request ended the run."""
        ...

    def ready_pods(self) -> set[str]:
        """The target pods that serve now."""
        ...

    def pod_changes(self) -> list[core.PodChange]:
        """Every readiness change of a target pod since the watches started, with its true time."""
        ...

    def chaos_result(self) -> dict[str, Any] | None:
        """The engine's verdict in the RunResult's chaos_result shape, None when it wrote none."""
        ...

    def close(self) -> None:
        """Stop the watches; the runner calls it once, whatever ended the run."""
        ...


class EngineBackend(Protocol):
    """One chaos engine (LitmusChaos today): its preflight checks, how a run starts and is watched, how it stops."""

    name: str
    # The kind of the object that runs one experiment, as run journals record it (cleanup looks for it).
    engine_kind: str
    # Kinds of support objects the engine needs applied after the generic ones (RBAC, ConfigMaps) and before engines.
    support_kinds: tuple[str, ...]
    # Preflight checks whose failure is the environment's fault (verdict error, exit 4) rather than the input's.
    environment_checks: frozenset[str]

    def preflight(self, engine: core.Engine, support_names: set[tuple[str, str | None, str]]) -> list[Check]:
        """The engine's own checks before chaos (installed, its fault definition known, not already running)."""
        ...

    def target_namespace(self, engine: core.Engine) -> str:
        """The namespace of the pods the engine targets."""
        ...

    def start(self, engine: core.Engine, wake: threading.Event,
              on_pod: Callable[[core.PodChange], None]) -> EngineRun:
        """Clear a finished run of the same name and watch the engine and its target pods, before the runner
        applies the engine; set `wake` on every change. EnvironmentFailure when the watches do not start."""
        ...

    def stop(self, namespace: str, name: str) -> None:
        """Ask the engine to stop its chaos now (EnvironmentFailure when the request does not get through)."""
        ...

    def is_active(self, namespace: str, name: str) -> bool:
        """Whether the engine object exists and has not reported its chaos over (cleanup's question)."""
        ...
