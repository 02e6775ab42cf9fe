"""The one Kubernetes client of every stage: credentials, raw JSON requests, LIST, watch, apply, typed errors.

chaos-inventory lists, chaos-litmus dry-run applies, chaos-watch applies, reads and watches; all of them call
connect() and get a Kube. Credentials come from the kubernetes package's own loaders (kubeconfig contexts, exec
plugins, token files, embedded certificates, or the in-cluster service account), so they work as with kubectl; a
401 reloads them once (a rotated token file, an expired exec-plugin token) and retries. The requests themselves
are urllib3 with orjson: no generated models, whose deserialisation costs several times the time and memory of a
20k-pod LIST. Certificates live in memory only: the loader's temporary files are removed as soon as they are read.
Every failure is a chaosgen.errors.ClusterError subclass, whose str() is the one-line message a stage prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

import orjson
import urllib3
import yaml

from chaosgen.errors import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterInvalid,
    ClusterNotFound,
    ClusterTimeout,
    ClusterUnauthorized,
    ClusterUnreachable,
    KubeconfigError,
)

log = logging.getLogger("chaosgen.kube")

FIELD_MANAGER = "chaosgen"
TIMEOUT = urllib3.Timeout(connect=5, read=60)
PAGE_SIZE = 500
WATCH_SERVER_TIMEOUT = 60  # seconds the server keeps one watch open; the client then resumes where it was
DEFAULT_KUBECONFIG = "~/.kube/config"
_STATUS_ERRORS: dict[int, type[ClusterError]] = {
    400: ClusterInvalid, 401: ClusterUnauthorized, 403: ClusterForbidden, 404: ClusterNotFound,
    409: ClusterConflict, 422: ClusterInvalid,
}
T = TypeVar("T")
WatchHandler = Callable[[str, dict[str, Any], float], None]


def api_path(api_version: str, resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """The REST path of a collection or object: /api/v1/... for the core group, /apis/<group>/<version>/... else."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{quote(namespace, safe='')}/{resource}" if namespace else f"{base}/{resource}"
    return f"{path}/{quote(name, safe='')}" if name else path


def one_line(value: object) -> str:
    return " ".join(str(value).split())


def status_error(status: int, body: bytes | str | None, action: str, server: str, context: str) -> ClusterError:
    """The typed error for an HTTP error answer; detail is the message of the Status object the server sent."""
    cls = _STATUS_ERRORS.get(status, ClusterError)
    return cls(action, server, context, _status_message(body), status)


def _status_message(body: bytes | str | None) -> str:
    if not body:
        return ""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return one_line(text)[:300]
    return one_line(status.get("message", ""))[:1000] if isinstance(status, dict) else ""


def retrying(call: Callable[[], T], what: str, deadline: float) -> T:
    """call() retried with exponential backoff while it raises a transient ClusterError, up to deadline seconds."""
    give_up = time.monotonic() + deadline
    delay = 0.2
    while True:
        try:
            return call()
        except ClusterError as e:
            if not e.transient or time.monotonic() + delay > give_up:
                raise
            log.info("%s failed transiently (%s); retrying in %.1fs", what, e, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class WatchExpired(Exception):
    """The resourceVersion a watch resumed from is too old (HTTP 410): list again."""


@dataclass(frozen=True)
class Resource:
    """A kind the server serves, as discovery describes it."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        return api_path(self.api_version, self.plural, namespace if self.namespaced else None, name)


@dataclass(frozen=True)
class _Session:
    """What one load of the credentials gives: where to send requests, with which headers, over which pool."""

    server: str
    headers: dict[str, str]
    pool: urllib3.PoolManager


@dataclass(frozen=True)
class _Source:
    """Where credentials come from, so that a 401 can load them again: kubeconfig paths and context, or in-cluster."""

    kubeconfig: str | None  # None: the in-cluster service account
    context: str

    def configuration(self, temp_dir: str) -> Any:
        """A kubernetes.client.Configuration filled by the package's loader; temporary files go to temp_dir."""
        from kubernetes import config as kube_config  # slow to import: only when a stage talks to a cluster
        from kubernetes.client import Configuration

        configuration = Configuration()
        try:
            if self.kubeconfig is None:
                kube_config.load_incluster_config(client_configuration=configuration)
            else:
                kube_config.load_kube_config(config_file=self.kubeconfig, context=self.context or None,
                                             client_configuration=configuration, persist_config=False,
                                             temp_file_path=temp_dir)
        except _loader_errors() as e:
            raise KubeconfigError(f"cannot load {self.describe()}: {one_line(e)}") from e
        return configuration

    def describe(self) -> str:
        return f"kubeconfig {self.kubeconfig}" if self.kubeconfig else "the in-cluster service account"


def connect(kubeconfig: str | None, context: str | None, user_agent: str, *, concurrency: int = 4,
            retry_for: float = 0.0) -> Kube:
    """A Kube for the context (None: the current one) of kubeconfig (None: $KUBECONFIG, ~/.kube/config, or the
    in-cluster service account when neither exists). Raises KubeconfigError naming the file or context.

    concurrency is how many requests may run at once (threads); retry_for how long transient failures are retried
    (0: fail at once, as a one-shot command wants; chaos-watch rides out an apiserver restart).
    """
    return Kube(_source(kubeconfig, context), user_agent, concurrency, retry_for)


def _source(kubeconfig: str | None, context: str | None) -> _Source:
    paths = kubeconfig or os.environ.get("KUBECONFIG") or ""
    if not paths and not os.path.exists(os.path.expanduser(DEFAULT_KUBECONFIG)) \
            and os.environ.get("KUBERNETES_SERVICE_HOST"):
        if context:
            raise KubeconfigError(f"--context {context} needs a kubeconfig; in a pod there is only the service account")
        return _Source(None, "")
    paths = paths or DEFAULT_KUBECONFIG
    source = _Source(paths, context or "")
    if not any(p and os.path.exists(os.path.expanduser(p)) for p in paths.split(os.pathsep)):
        raise KubeconfigError(f"cannot load {source.describe()}: no such file")
    from kubernetes import config as kube_config

    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=paths)
    except _loader_errors() as e:
        raise KubeconfigError(f"cannot load {source.describe()}: {one_line(e)}") from e
    names = sorted(c["name"] for c in contexts or ())
    if context and context not in names:
        raise KubeconfigError(f"cannot load {source.describe()}: context {context!r} is not in it "
                              f"(contexts: {', '.join(names) or 'none'})")
    return _Source(paths, context or (current or {}).get("name", ""))


def _loader_errors() -> tuple[type[BaseException], ...]:
    """What the kubernetes package's loaders raise on a bad kubeconfig (some of it unwrapped from yaml and os)."""
    from kubernetes.config.config_exception import ConfigException

    return ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError


def _session(source: _Source, user_agent: str, concurrency: int) -> _Session:
    """Load the credentials once; certificates are read into an SSLContext and their temporary files removed."""
    temp_dir = tempfile.mkdtemp(prefix="chaosgen-kube-")
    try:
        configuration = source.configuration(temp_dir)
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        authorization = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if authorization:
            headers["Authorization"] = authorization
        context = _ssl_context(configuration, source)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    options: dict[str, Any] = {
        "num_pools": 2, "maxsize": concurrency, "block": False, "retries": False, "timeout": TIMEOUT,
        "ssl_context": context, "cert_reqs": "CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE",
        "server_hostname": configuration.tls_server_name,
    }
    if not configuration.verify_ssl:
        options["assert_hostname"] = False
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    pool = urllib3.ProxyManager(configuration.proxy, **options) if configuration.proxy else urllib3.PoolManager(**options)
    return _Session(configuration.host.rstrip("/"), headers, pool)


def _ssl_context(configuration: Any, source: _Source) -> ssl.SSLContext:
    from urllib3.util.ssl_ import create_urllib3_context

    try:
        if not configuration.verify_ssl:
            context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        else:
            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            if configuration.ssl_ca_cert:
                context.load_verify_locations(cafile=configuration.ssl_ca_cert)
            else:
                context.load_default_certs()
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
    except (ssl.SSLError, OSError) as e:
        raise KubeconfigError(f"cannot load the certificates of {source.describe()}: {one_line(e)}") from e
    return context


class Kube:
    """Requests to one API server as one identity, safe to share between threads. Built by connect()."""

    def __init__(self, source: _Source, user_agent: str, concurrency: int, retry_for: float) -> None:
        self._source, self._user_agent, self._concurrency = source, user_agent, concurrency
        self.retry_for = retry_for
        self.context = source.context
        self._lock = threading.Lock()
        self._current = _session(source, user_agent, concurrency)
        self.server = self._current.server
        self._resources: dict[tuple[str, str], Resource] = {}

    # --- requests ---------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, what: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json",
                timeout: urllib3.Timeout | None = None, retry_for: float | None = None) -> Any:
        """The decoded JSON answer of one request, retried while transient for retry_for seconds (default: the
        client's)."""
        response = retrying(lambda: self._send(method, path, what, query, body, content_type, timeout, False),
                            what, self.retry_for if retry_for is None else retry_for)
        try:
            return orjson.loads(response.data) if response.data else None
        except orjson.JSONDecodeError as e:
            raise ClusterError(what, self.server, self.context, "the answer is not JSON", response.status) from e

    def _send(self, method: str, path: str, what: str, query: dict[str, Any] | None, body: Any,
              content_type: str, timeout: urllib3.Timeout | None, stream: bool) -> urllib3.BaseHTTPResponse:
        """One request; a 401 reloads the credentials once and tries again. Errors are typed ClusterErrors."""
        params = {key: value for key, value in (query or {}).items() if value is not None}
        url = f"{path}?{urlencode(params)}" if params else path
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        for attempt in (1, 2):
            session = self._current
            headers = dict(session.headers)
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                response = session.pool.request(method, session.server + url, body=data, headers=headers,
                                                timeout=timeout or TIMEOUT, preload_content=not stream,
                                                redirect=False)
            except urllib3.exceptions.HTTPError as e:
                raise self._transport_error(e, what) from e
            if response.status == 401 and attempt == 1:
                response.drain_conn()
                log.info("%s: 401 Unauthorized; reloading the credentials of %s", what, self._source.describe())
                self._reload(session)
                continue
            if response.status >= 400:
                raise status_error(response.status, response.data, what, self.server, self.context)
            return response
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _transport_error(self, error: urllib3.exceptions.HTTPError, what: str) -> ClusterError:
        if isinstance(error, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
            return ClusterUnreachable(what, self.server, self.context, one_line(error))
        if isinstance(error, urllib3.exceptions.TimeoutError):
            return ClusterTimeout(what, self.server, self.context, one_line(error))
        if isinstance(error, urllib3.exceptions.SSLError):
            return ClusterUnreachable(what, self.server, self.context, f"TLS failed: {one_line(error)}")
        return ClusterUnreachable(what, self.server, self.context, one_line(getattr(error, "reason", None) or error))

    def _reload(self, failed: _Session) -> None:
        """New credentials, unless another thread already replaced the session that got the 401."""
        with self._lock:
            if self._current is failed:
                self._current = _session(self._source, self._user_agent, self._concurrency)

    # --- verbs ------------------------------------------------------------------------------------------------

    def get(self, path: str, what: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return cast("dict[str, Any] | None", self.request("GET", path, what))
        except ClusterNotFound:
            return None

    def list_pages(self, path: str, what: str, query: dict[str, Any] | None = None,
                   page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Each page (a List object) of a paginated LIST, following metadata.continue."""
        page = {**(query or {}), "limit": str(page_size)}
        while True:
            body = self.request("GET", path, what, query=page) or {}
            yield body
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return
            page["continue"] = token

    def create(self, path: str, obj: dict[str, Any], what: str, dry_run: bool = False) -> dict[str, Any]:
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
        return self.request("POST", path, what, query=query, body=obj) or {}

    def patch(self, path: str, patch: dict[str, Any], what: str,
              content_type: str = "application/merge-patch+json") -> dict[str, Any] | None:
        """A merge patch (or another patch type); None when the object does not exist."""
        try:
            return cast("dict[str, Any] | None", self.request("PATCH", path, what, query={"fieldManager": FIELD_MANAGER},
                                                              body=patch, content_type=content_type))
        except ClusterNotFound:
            return None

    def apply(self, path: str, obj: dict[str, Any], what: str, dry_run: bool = False,
              strict: bool = False) -> dict[str, Any]:
        """Server-side apply as field manager chaosgen, forcing conflicts (the run owns what it applies).

        dry_run runs admission and validation without storing; strict rejects unknown fields instead of dropping them.
        """
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All" if dry_run else None,
                 "fieldValidation": "Strict" if strict else None}
        return self.request("PATCH", path, what, query=query, body=obj,
                            content_type="application/apply-patch+yaml") or {}

    def delete(self, path: str, what: str, propagation: str = "Background") -> dict[str, Any] | None:
        """Delete the object; None when it was already gone."""
        try:
            return cast("dict[str, Any] | None", self.request("DELETE", path, what, query={"propagationPolicy": propagation}))
        except ClusterNotFound:
            return None

    def version(self, retry_for: float | None = None) -> dict[str, Any]:
        """GET /version: the cheapest proof that the server answers."""
        return self.request("GET", "/version", "read the server version", retry_for=retry_for) or {}

    # --- discovery --------------------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        """The plural and scope of kind, by discovery; looked up again once when missing (a CRD installed since)."""
        key = (api_version, kind)
        if key not in self._resources:
            self._discover(api_version)
            if key not in self._resources:
                raise ClusterNotFound(f"find {kind}", self.server, self.context,
                                      f"{api_version} has no kind {kind}", 404)
        return self._resources[key]

    def _discover(self, api_version: str) -> None:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            body = self.request("GET", base, f"discover {api_version}") or {}
        except ClusterNotFound as e:
            raise e.with_hint(f"the cluster does not serve {api_version}") from e
        for entry in body.get("resources") or ():
            if "/" not in entry["name"]:  # pods/log and the like are subresources
                self._resources[(api_version, entry["kind"])] = Resource(
                    api_version, entry["kind"], entry["name"], entry["namespaced"])

    # --- watches ----------------------------------------------------------------------------------------------

    def watch(self, path: str, what: str, stop: threading.Event, query: dict[str, Any] | None = None,
              resource_version: str | None = None) -> Iterator[dict[str, Any]]:
        """The events (type, object) of one watch request, as they come, until the server ends it or stop is set.

        Raises WatchExpired when resource_version is too old, ClusterError when the request or the stream fails.
        """
        params = {**(query or {}), "watch": "true", "allowWatchBookmarks": "true",
                  "resourceVersion": resource_version, "timeoutSeconds": str(WATCH_SERVER_TIMEOUT)}
        try:
            response = self._send("GET", path, what, params, None, "",
                                  urllib3.Timeout(connect=5, read=WATCH_SERVER_TIMEOUT + 10), stream=True)
        except ClusterError as e:
            if e.status == 410:
                raise WatchExpired() from e
            raise
        done = threading.Event()
        _close_when(response, stop, done)
        try:
            for line in self._lines(response, what, stop):
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise WatchExpired()
                    raise ClusterError(what, self.server, self.context, one_line(status.get("message", "")),
                                       status.get("code"))
                yield event
        finally:
            done.set()
            response.release_conn()

    def _lines(self, response: urllib3.BaseHTTPResponse, what: str, stop: threading.Event) -> Iterator[bytes]:
        """The non-empty lines of a streamed answer as each chunk arrives (a watch sends one JSON event per line);
        nothing more once stop is set, even when closing the stream made the read fail."""
        buffer = b""
        try:
            for chunk in response.stream(None):
                if stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                yield from (line for line in lines if line.strip())
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if stop.is_set():
                return
            if isinstance(e, urllib3.exceptions.HTTPError):
                raise self._transport_error(e, what) from e
            raise ClusterUnreachable(what, self.server, self.context, one_line(e)) from e
        if buffer.strip() and not stop.is_set():
            yield buffer

    def list_and_watch(self, path: str, what: str, handler: WatchHandler, stop: threading.Event,
                       query: dict[str, Any] | None = None) -> None:
        """handler(type, object, received_at) for the current objects (type SYNC, then one SYNCED with an empty
        object once all are listed) and every change after, until stop is set. A broken watch resumes from the
        last resourceVersion seen, and lists again when that is too old (410), so no change is missed; transient
        failures are retried with backoff for as long as it runs. Blocks: callers run it on a thread."""
        version: str | None = None
        delay = 0.2
        while not stop.is_set():
            try:
                if version is None:
                    body = self.request("GET", path, what, query=query) or {}
                    received = time.time()
                    for item in body.get("items") or ():
                        handler("SYNC", item, received)
                    handler("SYNCED", {}, received)
                    version = (body.get("metadata") or {}).get("resourceVersion")
                for event in self.watch(path, what, stop, query, version):
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") != "BOOKMARK":
                        handler(event["type"], obj, time.time())
                delay = 0.2
            except WatchExpired:
                log.info("%s: the watch expired; listing again", what)
                version = None
            except ClusterError as e:
                if not e.transient and e.status is not None:
                    raise
                log.info("%s: watch lost (%s); resuming from %s in %.1fs", what, e, version, delay)
                stop.wait(delay)
                delay = min(delay * 2, 2.0)


def _close_when(response: urllib3.BaseHTTPResponse, stop: threading.Event, done: threading.Event) -> None:
    """Shut the stream as soon as stop is set, rather than waiting for the next event or the server's timeout."""

    def closer() -> None:
        while not done.is_set():
            if stop.wait(0.2):
                # the stream may have ended and gone back to the pool meanwhile
                with contextlib.suppress(RuntimeError, OSError):
                    response.shutdown()
                return

    threading.Thread(target=closer, daemon=True, name="kube-watch-closer").start()
