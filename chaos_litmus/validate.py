"""chaos-litmus --validate: a server-side dry-run apply of every rendered object against the current context.

Called by the CLI after rendering. Each object goes to the API server through chaosgen.kube as a server-side apply
with dryRun=All and fieldValidation=Strict, so admission, the CRD schemas and RBAC checks all run and nothing is
stored.
"""

from __future__ import annotations

import logging
from typing import Any

from chaosgen import kube
from chaosgen.errors import ChaosGenError, ClusterConflict, ClusterError, ClusterInvalid, ClusterNotFound, InputRejected

log = logging.getLogger(__name__)

# kind -> (resource, namespaced) for every kind chaos-litmus renders; no discovery round trip needed.
RESOURCES = {
    "ServiceAccount": ("serviceaccounts", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "ChaosExperiment": ("chaosexperiments", True),
    "ChaosEngine": ("chaosengines", True),
}


def object_name(document: dict[str, Any]) -> str:
    """Kind namespace/name, as messages name an object."""
    metadata = document["metadata"]
    where = f"{metadata['namespace']}/" if "namespace" in metadata else ""
    return f"{document['kind']} {where}{metadata['name']}"


def object_path(document: dict[str, Any]) -> str:
    """The REST path of the object."""
    resource, namespaced = RESOURCES[document["kind"]]
    metadata = document["metadata"]
    return kube.api_path(document["apiVersion"], resource, metadata["namespace"] if namespaced else None,
                         metadata["name"])


def failure_for(error: ClusterError) -> ChaosGenError:
    """The error for a refused dry-run: the server rejecting the object is exit 3, anything about access or the
    cluster itself (credentials, RBAC, missing CRDs or namespace, overload) stays an exit 4 ClusterError."""
    if isinstance(error, (ClusterInvalid, ClusterConflict)):
        return InputRejected(str(error))
    if isinstance(error, ClusterNotFound):
        return error.with_hint("are the Litmus CRDs installed and does the namespace exist?")
    return error


def dry_run_apply(documents: list[dict[str, Any]], kubeconfig: str | None, context: str | None) -> None:
    """Dry-run apply each object in order; the first refusal raises."""
    client = kube.connect(kubeconfig, context, "chaos-litmus")
    for document in documents:
        try:
            client.apply(object_path(document), document, f"apply {object_name(document)}", dry_run=True, strict=True)
        except ClusterError as e:
            raise failure_for(e) from e
        log.info("dry-run apply accepted: %s", object_name(document))
