"""Reading a live cluster for chaos-inventory: the objects core.build_topology takes, plus runtime facts.

Called by the CLI when no -f is given. One LIST per kind (cluster-wide, or one per namespace with -n),
paginated with limit/continue, all kinds at once on threads, parsed with json.loads straight from the response
bytes: the generated client models would cost several times the time and memory. Secrets are never requested;
ConfigMaps are, to resolve envFrom. The kubeconfig is loaded by the kubernetes package (so exec plugins, tokens
and embedded certificates work as with kubectl); the requests themselves go through urllib3.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

import urllib3
import yaml

from chaosgen.errors import EnvironmentFailure, InputRejected
from chaos_inventory import core

log = logging.getLogger("chaos-inventory")

PAGE_SIZE = 500
TIMEOUT = urllib3.Timeout(connect=5, read=60)
# Dropped from every object as it arrives: large, and nothing in the topology reads them.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Kind:
    """A listable resource: its API path prefix, plural name, and whether inventory can do without it."""

    name: str
    group_version: str
    resource: str
    required: bool
    namespaced: bool = True
    runtime: bool = False  # facts for `runtime` rather than objects for the topology (Pods are both)

    @property
    def base(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"

    @property
    def qualified(self) -> str:
        """resource.group as RBAC and kubectl name it (deployments.apps, pods)."""
        group = self.group_version.rpartition("/")[0]
        return f"{self.resource}.{group}" if group else self.resource


KINDS = (
    Kind("Deployment", "apps/v1", "deployments", required=True),
    Kind("StatefulSet", "apps/v1", "statefulsets", required=True),
    Kind("DaemonSet", "apps/v1", "daemonsets", required=True),
    Kind("Service", "v1", "services", required=True),
    Kind("Pod", "v1", "pods", required=True),
    Kind("ReplicaSet", "apps/v1", "replicasets", required=False),
    Kind("Job", "batch/v1", "jobs", required=False),
    Kind("CronJob", "batch/v1", "cronjobs", required=False),
    Kind("ConfigMap", "v1", "configmaps", required=False),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", required=False),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", required=False),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", required=False),
    Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", required=False),
    Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", required=False, runtime=True),
    Kind("Node", "v1", "nodes", required=False, namespaced=False, runtime=True),
)
# Referenced by name from pod specs, so a label selector on the command line must not filter them out.
_UNSELECTED = frozenset({"ConfigMap", "Node"})


class Forbidden(Exception):
    """The identity may not list a kind (HTTP 403), or the cluster does not serve it (404)."""

    def __init__(self, kind: Kind, status: int, message: str) -> None:
        self.kind, self.status, self.message = kind, status, message
        super().__init__(message)


class ClusterReader(Protocol):
    """Lists every object of one kind in scope, as plain dicts; raises Forbidden or EnvironmentFailure."""

    server: str
    context: str

    def list_objects(self, kind: Kind, scope: Scope) -> list[dict]: ...


@dataclass(frozen=True)
class Scope:
    """Which objects to read: namespaces (empty = all), namespaces to leave out, a label selector."""

    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    selector: str | None = None


@dataclass
class ClusterObjects:
    """What read_cluster found: objects for the topology, runtime facts, and the kinds it could not read."""

    objects: list[dict] = field(default_factory=list)
    runtime: dict[str, list[dict]] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_cluster(reader: ClusterReader, scope: Scope) -> ClusterObjects:
    """List every kind concurrently; a forbidden optional kind becomes a warning, a required one exit 4."""
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(reader.list_objects, kind, scope) for kind in KINDS}
        found = ClusterObjects()
        for kind, future in futures.items():
            try:
                items = future.result()
            except Forbidden as e:
                if kind.required:
                    raise EnvironmentFailure(_forbidden_message(reader, e)) from e
                found.partial.append(kind.qualified)
                found.warnings.append(f"{_forbidden_message(reader, e)}; the topology is partial without it")
                continue
            if kind.runtime or kind.name == "Pod":
                found.runtime[kind.resource] = items
            if not kind.runtime:
                found.objects.extend(items)
    return found


def inventory(reader: ClusterReader, scope: Scope) -> dict:
    """The Topology of what reader lists in scope, with runtime facts and metadata.partial; called by the CLI."""
    found = read_cluster(reader, scope)
    order = {kind.name: index for index, kind in enumerate(KINDS)}
    found.objects.sort(key=lambda o: (order[o["kind"]], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    source: dict = {"type": "cluster", "context": reader.context, "server": reader.server}
    if scope.namespaces:
        source["namespaces"] = sorted(scope.namespaces)
    try:
        topology = core.build_topology(found.objects, source, found.runtime)
    except core.MalformedObject as e:
        obj = found.objects[e.index]
        where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']} in the cluster"
        raise InputRejected(e.message, where, e.path) from e
    metadata = topology["metadata"]
    warnings = found.warnings + metadata.get("warnings", [])
    if warnings:
        metadata["warnings"] = warnings
    if found.partial:
        metadata["partial"] = sorted(found.partial)
    return topology


def _forbidden_message(reader: ClusterReader, error: Forbidden) -> str:
    if error.status == 404:
        return f"the cluster at {reader.server} does not serve {error.kind.qualified} ({error.kind.group_version})"
    where = "in the selected namespaces" if error.kind.namespaced else "(cluster-scoped)"
    return (f"forbidden: context {reader.context!r} may not list {error.kind.qualified} {where}; "
            f"grant verb 'list' on resource '{error.kind.qualified}' (see k8s/rbac-inventory.yaml)")


def _slim(obj: dict, kind: Kind) -> dict:
    """Drop what no stage reads, so that tens of thousands of pods fit in little memory."""
    metadata = obj.get("metadata") or {}
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations:
        annotations.pop(_LAST_APPLIED, None)
    if kind.name == "Pod" and any(o.get("controller") for o in metadata.get("ownerReferences") or ()):
        # A controller's pod is only a runtime fact: where it runs, whether it is ready, how often it restarted.
        status = obj.get("status") or {}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {key: metadata[key] for key in ("name", "namespace", "labels", "ownerReferences")
                         if key in metadata},
            "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
            "status": {
                "phase": status.get("phase"),
                "conditions": [{"type": c.get("type"), "status": c.get("status")}
                               for c in status.get("conditions") or ()],
                "containerStatuses": [{"restartCount": c.get("restartCount", 0)}
                                      for c in status.get("containerStatuses") or ()],
            },
        }
    return obj


class KubeconfigReader:
    """A ClusterReader for one kubeconfig context, over one urllib3 connection pool shared by the threads."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import config as kube_config  # loaded only for live reads: it is slow to import
        from kubernetes.client import Configuration
        from kubernetes.config.config_exception import ConfigException

        where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        configuration = Configuration()
        try:
            contexts, current = kube_config.list_kube_config_contexts(config_file=kubeconfig)
            names = sorted(c["name"] for c in contexts or ())
            if context and context not in names:
                raise EnvironmentFailure(
                    f"context {context!r} is not in {where} (contexts: {', '.join(names) or 'none'})")
            self.context = context or (current or {}).get("name", "")
            kube_config.load_kube_config(config_file=kubeconfig, context=context,
                                         client_configuration=configuration, persist_config=False)
        except EnvironmentFailure:
            raise
        except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise EnvironmentFailure(f"cannot load {where}: {_one_line(e)}") from e
        self.server = configuration.host
        self._headers = {"Accept": "application/json", "User-Agent": "chaos-inventory"}
        token = configuration.get_api_key_with_prefix("authorization")
        if token:
            self._headers["Authorization"] = token
        elif configuration.username:
            self._headers.update(urllib3.make_headers(basic_auth=f"{configuration.username}:{configuration.password}"))
        ca_certs = configuration.ssl_ca_cert
        if not ca_certs and configuration.ca_cert_data:
            ca_file = tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False)
            ca_file.write(configuration.ca_cert_data)
            ca_file.close()
            ca_certs = ca_file.name
        options = dict(
            num_pools=2, maxsize=len(KINDS), block=False, retries=False, timeout=TIMEOUT,
            cert_reqs="CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE",
            ca_certs=ca_certs, cert_file=configuration.cert_file, key_file=configuration.key_file,
            server_hostname=configuration.tls_server_name,
        )
        if configuration.proxy:
            self._pool: urllib3.PoolManager = urllib3.ProxyManager(configuration.proxy, **options)
        else:
            self._pool = urllib3.PoolManager(**options)
        if not configuration.verify_ssl:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def list_objects(self, kind: Kind, scope: Scope) -> list[dict]:
        """Every object of kind in scope: one paginated LIST cluster-wide, or one per namespace given with -n."""
        params: dict[str, str] = {"limit": str(PAGE_SIZE)}
        if scope.selector and kind.name not in _UNSELECTED:
            params["labelSelector"] = scope.selector
        if scope.exclude_namespaces and kind.namespaced:
            params["fieldSelector"] = ",".join(f"metadata.namespace!={n}" for n in scope.exclude_namespaces)
        if scope.namespaces and kind.namespaced:
            paths = [f"{kind.base}/namespaces/{n}/{kind.resource}" for n in scope.namespaces]
        else:
            paths = [f"{kind.base}/{kind.resource}"]
        items: list[dict] = []
        for path in paths:
            items.extend(self._paginate(kind, path, params))
        return items

    def _paginate(self, kind: Kind, path: str, params: dict[str, str]) -> list[dict]:
        items: list[dict] = []
        page = dict(params)
        while True:
            body = self._get(kind, f"{path}?{urlencode(page)}")
            # A List's items lack kind/apiVersion; the topology needs both.
            for item in body.get("items") or ():
                item["apiVersion"], item["kind"] = kind.group_version, kind.name
                items.append(_slim(item, kind))
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items
            page["continue"] = token

    def _get(self, kind: Kind, url: str) -> dict:
        try:
            response = self._pool.request("GET", self.server + url, headers=self._headers, preload_content=True)
        except urllib3.exceptions.SSLError as e:
            raise EnvironmentFailure(f"TLS with the Kubernetes API at {self.server} failed: {_one_line(e)}") from e
        except urllib3.exceptions.HTTPError as e:
            reason = getattr(e, "reason", None) or e
            raise EnvironmentFailure(f"cannot reach the Kubernetes API at {self.server}: {_one_line(reason)}") from e
        if response.status == 200:
            try:
                return json.loads(response.data)
            except ValueError as e:
                raise EnvironmentFailure(f"the Kubernetes API at {self.server} sent a list of {kind.qualified} "
                                         f"that is not JSON") from e
        message = _status_message(response.data) or f"HTTP {response.status}"
        if response.status in (403, 404):
            raise Forbidden(kind, response.status, message)
        if response.status == 401:
            raise EnvironmentFailure(
                f"the Kubernetes API at {self.server} rejected the credentials of context {self.context!r} "
                f"(401 Unauthorized: expired or invalid)")
        raise EnvironmentFailure(
            f"the Kubernetes API at {self.server} failed to list {kind.qualified}: HTTP {response.status}: {message}")


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return _one_line(body.decode("utf-8", "replace"))[:300]
    return _one_line(status.get("message", "")) if isinstance(status, dict) else ""


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
