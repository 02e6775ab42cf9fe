"""Reading manifest files into the Kubernetes objects core.build_topology takes: files and directories, documents,
`List` flattening, kind filtering and default namespaces. Called by the CLI for each -f; the live path skips it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_inventory.fields import MalformedObject
from chaos_inventory.model import KNOWN_KINDS
from chaosgen import API_VERSION
from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import InputRejected
from chaosgen.schemas import with_article

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object came from, to name the file, document and JSON path of a malformed field."""

    source: str
    document: int | None
    prefix: str

    def rejection(self, error: MalformedObject) -> InputRejected:
        where = f"{self.source} document {self.document}" if self.document else self.source
        return InputRejected(error.message, where, self.prefix + (error.path or "$")[1:])


@dataclass(slots=True)
class Manifests:
    """The objects of all inputs in order, their origins (same order), and what was skipped."""

    objects: list[dict] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def expand_paths(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Each -f value as files: a directory stands for its *.yaml, *.yml and *.json files, sorted (not recursive)."""
    files = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            found = sorted(str(p) for p in Path(path).iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if not found:
                raise InputRejected("directory holds no .yaml, .yml or .json file", path)
            files.extend(found)
        else:
            files.append(path)
    return files


# Kubernetes kinds that a manifest commonly carries beside its workloads: expected, so skipped without a warning
# (-v lists them); any other kind the topology does not use is reported as unknown.
UNUSED_BUILTIN_KINDS = frozenset({
    "Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
    "PersistentVolumeClaim", "PersistentVolume", "StorageClass", "CustomResourceDefinition", "LimitRange",
    "ResourceQuota", "PriorityClass", "EndpointSlice", "Endpoints", "IngressClass", "PodSecurityPolicy",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService", "Event", "Lease",
})


def load_manifests(paths: tuple[str, ...] | list[str], default_namespace: str) -> Manifests:
    """Every object of a kind the topology uses, from every file, with namespaceless objects put in
    default_namespace (like kubectl -n). Secrets are dropped unread; other kinds are counted in a warning."""
    manifests = Manifests()
    ignored: dict[str, int] = {}
    for path in expand_paths(paths):
        source = display_name(path)
        documents = parse_documents(read_bytes(path), source)
        found = 0
        for number, document in enumerate(documents, start=1):
            origin = Origin(source, number if len(documents) > 1 else None, "$")
            found += _collect(document, origin, default_namespace, manifests, ignored)
        if not found:
            raise InputRejected(
                "no Kubernetes object found (expected YAML or JSON objects with apiVersion and kind)", source)
    if ignored:
        kinds = ", ".join(f"{kind} ({count})" for kind, count in sorted(ignored.items()))
        manifests.warnings.append(f"ignored objects of unknown kinds: {kinds}")
    return manifests


def _collect(document: Any, origin: Origin, namespace: str, manifests: Manifests, ignored: dict[str, int]) -> int:
    """Add one document's objects; returns how many Kubernetes objects (of any kind) it held."""
    where = f"{origin.source}{f' document {origin.document}' if origin.document else ''}"
    if not isinstance(document, dict) or not isinstance(document.get("kind"), str) or "apiVersion" not in document:
        what = "an object without apiVersion and kind" if isinstance(document, dict) else f"a {type(document).__name__}"
        manifests.warnings.append(f"{where} at {origin.prefix}: skipped {what}, not a Kubernetes object")
        return 0
    kind = document["kind"]
    if document["apiVersion"] == API_VERSION:
        # A chaosgen document (often chaos-inventory's own Topology piped back in) is the wrong stage's input, not an
        # unknown Kubernetes kind to skip with a warning.
        raise InputRejected(f"chaos-inventory expects Kubernetes manifests, got {with_article(kind)} "
                            f"({API_VERSION} document)", where, f"{origin.prefix}.kind")
    if kind.endswith("List") and isinstance(document.get("items"), list):
        # kubectl's `List` items carry their kind; typed lists (DeploymentList) leave it to the list.
        item_kind = kind[:-4] if kind != "List" else None
        count = 1
        for index, item in enumerate(document["items"]):
            if item_kind and isinstance(item, dict):
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", document["apiVersion"])
            item_origin = Origin(origin.source, origin.document, f"{origin.prefix}.items[{index}]")
            count += _collect(item, item_origin, namespace, manifests, ignored)
        return count
    if kind == "Secret":
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        manifests.notes.append(f"skipped Secret {name if isinstance(name, str) else '(unnamed)'} without reading it")
        return 1
    if kind not in KNOWN_KINDS:
        if kind in UNUSED_BUILTIN_KINDS:
            manifests.notes.append(f"{where} at {origin.prefix}: {kind} is not part of the topology")
        else:
            ignored[kind] = ignored.get(kind, 0) + 1
        return 1
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and metadata.get("namespace") is None:
        metadata["namespace"] = namespace
    manifests.objects.append(document)
    manifests.origins.append(origin)
    return 1
