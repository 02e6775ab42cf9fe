"""chaos-watch's two timing figures, measured side by side in one run against the sandbox:

1. Abort latency: from the moment Prometheus's own evaluation of the abort query first crosses the threshold
   (query_range at 50 ms steps over the run) to the moment chaos-watch patched engineState: stop; plus the
   stop-to-Litmus-stopped time. Scenario: pod-delete of the single-replica database, callers' error rate > 5%.
2. Recovery-time error: chaos-watch's reported time_to_recovery_seconds against the same outage computed from the
   API's own timestamps (the deleted pod's deletionTimestamp, the replacement's Ready lastTransitionTime), recorded
   by an independent watch; next to it, a naive poller that lists the pods every 2 s ("when we happened to look").
   Scenario: pod-delete of one of three web replicas. Note the API stamps have whole-second resolution.

    python benchmarks/watch_abort.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml
from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos_watch import core
from chaos_watch.target import TargetPods
from tests.sandbox import watch_app
from tests.sandbox.sandbox import build, start
from tests.sandbox.watch_world import NAMESPACE, World, open_world

POLL_SECONDS = 2.0


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class PodRecorder:
    """An independent watch of the web pods: each change at its API timestamp and at the moment it arrived."""

    def __init__(self, kubeconfig: str) -> None:
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.pods = TargetPods()
        self.stamped: list[core.PodChange] = []
        self.received: list[core.PodChange] = []
        self.halt = threading.Event()
        self.watcher = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watcher.stream(self.core.list_namespaced_pod, NAMESPACE, label_selector="app=web",
                                             deserialize=False, timeout_seconds=3600):
                arrived = time.time()
                # An infinitely late receipt makes event_time() keep the API's stamp; no stamp: the arrival.
                change = self.pods.update(event["type"], event["object"], math.inf)
                if change is not None:
                    stamp = change.t if math.isfinite(change.t) else arrived
                    self.stamped.append(core.PodChange(stamp, change.pod, change.ready))
                    self.received.append(core.PodChange(arrived, change.pod, change.ready))
                if self.halt.is_set():
                    return
        except Exception:  # noqa: BLE001 - the stream is cut when the benchmark closes it
            return

    def close(self) -> None:
        self.halt.set()
        self.watcher.stop()


class Poller:
    """Lists the pods every POLL_SECONDS and notes when it saw fewer than desired ready, and when all again."""

    def __init__(self, kubeconfig: str, desired: int) -> None:
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.desired = desired
        self.seen: list[tuple[float, int]] = []
        self.halt = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.halt.wait(POLL_SECONDS):
            pods = self.core.list_namespaced_pod(NAMESPACE, label_selector="app=web").items
            ready = sum(1 for p in pods if p.metadata.deletion_timestamp is None and any(
                c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])))
            self.seen.append((time.time(), ready))

    def longest_outage(self, since: float) -> float:
        longest, down = 0.0, None
        for t, ready in self.seen:
            if t < since:
                continue
            if down is None and ready < self.desired:
                down = t
            elif down is not None and ready >= self.desired:
                longest, down = max(longest, t - down), None
        return longest


def run_watch(world: World, name: str, engine: dict, *flags: str) -> dict:
    path = world.write_input(name, engine)
    completed = world.run(world.command(path, *flags))
    if completed.returncode not in (0, 5):
        raise SystemExit(f"chaos-watch failed ({completed.returncode}): {completed.stderr}")
    return json.loads(completed.stdout)["experiments"][0]


def abort_latencies(world: World, runs: int) -> list[tuple[float, float, float]]:
    """(breach to stop requested, our detection delay, stop requested to Litmus stopped) per run."""
    policy = world.tmp / "policy.yaml"
    policy.write_text(yaml.safe_dump(watch_app.permissive_policy()))
    figures = []
    for index in range(runs):
        engine = watch_app.engine(f"bench-db-{index}", "db", NAMESPACE, duration=30, interval=10, percent=100, total_loss=True)
        result = run_watch(world, f"bench-db-{index}", engine, f"--policy {policy}")
        abort = result["abort"]
        if not abort or abort["by"] != "threshold":
            raise SystemExit(f"run {index} was not aborted by its threshold: {result['reason']}")
        started = epoch(result["started_at"])
        query = result["thresholds"][0]["query"]
        points = world.prometheus.query_range(query, started, started + abort["requested_at"] + 1, 0.05)
        breach = next(t for t, v in points if v > result["thresholds"][0]["value"])
        requested = started + abort["requested_at"]
        figures.append((requested - breach, started + abort["breach_at"] - breach,
                        (abort["stopped_at"] or abort["requested_at"]) - abort["requested_at"]))
        world.wait_ready()
        time.sleep(12)  # let the 10 s error-rate window drain before the next run's preflight
    return figures


def recovery_errors(world: World, runs: int) -> list[tuple[float, float, float, float]]:
    """(reported TTR, TTR from API stamps, TTR from an independent watch's arrival times, 2 s poller's TTR) per run."""
    kubeconfig = str(world.sandbox.admin_kubeconfig)
    figures = []
    for index in range(runs):
        recorder, poller = PodRecorder(kubeconfig), Poller(kubeconfig, desired=3)
        time.sleep(1)
        initially = recorder.pods.ready_names()
        engine = watch_app.engine(f"bench-web-{index}", "web", NAMESPACE, duration=4, interval=10, percent=34)
        result = run_watch(world, f"bench-web-{index}", engine)
        recorder.close()
        poller.halt.set()
        started = epoch(result["started_at"])
        # Whole-second stamps may fall before started_at; measuring from well before keeps outages unclipped.
        stamped = core.time_to_recovery(core.outages(initially, recorder.stamped, 3, started - 10))
        received = core.time_to_recovery(core.outages(initially, recorder.received, 3, started - 10))
        figures.append((result["time_to_recovery_seconds"], stamped, received, poller.longest_outage(started)))
        world.wait_ready()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    t0 = time.monotonic()
    sandbox = start(build(), nodes=3, ready_delay=1.0)
    try:
        world = open_world(sandbox, Path(tempfile.mkdtemp(prefix="watch-bench-")))
        try:
            aborts = abort_latencies(world, args.runs)
            recoveries = recovery_errors(world, args.runs)
        finally:
            world.close()
    finally:
        sandbox.stop()
    print(f"chaos-watch --interval 500ms, Prometheus scrape 1s, {args.runs} runs each, {time.monotonic() - t0:.0f}s total")
    latency = [a for a, _, _ in aborts]
    print(f"abort latency, breach in Prometheus -> engineState stop: mean {statistics.mean(latency):.3f}s "
          f"max {max(latency):.3f}s (limit 2 scrape intervals = 2.000s; max/limit {max(latency) / 2:.2f})")
    print(f"  of which detection (breach -> chaos-watch saw it): mean {statistics.mean(d for _, d, _ in aborts):.3f}s; "
          f"stop -> Litmus stopped: mean {statistics.mean(s for _, _, s in aborts):.3f}s")
    def errors(reference: int, measured: int) -> str:
        gaps = [abs(run[measured] - run[reference]) for run in recoveries]
        return f"mean {statistics.mean(gaps):.3f}s max {max(gaps):.3f}s"

    print("time to recovery (s), reported | API stamps | independent watch | 2s poller: "
          + "; ".join(" | ".join(f"{v:.2f}" for v in run) for run in recoveries))
    print(f"recovery error vs API stamps (1s resolution): chaos-watch {errors(1, 0)}; 2s poller {errors(1, 3)}")
    print(f"recovery error vs an independent watch's arrival times: chaos-watch {errors(2, 0)}; 2s poller {errors(2, 3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
