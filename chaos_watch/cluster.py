"""The Kubernetes seam of chaos-watch: server-side apply, reads, engineState stop and resumable watches.

KubernetesCluster resolves any kind in the input to its REST path by discovery and talks to the API through
chaosgen.kube, returning plain dicts. Transient failures (connection refused while the apiserver restarts, 429,
5xx) are retried for RETRY_FOR_SECONDS; a watch that breaks resumes from the last resourceVersion it saw, and
relists when the server says that version is gone (410), so no event is missed.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, cast

from chaosgen import kube
from chaosgen.kube import WatchHandler
from chaosgen.litmus import LITMUS_API_VERSION

__all__ = ["Cluster", "KubernetesCluster", "WatchHandler"]

RETRY_FOR_SECONDS = 60.0
CONNECT_WITHIN_SECONDS = 5.0


class Cluster(Protocol):
    def server(self) -> str: ...

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with field manager chaosgen (forcing conflicts: the run owns what it applies)."""
        ...

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None: ...

    def stop_engine(self, namespace: str, name: str) -> None:
        """Patch spec.engineState to stop, the Litmus way of aborting a ChaosEngine."""
        ...

    def watch(self, api_version: str, kind: str, namespace: str, handler: WatchHandler, stop: threading.Event,
              name: str | None = None, label_selector: str | None = None) -> None:
        """Call handler(type, object, received_at) for the current objects (type SYNC, then one SYNCED with an
        empty object once they are all listed) and every change after, until stop is set; runs in its own thread."""
        ...


class KubernetesCluster:
    """The Cluster of the CLI: one kubeconfig context (loaded at once, so a bad kubeconfig is exit 4 up front)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.kube = kube.connect(kubeconfig, context, "chaos-watch", concurrency=8, retry_for=RETRY_FOR_SECONDS)

    def server(self) -> str:
        return self.kube.server

    def connect(self) -> None:
        """Reach the cluster now, so that an unreachable one is one clear exit 4 before anything runs."""
        self.kube.version(retry_for=CONNECT_WITHIN_SECONDS)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        path = self.kube.resource(api_version, kind).path(namespace, name)
        return self.kube.get(path, f"get {kind} {_name(namespace, name)}")

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        path = self.kube.resource(api_version, kind).path(namespace)
        body = self.kube.request("GET", path, f"list {kind}", query={"labelSelector": label_selector})
        return cast(list[dict[str, Any]], (body or {}).get("items", []))

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        metadata = obj["metadata"]
        path = self.kube.resource(obj["apiVersion"], obj["kind"]).path(metadata.get("namespace"), metadata["name"])
        return self.kube.apply(path, obj, f"apply {obj['kind']} {_name(metadata.get('namespace'), metadata['name'])}",
                               dry_run=dry_run)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        path = self.kube.resource(api_version, kind).path(namespace, name)
        self.kube.delete(path, f"delete {kind} {_name(namespace, name)}")

    def stop_engine(self, namespace: str, name: str) -> None:
        path = self.kube.resource(LITMUS_API_VERSION, "ChaosEngine").path(namespace, name)
        self.kube.patch(path, {"spec": {"engineState": "stop"}}, f"stop ChaosEngine {namespace}/{name}")

    def watch(self, api_version: str, kind: str, namespace: str, handler: WatchHandler, stop: threading.Event,
              name: str | None = None, label_selector: str | None = None) -> None:
        query = {"fieldSelector": f"metadata.name={name}" if name else None, "labelSelector": label_selector}
        path = self.kube.resource(api_version, kind).path(namespace)
        self.kube.list_and_watch(path, f"watch {kind} in {namespace}", handler, stop, query)


def _name(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
