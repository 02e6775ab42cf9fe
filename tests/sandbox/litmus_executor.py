"""Runs the real Litmus pods of the sandbox as host processes (prototype for issue 9; not wired into the suite).

kwok fakes every pod: it marks pods Running but runs nothing. For the pods that real Litmus creates — the
chaos-runner pod the chaos-operator starts and the experiment Job pod the chaos-runner starts — this executor runs
the binary that pod's image would run (built by tests/sandbox/build_litmus.sh), with the pod's env, as the pod's
service account, and reflects its exit in the pod status the way kubelet would, which is what the operator
(runner container terminated with reason Completed) and the runner (experiment pod Succeeded) wait for.

- What to run: the container's command + args, with `chaos-runner` as the runner image's entrypoint when the pod
  has neither. `./experiments` and `chaos-runner` resolve to shims in a per-pod directory (also the working
  directory, like the go-runner image's WORKDIR) that add `-kubeconfig`, because litmus-go and chaos-runner read
  the flag, not KUBECONFIG (litmus-go pkg/clients/clientset.go, chaos-runner pkg/utils/types.go).
- Identity: a kubeconfig with a TokenRequest token of the pod's service account, so Litmus meets the RBAC that
  ChaosGen renders; KUBECONFIG is set too for the kubectl that node-drain execs. promql and kubectl are on PATH.
- Env: `value`, downward-API `fieldRef`, ConfigMap/Secret key refs. CLIENT_UUID is dropped: with it the runner
  sends analytics to the internet.
- A pod that is deleted or evicted while its process runs gets the process terminated (SIGTERM), as on a node.

Experiment Job pods must not be completed by kwok itself: kwok-stages.yaml's pod-complete stage skips pods
labelled app.kubernetes.io/component=experiment-job.
"""

from __future__ import annotations

import base64
import logging
import os
import shlex
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("litmus-executor")
# Pods of Litmus that run a binary: the runner (created by the operator) and experiment Jobs (by the runner).
SELECTOR = "app.kubernetes.io/part-of=litmus,app.kubernetes.io/component in (chaos-runner,experiment-job)"
# Image name (last path part, no tag) -> ENTRYPOINT, for containers that set no command (chaos-runner Dockerfile).
ENTRYPOINTS = {"chaos-runner": ["chaos-runner"]}
# Binaries that take -kubeconfig and get a shim.
SHIMMED = ("chaos-runner", "experiments")
TOKEN_SECONDS = 3600


@dataclass
class Execution:
    """One pod's host process."""

    namespace: str
    name: str
    container: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # Set when the pod was deleted: its status is not written then (a new pod may have taken the name).
    deleted: threading.Event


class LitmusExecutor:
    """Watches Litmus pods and runs each once, when kwok reports it Running. start() returns at once."""

    def __init__(self, admin_kubeconfig: Path, litmus_bin: Path, kubectl_bin: Path, work_dir: Path) -> None:
        self.api_client = config.new_client_from_config(config_file=str(admin_kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.admin_kubeconfig = yaml.safe_load(admin_kubeconfig.read_text())
        self.litmus_bin = litmus_bin
        self.kubectl_bin = kubectl_bin
        self.work_dir = work_dir
        self.executions: dict[str, Execution] = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._watch_forever, daemon=True, name="litmus-executor")
        self._watch: watch.Watch | None = None

    def start(self) -> LitmusExecutor:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop watching and terminate the processes this executor started."""
        self.halt.set()
        if self._watch is not None:
            self._watch.stop()
        with self.lock:
            running = [e for e in self.executions.values() if e.process.poll() is None]
        for execution in running:
            execution.process.terminate()
        for execution in running:
            try:
                execution.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                execution.process.kill()

    def _watch_forever(self) -> None:
        while not self.halt.is_set():
            try:
                self._watch = watch.Watch()
                for event in self._watch.stream(self.core.list_pod_for_all_namespaces, label_selector=SELECTOR,
                                                timeout_seconds=30):
                    if event["type"] == "DELETED" or event["object"].metadata.deletion_timestamp is not None:
                        self.stop_pod(event["object"].metadata.uid)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.consider(event["object"])
                    if self.halt.is_set():
                        return
            except Exception as e:  # noqa: BLE001 - apiserver restarts: keep watching
                log.info("pod watch lost (%s); resuming", type(e).__name__)
                self.halt.wait(0.5)

    def stop_pod(self, uid: str) -> None:
        """A deleted or evicted pod (node-drain evicts the pods on its node) stops its process, as kubelet does."""
        with self.lock:
            execution = self.executions.get(uid)
        if execution is not None and execution.process.poll() is None:
            log.info("%s/%s deleted: stopping its process", execution.namespace, execution.name)
            execution.deleted.set()
            execution.process.terminate()

    def consider(self, pod: client.V1Pod) -> None:
        """Start the pod's process once kwok has made it Running (kubelet would start it then)."""
        if (pod.status.phase or "") != "Running":
            return
        with self.lock:
            if pod.metadata.uid in self.executions:
                return
            try:
                execution = self._launch(pod)
            except (ApiException, OSError, ValueError) as e:
                log.error("cannot run pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, e)
                self._finish(pod.metadata.namespace, pod.metadata.name, pod.spec.containers[0].name, 127, "Error")
                return
            self.executions[pod.metadata.uid] = execution
        threading.Thread(target=self._await, args=(execution,), daemon=True).start()

    def _launch(self, pod: client.V1Pod) -> Execution:
        container = pod.spec.containers[0]
        pod_dir = self.work_dir / f"{pod.metadata.namespace}.{pod.metadata.name}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        kubeconfig = pod_dir / "kubeconfig"
        self._write_kubeconfig(kubeconfig, pod.metadata.namespace, pod.spec.service_account_name or "default")
        for binary in SHIMMED:
            shim = pod_dir / binary
            shim.write_text(f'#!/bin/sh\nexec {shlex.quote(str(self.litmus_bin / binary))} "$@" '
                            f'-kubeconfig {shlex.quote(str(kubeconfig))}\n')
            shim.chmod(0o755)
        argv = [*(container.command or []), *(container.args or [])]
        if not container.command:
            image = container.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
            if image not in ENTRYPOINTS:
                raise ValueError(f"image {container.image} has no known entrypoint")
            argv = [*ENTRYPOINTS[image], *(container.args or [])]
        if Path(argv[0]).name in SHIMMED:
            argv[0] = str(pod_dir / Path(argv[0]).name)
        env = {"PATH": os.pathsep.join([str(pod_dir), str(self.litmus_bin), str(self.kubectl_bin),
                                        os.environ.get("PATH", "")]),
               "HOME": str(pod_dir), "KUBECONFIG": str(kubeconfig)}
        env.update(self._container_env(pod, container))
        env.pop("CLIENT_UUID", None)
        log_path = pod_dir / "output.log"
        log.info("running %s/%s: %s", pod.metadata.namespace, pod.metadata.name, shlex.join(argv))
        with log_path.open("ab") as out:
            process = subprocess.Popen(argv, cwd=pod_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        return Execution(pod.metadata.namespace, pod.metadata.name, container.name, process, log_path,
                         threading.Event())

    def _await(self, execution: Execution) -> None:
        code = execution.process.wait()
        log.info("%s/%s exited %d", execution.namespace, execution.name, code)
        if not self.halt.is_set() and not execution.deleted.is_set():
            self._finish(execution.namespace, execution.name, execution.container, code,
                         "Completed" if code == 0 else "Error")

    def _finish(self, namespace: str, name: str, container: str, code: int, reason: str) -> None:
        """The status kubelet reports for a finished single-container pod with restartPolicy Never."""
        now = datetime.now(UTC).isoformat()
        status = {"phase": "Succeeded" if code == 0 else "Failed",
                  "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now},
                                 {"type": "ContainersReady", "status": "False", "lastTransitionTime": now}],
                  "containerStatuses": [{"name": container, "ready": False, "restartCount": 0, "started": False,
                                         "image": "", "imageID": "",
                                         "state": {"terminated": {"exitCode": code, "reason": reason,
                                                                  "startedAt": now, "finishedAt": now}}}]}
        try:
            self.core.patch_namespaced_pod_status(name, namespace, {"status": status})
        except ApiException as e:
            if e.status != 404:
                log.error("cannot update status of %s/%s: %s", namespace, name, e.reason)

    def _write_kubeconfig(self, path: Path, namespace: str, service_account: str) -> None:
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS))
        token = self.core.create_namespaced_service_account_token(service_account, namespace, request).status.token
        cluster = self.admin_kubeconfig["clusters"][0]
        user = f"system:serviceaccount:{namespace}:{service_account}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user, "namespace": namespace}}],
            "current-context": user,
        }, sort_keys=False))
        path.chmod(0o600)

    def _container_env(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.env or []:
            source = var.value_from
            if source is None:
                env[var.name] = var.value or ""
            elif source.field_ref is not None:
                env[var.name] = self._field(pod, source.field_ref.field_path)
            elif source.config_map_key_ref is not None:
                ref = source.config_map_key_ref
                data = self.core.read_namespaced_config_map(ref.name, pod.metadata.namespace).data or {}
                env[var.name] = data.get(ref.key, "")
            elif source.secret_key_ref is not None:
                ref = source.secret_key_ref
                data = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace).data or {}
                env[var.name] = base64.b64decode(data.get(ref.key, "")).decode()
        return env

    @staticmethod
    def _field(pod: client.V1Pod, path: str) -> str:
        fields = {"metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace,
                  "metadata.uid": pod.metadata.uid, "spec.nodeName": pod.spec.node_name,
                  "spec.serviceAccountName": pod.spec.service_account_name, "status.podIP": pod.status.pod_ip,
                  "status.hostIP": pod.status.host_ip}
        if path not in fields:
            raise ValueError(f"unsupported fieldRef {path}")
        return fields[path] or ""
