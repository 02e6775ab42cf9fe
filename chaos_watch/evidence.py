"""What a RunResult keeps besides the verdict, so that chaos-report can explain it: the Kubernetes events of the
target and of the pods the run disrupted, and a timeline bounded in size.

Pure: the runner lists the namespace's Events once an experiment has recovered and hands them here with the run's
times, and bounds the timeline before the RunResult is written. Bounded because a long run evaluated every second (or a large
Deployment losing pods) would otherwise make the RunResult grow without limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaos_watch.core import parse_k8s_time

# Event reasons that say a pod was disrupted, whatever pod it is: a drained node's other pods, a pod that cannot be
# scheduled, a container killed for memory. The target's own objects keep every event.
DISRUPTION_REASONS = frozenset({
    "Evicted", "TaintManagerEviction", "Preempted", "Preempting", "FailedScheduling", "OOMKilling", "OOMKilled",
    "Killing", "FailedKillPod", "Unhealthy", "BackOff", "NodeNotReady", "FailedCreate", "FailedMount",
    "FailedAttachVolume",
})
MAX_KUBE_EVENTS = 100
MAX_SAMPLES_PER_SERIES = 300
MAX_POD_EVENTS = 200
POD_EVENT_TYPES = frozenset({"pod-ready", "pod-lost"})


def kube_events(events: list[dict[str, Any]], namespace: str, workload: tuple[str, str] | None, pods: set[str],
                since: float, until: float, offset: Callable[[float], float]) -> tuple[list[dict[str, Any]], int]:
    """(the RunResult's kube_events, how many more matched than it keeps) from core v1 or events.k8s.io/v1 Events.

    Kept: events between since and until about the target workload or one of its pods (every reason), or about
    any other pod of the namespace for a DISRUPTION_REASONS reason. Earliest first; Warnings win a tie for room.
    """
    kept = []
    for event in events:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        kind, name = involved.get("kind"), involved.get("name")
        if (involved.get("namespace") or namespace) != namespace:
            continue
        reason = event.get("reason") or ""
        ours = (kind, name) == workload or (kind == "Pod" and name in pods)
        if not ours and not (kind == "Pod" and reason in DISRUPTION_REASONS):
            continue
        t = _event_time(event)
        if t is None or not since - 1.0 <= t <= until:
            continue
        kept.append({
            "t": offset(t), "type": event.get("type") or "Normal", "reason": reason, "object": f"{kind}/{name}",
            "target": ours, "message": " ".join(str(event.get("message") or event.get("note") or "").split())[:500],
            "count": int(event.get("count") or (event.get("series") or {}).get("count") or 1),
        })
    kept.sort(key=lambda e: (e["type"] != "Warning", e["t"], e["object"], e["reason"], e["message"]))
    chosen = sorted(kept[:MAX_KUBE_EVENTS], key=lambda e: (e["t"], e["object"], e["reason"], e["message"]))
    return chosen, len(kept) - len(chosen)


def _event_time(event: dict[str, Any]) -> float | None:
    """When the event last happened: the newest of the stamps either API version fills in."""
    series = event.get("series") or {}
    for stamp in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                  event.get("deprecatedLastTimestamp"), event.get("firstTimestamp"),
                  (event.get("metadata") or {}).get("creationTimestamp")):
        if stamp:
            return parse_k8s_time(stamp)
    return None


def bounded_samples(samples: list[dict[str, Any]], limit: int = MAX_SAMPLES_PER_SERIES) -> tuple[list[dict[str, Any]], int]:
    """(the samples with at most `limit` per series, how many were dropped); every series keeps its first and last
    sample, each change of its breached/holds flag, and an even stride of the rest, so a plot keeps its shape."""
    by_name: dict[str, list[int]] = {}
    for index, entry in enumerate(samples):
        by_name.setdefault(entry["name"], []).append(index)
    keep: set[int] = set()
    for indices in by_name.values():
        if len(indices) <= limit:
            keep.update(indices)
            continue
        flag = "breached" if "breached" in samples[indices[0]] else "holds"
        changes = [i for previous, i in zip(indices, indices[1:], strict=False) if samples[previous][flag] != samples[i][flag]]
        must = _stride(sorted({indices[0], indices[-1], *changes}), limit)
        keep.update(must, _stride(indices, limit - len(must)))
    return [samples[i] for i in sorted(keep)], len(samples) - len(keep)


def _stride(items: list[int], count: int) -> list[int]:
    """count items evenly spread over items, the first and the last among them (all of them when they fit)."""
    if count >= len(items):
        return items
    if count <= 1:
        return items[:count]
    return [items[round(k * (len(items) - 1) / (count - 1))] for k in range(count)]


def bounded_events(events: list[dict[str, Any]], limit: int = MAX_POD_EVENTS) -> tuple[list[dict[str, Any]], int]:
    """(the events with at most `limit` pod readiness transitions, the first ones, how many were dropped); the run's
    own events (apply, breach, stop, recovered) are few and all kept."""
    pod_events = 0
    kept = []
    for entry in events:
        if entry["type"] in POD_EVENT_TYPES:
            pod_events += 1
            if pod_events > limit:
                continue
        kept.append(entry)
    return kept, len(events) - len(kept)
