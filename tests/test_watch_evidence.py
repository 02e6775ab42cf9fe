"""What a RunResult keeps for chaos-report: the Kubernetes events of the target and of the pods the run disrupted
(filtered, bounded), and a timeline bounded however long the run, downsampled deterministically."""

from __future__ import annotations

import time

from chaos_watch import core, evidence
from chaos_watch.evidence import MAX_KUBE_EVENTS, bounded_events, bounded_samples, kube_events
from tests.test_watch_runner import FakeCluster, ScriptedMetrics, run

STARTED = 1_800_000_000.0


def k8s_event(name: str, reason: str, at: float, kind: str = "Pod", type_: str = "Warning", **extra: object) -> dict:
    return {"involvedObject": {"kind": kind, "name": name, "namespace": "shop"}, "reason": reason, "type": type_,
            "message": f"{reason} {name}", "lastTimestamp": core.iso_utc(at).replace(".000", ""), **extra}


def offset(t: float) -> float:
    return round(t - STARTED, 3)


def test_kube_events_keep_the_target_and_collateral_disruptions_only() -> None:
    events = [
        k8s_event("db-0", "FailedScheduling", STARTED + 3, message="0/2 nodes are available: 2 node(s) were unschedulable"),
        k8s_event("db", "SuccessfulCreate", STARTED + 2, kind="StatefulSet", type_="Normal"),
        k8s_event("postgres-0", "Evicted", STARTED + 4),
        k8s_event("postgres-0", "Pulled", STARTED + 5, type_="Normal"),  # another pod's routine: not evidence
        k8s_event("db-0", "Killing", STARTED - 30, type_="Normal"),  # before the run
        k8s_event("db-0", "Unhealthy", STARTED + 99),  # after it
        {**k8s_event("db-0", "BackOff", STARTED + 6), "involvedObject": {"kind": "Pod", "name": "db-0", "namespace": "other"}},
    ]
    kept, omitted = kube_events(events, "shop", ("StatefulSet", "db"), {"db-0"}, STARTED, STARTED + 60, offset)
    assert omitted == 0
    assert [(e["t"], e["object"], e["reason"], e["target"]) for e in kept] == [
        (2.0, "StatefulSet/db", "SuccessfulCreate", True),
        (3.0, "Pod/db-0", "FailedScheduling", True),
        (4.0, "Pod/postgres-0", "Evicted", False),
    ]
    assert kept[1]["message"] == "0/2 nodes are available: 2 node(s) were unschedulable" and kept[1]["count"] == 1


def test_kube_events_are_bounded_warnings_first() -> None:
    events = [k8s_event("db-0", "Started", STARTED + 1, type_="Normal")] + [
        k8s_event(f"db-{i}", "Unhealthy", STARTED + 2) for i in range(MAX_KUBE_EVENTS + 5)]
    kept, omitted = kube_events(events, "shop", None, {f"db-{i}" for i in range(200)}, STARTED, STARTED + 9, offset)
    assert len(kept) == MAX_KUBE_EVENTS and omitted == 6
    assert {e["reason"] for e in kept} == {"Unhealthy"}


def test_a_long_timeline_is_downsampled_keeping_its_shape_and_every_breach_change() -> None:
    samples = [{"t": float(i), "name": "err", "value": 1.0 if 500 <= i < 510 else 0.0, "breached": 500 <= i < 510}
               for i in range(2000)]
    samples += [{"t": float(i), "name": "lat", "value": 0.1, "breached": False} for i in range(10)]
    kept, dropped = bounded_samples(samples)
    err = [s for s in kept if s["name"] == "err"]
    assert evidence.MAX_SAMPLES_PER_SERIES - 5 <= len(err) <= evidence.MAX_SAMPLES_PER_SERIES
    assert dropped == 2000 - len(err)
    assert {0.0, 1999.0, 500.0, 510.0} <= {s["t"] for s in err}, "ends and both changes of breached stay"
    assert len([s for s in kept if s["name"] == "lat"]) == 10
    assert bounded_samples(samples) == (kept, dropped), "deterministic"


def test_pod_transitions_are_bounded_the_runs_own_events_are_not() -> None:
    events = [{"t": 0.0, "type": "apply", "message": "a"}]
    events += [{"t": float(i), "type": "pod-lost" if i % 2 else "pod-ready", "message": f"pod p{i}"} for i in range(1, 500)]
    events += [{"t": 600.0, "type": "recovered", "message": "r"}]
    kept, dropped = bounded_events(events)
    assert kept[0]["type"] == "apply" and kept[-1]["type"] == "recovered"
    assert len(kept) == evidence.MAX_POD_EVENTS + 2 and dropped == 499 - evidence.MAX_POD_EVENTS


def test_the_runner_records_kube_events_and_the_result_carries_them() -> None:
    cluster = FakeCluster()
    now = time.time()
    cluster.objects[("Event", "shop", "web-0.1")] = {
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"}, "reason": "Killing",
        "type": "Normal", "message": "Stopping container web", "lastTimestamp": core.iso_utc(now)[:19] + "Z"}
    observation = run(cluster, ScriptedMetrics(0.0))
    result = core.experiment_result(observation, core.iso_utc)
    assert [(e["object"], e["reason"], e["target"]) for e in result["kube_events"]] == [("Pod/web-0", "Killing", True)]
    assert result["omitted"] == {}
    assert [s["name"] for s in result["samples"]] and all(s["t"] >= 0 for s in result["samples"])
    assert result["blast_radius"]["workloads"]
