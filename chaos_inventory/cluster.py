"""Reading a live cluster for chaos-inventory: the objects core.build_topology takes, plus runtime facts.

Called by the CLI when no -f is given. One LIST per kind (cluster-wide, or one per namespace with -n),
paginated with limit/continue, all kinds at once on threads, parsed with orjson straight from the response
bytes by chaosgen.kube: the generated client models would cost several times the time and memory. Secrets are
never requested; ConfigMaps are, to resolve envFrom.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from chaos_inventory import core, telemetry
from chaosgen import kube
from chaosgen.errors import ClusterForbidden, ClusterNotFound, InputRejected

log = logging.getLogger("chaos-inventory")

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


class ClusterReader(Protocol):
    """Lists every object of one kind in scope, as plain dicts; raises ClusterForbidden when the identity may not
    list it, ClusterNotFound when the cluster does not serve it, or another EnvironmentFailure."""

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
            except (ClusterForbidden, ClusterNotFound) as e:
                unreadable = e.with_hint(_unreadable_hint(kind, e))
                if kind.required:
                    raise unreadable from e
                found.partial.append(kind.qualified)
                found.warnings.append(f"{unreadable}; the topology is partial without it")
                continue
            if kind.runtime or kind.name == "Pod":
                found.runtime[kind.resource] = items
            if not kind.runtime:
                found.objects.extend(items)
    return found


def inventory(reader: ClusterReader, scope: Scope, readings: telemetry.Readings | None = None) -> dict:
    """The Topology of what reader lists in scope, with runtime facts and metadata.partial; called by the CLI."""
    found = read_cluster(reader, scope)
    order = {kind.name: index for index, kind in enumerate(KINDS)}
    found.objects.sort(key=lambda o: (order[o["kind"]], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    source: dict = {"type": "cluster", "context": reader.context, "server": reader.server}
    if scope.namespaces:
        source["namespaces"] = sorted(scope.namespaces)
    try:
        topology = core.build_topology(found.objects, source, found.runtime, readings)
    except core.MalformedObject as e:
        if e.index is None:  # build_topology sets it on every MalformedObject it lets out: a bug
            raise
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


def _unreadable_hint(kind: Kind, error: ClusterForbidden | ClusterNotFound) -> str:
    if isinstance(error, ClusterNotFound):
        return f"the cluster does not serve {kind.group_version}"
    return f"grant verb 'list' on resource '{kind.qualified}' (see k8s/rbac-inventory.yaml)"


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
    """A ClusterReader for one kubeconfig context, over one connection pool shared by the threads."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self._kube = kube.connect(kubeconfig, context, "chaos-inventory", concurrency=len(KINDS))
        self.server, self.context = self._kube.server, self._kube.context

    def list_objects(self, kind: Kind, scope: Scope) -> list[dict]:
        """Every object of kind in scope: one paginated LIST cluster-wide, or one per namespace given with -n."""
        query: dict[str, str] = {}
        if scope.selector and kind.name not in _UNSELECTED:
            query["labelSelector"] = scope.selector
        if scope.exclude_namespaces and kind.namespaced:
            query["fieldSelector"] = ",".join(f"metadata.namespace!={n}" for n in scope.exclude_namespaces)
        if scope.namespaces and kind.namespaced:
            lists = [(f"list {kind.qualified} in namespace {n}", kube.api_path(kind.group_version, kind.resource, n))
                     for n in scope.namespaces]
        else:
            where = "in all namespaces" if kind.namespaced else "(cluster-scoped)"
            lists = [(f"list {kind.qualified} {where}", kube.api_path(kind.group_version, kind.resource))]
        items: list[dict] = []
        for what, path in lists:
            for page in self._kube.list_pages(path, what, query):
                # A List's items lack kind/apiVersion; the topology needs both.
                for item in page.get("items") or ():
                    item["apiVersion"], item["kind"] = kind.group_version, kind.name
                    items.append(_slim(item, kind))
        return items
