"""chaos-litmus --validate: a server-side dry-run apply of every rendered object against the current context.

Called by the CLI after rendering. Each object goes to the API server as a server-side apply PATCH with
dryRun=All, fieldManager=chaosgen and fieldValidation=Strict, so admission, the CRD schemas and RBAC checks all run
and nothing is stored. Raw JSON through the kubernetes client's ApiClient, no generated models.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import urllib3
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from chaosgen.errors import ChaosGenError, EnvironmentFailure, InputRejected

log = logging.getLogger(__name__)

FIELD_MANAGER = "chaosgen"
REQUEST_TIMEOUT = (5, 30)
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
    """The REST path of the object: /api/v1/... for the core group, /apis/<group>/<version>/... otherwise."""
    api_version = document["apiVersion"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    resource, namespaced = RESOURCES[document["kind"]]
    namespace = f"/namespaces/{document['metadata']['namespace']}" if namespaced else ""
    return f"{base}{namespace}/{resource}/{document['metadata']['name']}"


def failure_for(document: dict[str, Any], status: int, body: str | bytes | None, server: str) -> ChaosGenError:
    """The error for a refused dry-run: the server rejecting the object is exit 3, anything about access or the
    cluster itself (credentials, RBAC, missing CRDs or namespace, overload) is exit 4."""
    message = _status_message(body) or f"HTTP {status}"
    name = object_name(document)
    if status in (400, 409, 422):
        return InputRejected(f"the API server rejects {name}: {message}")
    if status == 401:
        return EnvironmentFailure(f"the Kubernetes API at {server} does not accept the credentials (401 Unauthorized)")
    if status == 403:
        return EnvironmentFailure(f"not allowed to apply {name}: {message}")
    if status == 404:
        return EnvironmentFailure(
            f"cannot apply {name}: {message} (are the Litmus CRDs installed and does the namespace exist?)"
        )
    return EnvironmentFailure(f"the Kubernetes API at {server} failed on {name}: HTTP {status}: {message}")


def _status_message(body: str | bytes | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        status = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    return " ".join(str(status.get("message", "")).split()) if isinstance(status, dict) else ""


def api_client(kubeconfig: str | None, context: str | None) -> ApiClient:
    """A client for the context; kubeconfig None means $KUBECONFIG or ~/.kube/config, as kubectl does."""
    configuration = Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError) as e:
        raise EnvironmentFailure(f"cannot load the kubeconfig: {' '.join(str(e).split())}") from e
    # A refused or timed-out connection is reported at once, not retried with warnings on stderr.
    configuration.retries = 0
    return ApiClient(configuration)


def dry_run_apply(documents: list[dict[str, Any]], kubeconfig: str | None, context: str | None) -> None:
    """Dry-run apply each object in order; the first refusal raises."""
    client = api_client(kubeconfig, context)
    server = client.configuration.host
    with client:
        for document in documents:
            status, body = _dry_run_apply_one(client, document, server)
            if not 200 <= status <= 299:
                raise failure_for(document, status, body, server)
            log.info("dry-run apply accepted: %s", object_name(document))


def _dry_run_apply_one(client: ApiClient, document: dict[str, Any], server: str) -> tuple[int, bytes]:
    """PATCH one object (the client's v36+ request API: param_serialize, then call_api); status and raw body."""
    method, url, headers, body, _ = client.param_serialize(
        "PATCH", object_path(document),
        query_params=[("dryRun", "All"), ("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=document, auth_settings=["BearerToken"],
    )
    try:
        response = client.call_api(method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT)
        return response.status, response.read()
    except ApiException as e:  # TLS failures come as status 0
        raise EnvironmentFailure(f"cannot reach the Kubernetes API at {server}: {' '.join(str(e.reason).split())}") from e
    except urllib3.exceptions.HTTPError as e:
        reason = getattr(e, "reason", None) or e
        raise EnvironmentFailure(f"cannot reach the Kubernetes API at {server}: {' '.join(str(reason).split())}") from e
