"""The Kubernetes seam of chaos-watch: server-side apply, reads, engineState stop and resumable watches.

KubernetesCluster talks to the API through the kubernetes client's DynamicClient (so any kind in the input
resolves to its REST path by discovery) and returns plain dicts. Transient failures (connection refused while the
apiserver restarts, 429, 5xx) are retried with backoff; a watch that breaks resumes from the last resourceVersion it
saw, and relists when the server says that version is gone (410), so no event is missed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import urllib3
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from kubernetes.watch.watch import iter_resp_lines

from chaosgen.errors import EnvironmentFailure

log = logging.getLogger("chaos_watch.cluster")

FIELD_MANAGER = "chaosgen"
RETRY_FOR_SECONDS = 60.0
WATCH_SERVER_TIMEOUT = 60
TRANSIENT_STATUS = {429, 500, 502, 503, 504}
WatchHandler = Callable[[str, dict[str, Any], float], None]


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


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (ApiException, DynamicApiError)):
        return getattr(error, "status", None) in TRANSIENT_STATUS
    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, OSError))


def retrying(call: Callable[[], Any], what: str, deadline: float = RETRY_FOR_SECONDS) -> Any:
    """call() retried with exponential backoff while it fails transiently, up to `deadline` seconds."""
    give_up = time.monotonic() + deadline
    delay = 0.2
    while True:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - classified just below
            if not is_transient(e) or time.monotonic() + delay > give_up:
                raise
            log.info("%s failed transiently (%s); retrying in %.1fs", what, type(e).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class KubernetesCluster:
    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        configuration = Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        except (ConfigException, OSError, TypeError, ValueError) as e:
            raise EnvironmentFailure(f"cannot load kubeconfig{f' {kubeconfig}' if kubeconfig else ''}: {e}") from e
        # urllib3's own retries would log a warning each and multiply our backoff; retrying() is the one policy.
        configuration.retries = False
        self.api_client = ApiClient(configuration)
        self._dynamic: DynamicClient | None = None
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def server(self) -> str:
        return self.api_client.configuration.host

    def connect(self) -> None:
        """Reach the cluster now (discovery), so that an unreachable one is one clear exit 4 before anything runs."""
        self.dynamic  # noqa: B018 - the property connects and caches

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = retrying(lambda: DynamicClient(self.api_client), "discovery", deadline=5)
                except Exception as e:
                    raise EnvironmentFailure(f"cluster {self.server()} unreachable: {_describe(e)}") from e
            return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                # Discovery is cached; a CRD installed since needs a fresh look before we conclude it is absent.
                self.dynamic.resources.invalidate_cache()
                self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def _call(self, what: str, method: str, path: str, **params: Any) -> dict[str, Any] | None:
        def call() -> Any:
            response = self.dynamic.request(method, path, serialize=False, **params)
            return json.loads(response.data or b"null")

        try:
            return retrying(call, what)
        except NotFoundError:
            return None
        except (ApiException, DynamicApiError) as e:
            raise EnvironmentFailure(f"{what}: HTTP {getattr(e, 'status', '?')} {_describe(e)}") from e
        except Exception as e:
            if is_transient(e):
                raise EnvironmentFailure(f"{what}: cluster {self.server()} unreachable: {_describe(e)}") from e
            raise

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        resource = self.resource(api_version, kind)
        return self._call(f"get {kind} {name}", "get", resource.path(name=name, namespace=namespace))

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        resource = self.resource(api_version, kind)
        body = self._call(f"list {kind}", "get", resource.path(namespace=namespace), label_selector=label_selector)
        return (body or {}).get("items", [])

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        metadata = obj["metadata"]
        namespace = metadata.get("namespace") if resource.namespaced else None
        body = json.dumps(obj)
        result = self._call(
            f"apply {obj['kind']} {metadata['name']}", "patch", resource.path(name=metadata["name"], namespace=namespace),
            body=body, content_type="application/apply-patch+yaml", field_manager=FIELD_MANAGER,
            force_conflicts=True, dry_run="All" if dry_run else None,
        )
        return result or {}

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        resource = self.resource(api_version, kind)
        self._call(f"delete {kind} {name}", "delete", resource.path(name=name, namespace=namespace),
                   propagation_policy="Background")

    def stop_engine(self, namespace: str, name: str) -> None:
        resource = self.resource("litmuschaos.io/v1alpha1", "ChaosEngine")
        self._call(f"stop ChaosEngine {name}", "patch", resource.path(name=name, namespace=namespace),
                   body={"spec": {"engineState": "stop"}}, content_type="application/merge-patch+json")

    def watch(self, api_version: str, kind: str, namespace: str, handler: WatchHandler, stop: threading.Event,
              name: str | None = None, label_selector: str | None = None) -> None:
        resource = self.resource(api_version, kind)
        path = resource.path(namespace=namespace)
        field_selector = f"metadata.name={name}" if name else None
        version: str | None = None
        delay = 0.2
        while not stop.is_set():
            try:
                if version is None:
                    body = self._call(f"list {kind}", "get", path, field_selector=field_selector, label_selector=label_selector)
                    received = time.time()
                    for item in (body or {}).get("items", []):
                        handler("SYNC", item, received)
                    handler("SYNCED", {}, received)
                    version = (body or {}).get("metadata", {}).get("resourceVersion")
                version = self._stream(path, version, field_selector, label_selector, handler, stop)
                delay = 0.2
            except _Gone:
                log.info("watch of %s expired; relisting", kind)
                version = None
            except Exception as e:  # noqa: BLE001 - a watch outlives apiserver restarts; the loop retries
                if not is_transient(e) and not isinstance(e, EnvironmentFailure):
                    raise
                log.info("watch of %s lost (%s); resuming from %s in %.1fs", kind, _describe(e), version, delay)
                stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def _stream(self, path: str, version: str | None, field_selector: str | None, label_selector: str | None,
                handler: WatchHandler, stop: threading.Event) -> str | None:
        response = self.dynamic.request(
            "get", path, serialize=False, watch=True, resource_version=version, allow_watch_bookmarks=True,
            field_selector=field_selector, label_selector=label_selector, timeout_seconds=WATCH_SERVER_TIMEOUT,
            _request_timeout=(5, WATCH_SERVER_TIMEOUT + 10),
        )
        self._close_on_stop(response, stop)
        try:
            for line in iter_resp_lines(response):
                if stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise EnvironmentFailure(f"watch error: {obj.get('message')}")
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if event.get("type") != "BOOKMARK":
                    handler(event["type"], obj, time.time())
        finally:
            response.release_conn()
        return version

    def _close_on_stop(self, response: Any, stop: threading.Event) -> None:
        """Close the stream as soon as stop is set, instead of waiting for the next event or the server timeout."""

        def closer() -> None:
            stop.wait()
            try:
                response.shutdown() if hasattr(response, "shutdown") else response.close()
            except Exception:  # noqa: BLE001 - closing a stream that already ended
                pass

        threading.Thread(target=closer, daemon=True).start()


class _Gone(Exception):
    """The resourceVersion a watch resumed from is too old (HTTP 410): relist."""


def _describe(error: BaseException) -> str:
    if isinstance(error, (ApiException, DynamicApiError)):
        body = getattr(error, "body", None)
        try:
            return json.loads(body).get("message", str(body))[:300]
        except (TypeError, ValueError, AttributeError):
            return str(getattr(error, "reason", "") or type(error).__name__)
    reason = getattr(error, "reason", None)
    return f"{type(error).__name__}: {reason}" if reason else f"{type(error).__name__}: {error}"[:300]
