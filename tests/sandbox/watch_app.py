"""The small application chaos-watch's tests run against, and ChaosEngines for it in chaos-litmus's output shape.

web (3 replicas) -> api (2 replicas) -> db (StatefulSet, 1 replica), in namespace `shop`. Used by the unit tests
(as plain dicts), the end-to-end tests and benchmarks/watch_abort.py (applied to the sandbox, played by
traffic_sim.py from the Topology below). Queries follow chaos_suggest/promql.py's metric convention.
"""

from __future__ import annotations

from typing import Any

from chaosgen import engine_contract

NAMESPACE = "shop"
# name -> (kind, replicas, hard dependencies by workload name)
WORKLOADS = {
    "web": ("Deployment", 3, ["api"]),
    "api": ("Deployment", 2, ["db"]),
    "db": ("StatefulSet", 1, []),
}


def manifests(namespace: str = NAMESPACE, ready_delay: float = 1.0) -> list[dict[str, Any]]:
    """Namespace, workloads and Services; kwok makes new pods Ready after `ready_delay` seconds."""
    objects: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for name, (kind, replicas, _) in WORKLOADS.items():
        labels = {"app": name}
        template = {
            "metadata": {"labels": labels, "annotations": {"chaosgen.dev/ready-delay": f"{int(ready_delay * 1000)}ms"}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": name, "image": f"example/{name}:1.0", "ports": [{"containerPort": 8080}]}],
            },
        }
        spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template}
        if kind == "StatefulSet":
            spec["serviceName"] = name
        objects.append({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace},
                        "spec": spec})
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})
    return objects


def topology(namespace: str = NAMESPACE) -> dict[str, Any]:
    """The Topology of the app (the parts traffic_sim.py reads: services and dependencies)."""
    def wid(name: str) -> str:
        return f"{namespace}/{WORKLOADS[name][0]}/{name}"

    return {
        "apiVersion": "chaosgen.dev/v1", "kind": "Topology",
        "metadata": {"generator": "tests", "source": {"type": "files"}},
        "workloads": [{"id": wid(n), "namespace": namespace, "kind": k, "name": n, "replicas": r} for n, (k, r, _) in WORKLOADS.items()],
        "services": [{"id": f"{namespace}/Service/{n}", "namespace": namespace, "name": n, "selects": [wid(n)]} for n in WORKLOADS],
        "dependencies": [
            {"from": wid(n), "to": wid(d), "external": False, "via": f"{namespace}/Service/{d}", "hard": True}
            for n, (_, _, deps) in WORKLOADS.items() for d in deps
        ],
    }


def error_rate_query(service: str, namespace: str = NAMESPACE) -> str:
    """chaos_suggest.promql.error_rate's shape, with a short window so that tests see a breach within seconds."""
    def requests(extra: str = "") -> str:
        return f'sum(rate(http_requests_total{{namespace="{namespace}",service="{service}"{extra}}}[10s]))'
    errors = requests(',code=~"5.."')
    return f"({errors} or vector(0)) / clamp_min({requests()} or vector(0), 1e-9)"


def engine(name: str, target: str, namespace: str = NAMESPACE, duration: int = 10, interval: int = 2, percent: int = 50, force: bool = True,
           thresholds: list[dict[str, Any]] | None = None, fault: str = "pod-delete", expected_recovery: int = 30,
           total_loss: bool = False) -> dict[str, Any]:
    """A ChaosEngine with the chaosgen annotations, as chaos-litmus renders one."""
    kind, replicas, _ = WORKLOADS[target]
    thresholds = thresholds if thresholds is not None else [
        {"name": f"{caller}-error-rate", "query": error_rate_query(caller, namespace), "operator": ">", "value": 0.05, "for": "0s"}
        for caller in sorted(n for n, (_, _, deps) in WORKLOADS.items() if target in deps)
    ] or [{"name": f"{target}-error-rate", "query": error_rate_query(target, namespace), "operator": ">", "value": 0.5, "for": "0s"}]
    workload_id = f"{namespace}/{kind}/{target}"
    experiment = {
        "id": name, "title": f"{fault} on {target}", "hypothesis": f"{target} recovers within {expected_recovery}s",
        "generator": "builtin",
        "target": {"workload": workload_id, "namespace": namespace, "kind": kind, "name": target, "label_selector": f"app={target}"},
        "fault": {"type": fault},
        "parameters": {"duration": f"{duration}s", "interval": f"{interval}s", "pods_affected_percent": percent, "force": force},
        "blast_radius": {"namespaces": [namespace], "workloads": [workload_id], "pods_affected_percent": percent,
                         "max_pods": replicas, **({"total_loss": True} if total_loss else {})},
        "abort_thresholds": thresholds, "steady_state": [], "expected_recovery_seconds": expected_recovery,
        "rationale": {"summary": "test", "risks": [], "dependencies": []},
    }
    return {
        "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "chaosgen", "chaosgen.dev/experiment-id": name},
            "annotations": engine_contract.encode(experiment),
        },
        "spec": {
            "engineState": "active", "chaosServiceAccount": f"{fault}-sa",
            "appinfo": {"appns": namespace, "applabel": f"app={target}", "appkind": kind.lower()},
            "experiments": [{"name": fault, "spec": {"components": {"env": [
                {"name": "TOTAL_CHAOS_DURATION", "value": str(duration)},
                {"name": "CHAOS_INTERVAL", "value": str(interval)},
                {"name": "PODS_AFFECTED_PERC", "value": str(percent)},
                {"name": "FORCE", "value": "true" if force else "false"},
            ]}}}],
        },
    }


def chaos_experiment(fault: str = "pod-delete", namespace: str = NAMESPACE) -> dict[str, Any]:
    """A minimal ChaosExperiment so that preflight finds the one the engine names."""
    return {"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosExperiment",
            "metadata": {"name": fault, "namespace": namespace},
            "spec": {"definition": {"scope": "Namespaced", "image": "litmuschaos/go-runner:3.28.0",
                                    "args": ["-c", f"./experiments -name {fault}"], "command": ["/bin/bash"]}}}


def permissive_policy() -> dict[str, Any]:
    """A policy file body allowing the total-loss experiment on the single-replica database."""
    return {"apiVersion": "chaosgen.dev/v1", "kind": "SafetyPolicy", "allow_total_loss": True}
