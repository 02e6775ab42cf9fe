"""What `chaos-watch cleanup` does with the journal of a run that did not finish: stop its engines, and with
--delete remove the objects it created (not those it only updated)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chaos_watch.cluster import Cluster
from chaos_watch.engine import EngineBackend
from chaos_watch.journal import applied_objects

STOP_POLL_SECONDS = 0.5


def stop_leftovers(backend: EngineBackend, cluster: Cluster, records: list[dict[str, Any]], delete: bool,
                   wait_seconds: float, say: Callable[[str], None]) -> int:
    """Stop the engines one journal applied that are still active, waiting up to wait_seconds for each to confirm.

    Called by cli.py's cleanup per unfinished journal; returns how many engines it stopped.
    """
    stopped = 0
    objects = applied_objects(records)
    for obj in objects:
        if obj["kind"] != backend.engine_kind or not backend.is_active(obj["namespace"], obj["name"]):
            continue
        backend.stop(obj["namespace"], obj["name"])
        stopped += 1
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and backend.is_active(obj["namespace"], obj["name"]):
            time.sleep(STOP_POLL_SECONDS)
        say(f"stopped {backend.engine_kind} {obj['namespace']}/{obj['name']}")
    if delete:
        for obj in reversed(objects):
            if obj.get("existed"):
                continue
            cluster.delete(obj["apiVersion"], obj["kind"], obj.get("namespace"), obj["name"])
            say(f"deleted {obj['kind']} {obj.get('namespace') or ''}/{obj['name']}")
    return stopped
