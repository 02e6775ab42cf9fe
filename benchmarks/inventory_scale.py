"""Live chaos-inventory at scale, side by side with kubectl reading the same kinds, in one run.

    python benchmarks/inventory_scale.py [--namespaces 50] [--deployments 2000] [--replicas 10] [--nodes 50]

Starts a sandbox (tests/sandbox) with fake nodes over three zones, creates Deployments with a Service each
across the namespaces (parallel POSTs), waits until the real controllers, the scheduler and kwok have made every
pod Running, then times `chaos-inventory` and `kubectl get <the same kinds> -A -o json`, alternating runs, and
prints wall time and peak RSS of each plus the ratios. Targets (issue 3): inventory within 1.5x of kubectl's
time, under 1.5 GB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chaos_inventory.cluster import KINDS  # noqa: E402
from tests.sandbox.sandbox import Sandbox, build, start  # noqa: E402

KUBECTL_KINDS = ",".join(kind.qualified for kind in KINDS)


def deployment(name: str, replicas: int) -> dict:
    labels = {"app": name, "tier": "backend"}
    container = {"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}],
                 "env": [{"name": "DB_HOST", "value": f"{name}-db"}],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def populate(sandbox: Sandbox, namespaces: int, deployments: int, replicas: int) -> None:
    """Namespaces, then Deployments and Services, each a POST, 16 at a time. The controllers creating pods
    meanwhile can starve the apiserver on two cores, so a timed-out or throttled POST is retried (409 Conflict
    then means an earlier attempt got through)."""
    http = sandbox.session()
    api = sandbox.server

    def post(path: str, body: dict) -> None:
        for attempt in range(12):
            try:
                response = http.post(api + path, json=body, timeout=90)
            except requests.RequestException:
                time.sleep(min(2 ** attempt, 15))
                continue
            if response.status_code in (201, 409):
                return
            if response.status_code not in (429, 500, 503, 504):
                break
            time.sleep(min(2 ** attempt, 15))
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:200]}")

    names = [f"bench-{i:02d}" for i in range(namespaces)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda ns: post("/api/v1/namespaces", {"metadata": {"name": ns}}), names))
        jobs = []
        for index in range(deployments):
            namespace, name = names[index % namespaces], f"svc-{index:04d}"
            jobs.append((f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(name, replicas)))
            jobs.append((f"/api/v1/namespaces/{namespace}/services", service(name)))
        list(pool.map(lambda job: post(*job), jobs))


def running_pods(sandbox: Sandbox) -> int:
    """Pods with phase Running, counted from a metadata-light paginated list."""
    http = sandbox.session()
    count, token = 0, ""
    while True:
        params = {"limit": "5000", "fieldSelector": "status.phase=Running"}
        if token:
            params["continue"] = token
        body = http.get(f"{sandbox.server}/api/v1/pods", params=params, timeout=120,
                        headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}).json()
        count += len(body["items"])
        token = body["metadata"].get("continue")
        if not token:
            return count


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in MB (of the process and its waited children) and bytes written on stdout."""
    with open(os.devnull, "wb") as sink, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink,
                                                          env=env) as process:
        started = time.perf_counter()
        size = 0
        while chunk := process.stdout.read(1 << 20):
            size += len(chunk)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {process.returncode}")
    return elapsed, usage.ru_maxrss // 1024, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--deployments", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle-timeout", type=float, default=900)
    args = parser.parse_args()
    expected_pods = args.deployments * args.replicas

    sandbox = start(build(), nodes=args.nodes)
    try:
        print(f"sandbox ready in {sandbox.timings['total']} s with {args.nodes} nodes", flush=True)
        t0 = time.monotonic()
        populate(sandbox, args.namespaces, args.deployments, args.replicas)
        print(f"created {args.deployments} Deployments + Services in {args.namespaces} namespaces in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        running = 0
        while time.monotonic() - t0 < args.settle_timeout:
            try:
                running = running_pods(sandbox)
            except (requests.RequestException, ValueError, KeyError):
                time.sleep(5)  # an overloaded apiserver; ask again
                continue
            print(f"  {running}/{expected_pods} pods Running after {time.monotonic() - t0:.0f} s", flush=True)
            if running >= expected_pods:
                break
            time.sleep(10)
        if running < expected_pods:
            print(f"warning: only {running} of {expected_pods} pods Running; measuring anyway", flush=True)

        env = sandbox.env()
        inventory = ["chaos-inventory", "-A"]
        kubectl = [str(sandbox.kubectl), "get", KUBECTL_KINDS, "-A", "-o", "json"]
        results: dict[str, list[tuple[float, int, int]]] = {"chaos-inventory": [], "kubectl": []}
        for _ in range(args.runs):
            results["kubectl"].append(measure(kubectl, env))
            results["chaos-inventory"].append(measure(inventory, env))
        summary = {}
        for name, runs in results.items():
            seconds = statistics.median(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            summary[name] = (seconds, peak)
            print(f"{name:16s} median {seconds:6.2f} s  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})  "
                  f"peak RSS {peak} MB  stdout {runs[0][2] / 1e6:.1f} MB")
        time_ratio = summary["chaos-inventory"][0] / summary["kubectl"][0]
        memory_ratio = summary["chaos-inventory"][1] / summary["kubectl"][1]
        print(f"pods Running: {running}; kinds: {KUBECTL_KINDS}")
        print(f"time ratio inventory/kubectl: {time_ratio:.2f}x (target <= 1.5x); "
              f"memory ratio: {memory_ratio:.2f}x; inventory peak {summary['chaos-inventory'][1]} MB (target < 1536)")
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
