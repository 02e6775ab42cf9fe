"""A Litmus-compatible chaos runner for the sandbox: what Litmus's operator, runner and experiment pods do for the
faults that only need the Kubernetes API.

It watches ChaosEngines (watch API, all namespaces) and, for each active one, injects the fault itself:
- pod-delete: every CHAOS_INTERVAL seconds for TOTAL_CHAOS_DURATION, deletes PODS_AFFECTED_PERC % of the target's
  pods (at least one), with grace period 0 when FORCE is true;
- pod-autoscaler: scales the target to REPLICA_COUNT for the duration, then back;
- node-drain: cordons TARGET_NODE (or the node of the target's first pod), evicts its pods, uncordons at the end.
Targets follow litmus-go's selection (chaos_watch.core.PodSelection implements the same rules): spec.selectors.workloads
by the pods' owner name, appinfo.applabel as an OR of its comma-separated labels with an owner-kind filter;
node-drain and pod-autoscaler read only the first label (pod-autoscaler: of the workloads' metadata labels), and a
names-only selector makes them fail as litmus-go's Labels[0] panic does. SOT probes stop the experiment only with
stopOnFailure (otherwise the failure is recorded and the fault injected anyway, as in litmus-go pkg/probe/probe.go).
Faults that need a container runtime (cpu/memory hog, network, container-kill) are accepted and reported as not
supported. `engineState: stop` stops the fault at once (and reverts scale/cordon).

Status is written with the field names and values of Litmus 3.x (chaos-operator api/litmuschaos/v1alpha1):
ChaosEngine status.engineStatus initialized|completed|stopped and status.experiments[] {name, runner,
experimentPod, status Running|Completed|Forcefully Aborted|Skipped, verdict Awaited|Pass|Fail|Stopped,
lastUpdateTime}; ChaosResult `<engine>-<experiment>` with status.experimentStatus {phase Running|Completed|Stopped,
verdict Awaited|Pass|Fail|Stopped, probeSuccessPercentage, failureOutput}, status.probeStatuses[] and
status.history. promProbes are evaluated against --prometheus-url (standing in for the in-cluster endpoint);
other probe types are reported N/A.

    python -m tests.sandbox.litmus_runner --kubeconfig admin.kubeconfig [--prometheus-url http://127.0.0.1:9090]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from chaos_watch.core import PodSelection

log = logging.getLogger("litmus-runner")
GROUP, VERSION = "litmuschaos.io", "v1alpha1"
SUPPORTED = ("pod-delete", "pod-autoscaler", "node-drain")
SCALABLE = {"deployment": "deployment", "statefulset": "stateful_set"}


RETRY_SECONDS = 60.0


def retrying(call: Any, *args: Any, **kwargs: Any) -> Any:
    """call(*args, **kwargs), retried while the apiserver is unreachable or answers 5xx (a restart), up to a minute;
    Litmus's runner rides out apiserver restarts the same way through client-go's retries."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return call(*args, **kwargs)
        except ApiException as e:
            if e.status is not None and e.status < 500 or time.monotonic() > deadline:
                raise
        except (urllib3.exceptions.HTTPError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def env_of(engine: dict[str, Any]) -> dict[str, str]:
    experiment = engine["spec"]["experiments"][0]
    items = ((experiment.get("spec") or {}).get("components") or {}).get("env") or []
    return {item["name"]: str(item.get("value", "")) for item in items}


def pods_to_kill(total: int, percent_text: str) -> int:
    """Litmus's rule: PODS_AFFECTED_PERC of the pods, rounded down, but at least one (of those there are)."""
    if total == 0:
        return 0
    percent = int(percent_text) if percent_text.strip().isdigit() else 0
    return max(1, min(total, math.floor(total * percent / 100)))


def probe_passes(value: float, criteria: str, expected: float) -> bool:
    return {">": value > expected, ">=": value >= expected, "<": value < expected, "<=": value <= expected,
            "==": value == expected, "!=": value != expected}[criteria]


def result_status(phase: str, verdict: str, probes: list[dict[str, Any]], failed_step: str | None = None,
                  history: dict[str, Any] | None = None, error_code: str = "GENERIC_ERROR") -> dict[str, Any]:
    """A ChaosResult status in Litmus 3.x's shape; probeSuccessPercentage is a string, "Awaited" while running.
    error_code goes with failed_step, one of litmus-go's cerrors.ErrorType values."""
    judged = [p for p in probes if p["status"]["verdict"] in ("Passed", "Failed")]
    if phase == "Running":
        percentage = "Awaited"
    elif not judged:
        percentage = "100" if verdict == "Pass" else "0"
    else:
        percentage = str(round(100 * sum(p["status"]["verdict"] == "Passed" for p in judged) / len(judged)))
    status: dict[str, Any] = {
        "experimentStatus": {"phase": phase, "verdict": verdict, "probeSuccessPercentage": percentage},
        "probeStatuses": probes,
        "history": history or {"passedRuns": 0, "failedRuns": 0, "stoppedRuns": 0, "targets": []},
    }
    if failed_step:
        status["experimentStatus"]["failureOutput"] = {"failedStep": failed_step, "errorCode": error_code}
    return status


class Run:
    """One engine's execution: the fault in its own thread, stoppable through `stop`."""

    def __init__(self, runner: LitmusRunner, engine: dict[str, Any]) -> None:
        self.runner = runner
        self.engine = engine
        self.namespace = engine["metadata"]["namespace"]
        self.name = engine["metadata"]["name"]
        self.experiment = engine["spec"]["experiments"][0]["name"]
        self.result_name = f"{self.name}-{self.experiment}"
        self.env = env_of(engine)
        appinfo = engine["spec"].get("appinfo") or {}
        self.selection = PodSelection.of_engine(engine["spec"], self.namespace)
        self.app_namespace = self.selection.namespace
        self.app_label = appinfo.get("applabel", "")
        self.first_label = self.app_label.split(",", 1)[0]  # what node-drain and pod-autoscaler read
        self.app_kind = appinfo.get("appkind") or next((kind for kind, _ in self.selection.workloads), "deployment")
        self.stop = threading.Event()
        self.probe_failure: str | None = None
        self.probes = [self._probe_status(p, "Awaited", "") for p in self._probe_specs()]
        self.thread = threading.Thread(target=self.execute, daemon=True, name=f"run-{self.name}")

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _probe_specs(self) -> list[dict[str, Any]]:
        return ((self.engine["spec"]["experiments"][0].get("spec") or {}).get("probe")) or []

    @staticmethod
    def _probe_status(spec: dict[str, Any], verdict: str, description: str) -> dict[str, Any]:
        return {"name": spec["name"], "type": spec.get("type", ""), "mode": spec.get("mode", ""),
                "status": {"verdict": verdict, "description": description}}

    def engine_status(self, engine_status: str, status: str, verdict: str) -> None:
        self.runner.patch_engine_status(self.namespace, self.name, {
            "engineStatus": engine_status,
            "experiments": [{"name": self.experiment, "runner": f"{self.name}-runner",
                             "experimentPod": f"{self.experiment}-{self.runner.suffix()}", "status": status,
                             "verdict": verdict, "lastUpdateTime": now_stamp()}],
        })

    def write_result(self, phase: str, verdict: str, failed_step: str | None = None,
                     error_code: str = "GENERIC_ERROR") -> None:
        history = {"passedRuns": int(verdict == "Pass"), "failedRuns": int(verdict == "Fail"),
                   "stoppedRuns": int(verdict == "Stopped"),
                   "targets": [{"name": self.app_label, "kind": self.app_kind, "chaosStatus": "injected"}]}
        self.runner.put_result(self.namespace, self.result_name, self.name, self.experiment,
                               result_status(phase, verdict, self.probes, failed_step, history, error_code))

    # -- the run -------------------------------------------------------------------------------------------------

    def execute(self) -> None:
        try:
            self.engine_status("initialized", "Running", "Awaited")
            self.write_result("Running", "Awaited")
            if self.experiment not in SUPPORTED:
                step = f"fault {self.experiment} needs a container runtime and is not supported by the sandbox"
                self.write_result("Completed", "Fail", step, "CONTAINER_RUNTIME_ERROR")
                self.engine_status("completed", "Skipped", "Fail")
                return
            if self.experiment in ("node-drain", "pod-autoscaler") and not self.first_label:
                raise RuntimeError("index out of range [0] with length 0 (litmus-go getAppDetails reads Labels[0])")
            failure = self.run_probes("SOT", only_stopping=True) or self.inject()
            # An engine stopped from outside (engineState: stop) ends at once, as Litmus's abort does: no EOT probes.
            failure = failure or (None if self.stop.is_set() else self.run_probes("EOT"))
            if self.stop.is_set() and not self.probe_failure:
                self.probes = [self._probe_status(p, "N/A", "the experiment was stopped") for p in self._probe_specs()]
                self.write_result("Stopped", "Stopped")
                self.engine_status("stopped", "Forcefully Aborted", "Stopped")
                return
            verdict = "Fail" if failure else "Pass"
            self.write_result("Completed", verdict, failure, "PROM_PROBE_FAILURE")
            self.engine_status("completed", "Completed", verdict)
        except Exception:  # a broken run must still end its engine, as Litmus's would
            log.exception("run of %s failed", self.name)
            try:
                self.write_result("Completed", "Fail", "the sandbox runner failed")
                self.engine_status("completed", "Completed", "Fail")
            except Exception:
                log.exception("could not record the failure of %s", self.name)
        finally:
            self.runner.finished(self)

    def inject(self) -> str | None:
        duration = float(self.env.get("TOTAL_CHAOS_DURATION") or 30)
        method = {"pod-delete": self.pod_delete, "pod-autoscaler": self.pod_autoscaler, "node-drain": self.node_drain}
        continuous = threading.Thread(target=self.continuous_probes, args=(duration,), daemon=True)
        continuous.start()
        method[self.experiment](duration)
        continuous.join(timeout=5)
        return self.probe_failure

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when the run must end."""
        return self.stop.wait(max(0.0, seconds))

    def target_pods(self) -> list[Any]:
        pods = retrying(self.runner.core.list_namespaced_pod, self.app_namespace).items
        serialize = self.runner.core.api_client.sanitize_for_serialization
        return [p for p in pods if p.metadata.deletion_timestamp is None and self.selection.matches(serialize(p))]

    def pod_delete(self, duration: float) -> None:
        interval = float(self.env.get("CHAOS_INTERVAL") or 10)
        force = self.env.get("FORCE", "true").lower() == "true"
        end = time.monotonic() + duration
        while time.monotonic() < end and not self.stop.is_set():
            pods = self.target_pods()
            if pods:
                for pod in random.sample(pods, pods_to_kill(len(pods), self.env.get("PODS_AFFECTED_PERC", ""))):
                    log.info("deleting pod %s/%s", self.app_namespace, pod.metadata.name)
                    try:
                        retrying(self.runner.core.delete_namespaced_pod, pod.metadata.name, self.app_namespace,
                                 grace_period_seconds=0 if force else None)
                    except ApiException as e:
                        if e.status != 404:
                            raise
            if self.wait(min(interval, end - time.monotonic())):
                return

    def pod_autoscaler(self, duration: float) -> None:
        # litmus-go lists the workloads by the first label (their metadata labels) and scales every match.
        kind = SCALABLE.get(self.app_kind.lower(), "deployment")
        listing = getattr(self.runner.apps, f"list_namespaced_{kind}")
        read = getattr(self.runner.apps, f"read_namespaced_{kind}_scale")
        patch = getattr(self.runner.apps, f"patch_namespaced_{kind}_scale")
        names = [w.metadata.name for w in listing(self.app_namespace, label_selector=self.first_label).items]
        originals = {name: read(name, self.app_namespace).spec.replicas for name in names}
        try:
            for name, original in originals.items():
                patch(name, self.app_namespace, {"spec": {"replicas": int(self.env.get("REPLICA_COUNT") or original + 1)}})
            self.wait(duration)
        finally:
            for name, original in originals.items():
                patch(name, self.app_namespace, {"spec": {"replicas": original}})

    def node_drain(self, duration: float) -> None:
        node = self.env.get("TARGET_NODE") or next((p.spec.node_name for p in self.target_pods() if p.spec.node_name), None)
        if not node:
            raise RuntimeError("no TARGET_NODE and no scheduled target pod")
        self.runner.core.patch_node(node, {"spec": {"unschedulable": True}})
        try:
            pods = self.runner.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            for pod in pods:
                owners = pod.metadata.owner_references or []
                if any(o.kind == "DaemonSet" for o in owners) or pod.metadata.deletion_timestamp:
                    continue
                body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace))
                try:
                    self.runner.core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
                except ApiException as e:
                    if e.status not in (404, 429):
                        raise
            self.wait(duration)
        finally:
            self.runner.core.patch_node(node, {"spec": {"unschedulable": False}})

    # -- probes --------------------------------------------------------------------------------------------------

    def run_probes(self, mode: str, only_stopping: bool = False) -> str | None:
        """Judge the probes of a mode; with only_stopping, a failure counts only for probes with stopOnFailure."""
        stopping = None
        for index, spec in enumerate(self._probe_specs()):
            if (spec.get("mode") == mode and not self._judge(index, spec)
                    and (spec.get("runProperties") or {}).get("stopOnFailure")):
                stopping = stopping or self.probe_failure
        return stopping if only_stopping else self.probe_failure

    def continuous_probes(self, duration: float) -> None:
        end = time.monotonic() + duration
        specs = [(i, s) for i, s in enumerate(self._probe_specs()) if s.get("mode") in ("Continuous", "OnChaos")]
        if not specs:
            return
        interval = min(_seconds((s.get("runProperties") or {}).get("probePollingInterval") or "2s") for _, s in specs)
        while time.monotonic() < end and not self.stop.is_set():
            for index, spec in specs:
                if not self._judge(index, spec) and (spec.get("runProperties") or {}).get("stopOnFailure"):
                    self.stop.set()
                    return
            self.wait(interval)

    def _judge(self, index: int, spec: dict[str, Any]) -> bool:
        """Evaluate one probe now and record its verdict; other than promProbes they are N/A here."""
        if spec.get("type") != "promProbe" or not self.runner.prometheus_url:
            self.probes[index] = self._probe_status(spec, "N/A", "not evaluated by the sandbox runner")
            return True
        inputs = spec.get("promProbe/inputs") or {}
        comparator = inputs.get("comparator") or {}
        query = _as_sh_reads_it(inputs.get("query") or "")
        try:
            response = requests.get(f"{self.runner.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
            results = response.json()["data"]["result"]
            value = float(results[0]["value"][1]) if results else math.nan
            ok = not math.isnan(value) and probe_passes(value, comparator.get("criteria", "=="), float(comparator.get("value", 0)))
            description = f"value {value:g} {'meets' if ok else 'fails'} {comparator.get('criteria')} {comparator.get('value')}"
        except (requests.RequestException, KeyError, ValueError, IndexError) as e:
            ok, description = False, f"probe query failed: {type(e).__name__}"
        previous = self.probes[index]["status"]["verdict"]
        verdict = "Failed" if not ok or previous == "Failed" else "Passed"
        self.probes[index] = self._probe_status(spec, verdict, "Passed the probe" if verdict == "Passed" else description)
        if not ok and self.probe_failure is None:
            self.probe_failure = f"probe {spec['name']} failed: {description}"
        return ok


def _as_sh_reads_it(text: str) -> str:
    """The query as /bin/sh hands it to promql from inside double quotes: a backslash before $ ` " \\ is dropped."""
    return re.sub(r'\\([$`"\\])', r"\1", text)


def _seconds(text: str) -> float:
    text = str(text).strip()
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


class LitmusRunner:
    """The controller: a ChaosEngine watch that starts, stops and finishes Runs. start() returns at once."""

    def __init__(self, kubeconfig: str, prometheus_url: str | None = None) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.prometheus_url = prometheus_url.rstrip("/") if prometheus_url else None
        self.runs: dict[tuple[str, str], Run] = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._watch_forever, daemon=True, name="litmus-runner")
        self._watch: watch.Watch | None = None

    def start(self) -> LitmusRunner:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop watching and stop every running fault (reverting scale and cordons)."""
        self.halt.set()
        if self._watch is not None:
            self._watch.stop()
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.stop.set()
        for run in runs:
            run.thread.join(timeout=10)

    @staticmethod
    def suffix() -> str:
        return "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=6))

    def _watch_forever(self) -> None:
        version = None
        while not self.halt.is_set():
            try:
                if version is None:
                    listing = self.custom.list_cluster_custom_object(GROUP, VERSION, "chaosengines")
                    for engine in listing["items"]:
                        self.reconcile("SYNC", engine)
                    version = listing["metadata"]["resourceVersion"]
                self._watch = watch.Watch()
                for event in self._watch.stream(self.custom.list_cluster_custom_object, GROUP, VERSION, "chaosengines",
                                                resource_version=version, timeout_seconds=30):
                    version = event["object"]["metadata"]["resourceVersion"]
                    self.reconcile(event["type"], event["object"])
                    if self.halt.is_set():
                        return
            except ApiException as e:
                if e.status == 410:
                    version = None
                else:
                    log.warning("engine watch failed: %s", e.reason)
                    self.halt.wait(0.5)
            except Exception as e:  # noqa: BLE001 - apiserver restarts: keep watching
                log.info("engine watch lost (%s); resuming", type(e).__name__)
                self.halt.wait(0.5)

    def reconcile(self, event_type: str, engine: dict[str, Any]) -> None:
        key = (engine["metadata"]["namespace"], engine["metadata"]["name"])
        state = (engine.get("spec") or {}).get("engineState", "active")
        status = (engine.get("status") or {}).get("engineStatus")
        with self.lock:
            run = self.runs.get(key)
            if event_type == "DELETED" or state == "stop":
                if run is not None:
                    run.stop.set()
                elif event_type != "DELETED" and status not in ("stopped", "completed"):
                    self.patch_engine_status(*key, {"engineStatus": "stopped"})
                return
            if run is None and status is None:
                run = Run(self, engine)
                self.runs[key] = run
                run.thread.start()

    def finished(self, run: Run) -> None:
        with self.lock:
            self.runs.pop((run.namespace, run.name), None)

    def patch_engine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            retrying(self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, "chaosengines", name,
                     {"status": status})
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile
                raise

    def put_result(self, namespace: str, name: str, engine: str, experiment: str, status: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ChaosResult",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"chaosUID": engine, "name": name, "app.kubernetes.io/part-of": "litmus"}},
                "spec": {"engine": engine, "experiment": experiment}, "status": status}
        try:
            retrying(self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "chaosresults", body)
        except ApiException as e:
            if e.status != 409:
                raise
            retrying(self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, "chaosresults", name,
                     {"status": status})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.litmus_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--prometheus-url")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="litmus-runner: %(message)s")
    runner = LitmusRunner(args.kubeconfig, args.prometheus_url).start()
    try:
        while runner.thread.is_alive():
            runner.thread.join(1)
    except KeyboardInterrupt:
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
