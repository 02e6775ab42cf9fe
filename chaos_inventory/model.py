"""The records chaos-inventory builds from Kubernetes objects (workloads with their containers, Services) and the
reading of a whole object list into them; core.build_topology links and scores what this returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos_inventory.fields import (
    MalformedObject,
    json_type,
    label_map,
    object_list,
    object_name,
    scalar_text,
    typed_field,
)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
SUPPORTING_KINDS = (
    "Service", "Ingress", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
)
KNOWN_KINDS = frozenset(WORKLOAD_KINDS + SUPPORTING_KINDS)
CONTROLLER_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
DATA_TIERS = frozenset({"database", "cache", "queue"})
TIER_ORDER = ("database", "cache", "queue", "frontend", "backend", "other")

_TEMPLATE_PATHS = {"CronJob": ("spec", "jobTemplate", "spec", "template"), "Pod": ()}
_DEFAULT_TEMPLATE_PATH = ("spec", "template")


@dataclass(slots=True, eq=False)
class Container:
    name: str
    image: str
    init: bool
    spec: dict
    json_path: str
    evidence_path: str
    ports: list[int]
    port_names: list[str]
    env: list[dict]
    env_from: list[dict]
    command_words: dict[str, list]


@dataclass(slots=True, eq=False)
class Workload:
    id: str
    namespace: str
    kind: str
    name: str
    labels: dict[str, str]
    selector: dict[str, str]
    replicas: int
    pod_spec: dict
    evidence_base: str
    json_base: str
    containers: list[Container]
    metadata_labels: dict[str, str]
    claim_templates: bool
    volumes: list[dict]
    services: list[Service] = field(default_factory=list)
    pdb: dict | None = None
    hpa: dict | None = None
    tier: str = "other"
    tier_reasons: list[str] = field(default_factory=list)
    role: str | None = None  # tier `other` only: load-generator, observability, service-discovery, chaos-engine
    runtime: dict | None = None
    zones_in_cluster: int = 0

    @property
    def app_containers(self) -> list[Container]:
        return [c for c in self.containers if not c.init]


@dataclass(slots=True, eq=False)
class Service:
    id: str
    namespace: str
    name: str
    type: str
    selector: dict[str, str]
    external_name: str | None
    ports: list[dict]
    selects: list[Workload] = field(default_factory=list)
    exposed: bool = False
    ready_endpoints: int | None = None


def parse_workload(obj: dict, kind: str, namespace: str, name: str) -> Workload:
    node, json_path = obj, "$"
    for key in _TEMPLATE_PATHS.get(kind, _DEFAULT_TEMPLATE_PATH):
        node = typed_field(node, key, dict, json_path, required=True)
        json_path += f".{key}"
    template_metadata = typed_field(node, "metadata", dict, json_path, {})
    labels = label_map(template_metadata, "labels", f"{json_path}.metadata")
    pod_spec = typed_field(node, "spec", dict, json_path, required=True)
    json_base = f"{json_path}.spec"
    evidence_base = json_base[2:]
    containers = []
    for section in ("initContainers", "containers"):
        for index, spec in enumerate(object_list(pod_spec, section, json_base)):
            path = f"{json_base}.{section}[{index}]"
            container_name = typed_field(spec, "name", str, path, required=True)
            ports, port_names = [], []
            for port_index, port in enumerate(object_list(spec, "ports", path)):
                number = typed_field(port, "containerPort", int, f"{path}.ports[{port_index}]", required=True)
                if not 0 < number < 65536:
                    raise MalformedObject(f"port {number} is out of range", f"{path}.ports[{port_index}].containerPort")
                ports.append(number)
                port_names.append(typed_field(port, "name", str, f"{path}.ports[{port_index}]", ""))
            env = object_list(spec, "env", path)
            for env_index, item in enumerate(env):
                typed_field(item, "name", str, f"{path}.env[{env_index}]", required=True)
                typed_field(item, "valueFrom", dict, f"{path}.env[{env_index}]")
            containers.append(Container(
                container_name, typed_field(spec, "image", str, path, ""), section == "initContainers", spec, path,
                f"{evidence_base}.{section}[{container_name}]", ports, port_names, env,
                object_list(spec, "envFrom", path),
                {key: typed_field(spec, key, list, path, []) for key in ("command", "args")},
            ))
    if not any(not c.init for c in containers):
        raise MalformedObject("a pod needs at least one container", f"{json_base}.containers")
    spec = typed_field(obj, "spec", dict, "$", {})
    if kind in CONTROLLER_KINDS:
        replicas = typed_field(spec, "replicas", int, "$.spec", 1)
        if replicas < 0:
            raise MalformedObject("replicas cannot be negative", "$.spec.replicas")
    else:
        replicas = 1
    metadata_labels = label_map(obj["metadata"], "labels", "$.metadata")
    if kind == "Pod":
        selector = labels = metadata_labels
    else:
        selector_spec = typed_field(spec, "selector", dict, "$.spec", {})
        selector = label_map(selector_spec, "matchLabels", "$.spec.selector") or labels
    return Workload(
        f"{namespace}/{kind}/{name}", namespace, kind, name, labels, selector, replicas, pod_spec, evidence_base,
        json_base, containers, metadata_labels, bool(typed_field(spec, "volumeClaimTemplates", list, "$.spec", ())),
        object_list(pod_spec, "volumes", json_base),
    )


def parse_service(obj: dict, namespace: str, name: str) -> Service:
    spec = typed_field(obj, "spec", dict, "$", {})
    service_type = typed_field(spec, "type", str, "$.spec", "ClusterIP")
    if service_type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise MalformedObject(f"unknown Service type {service_type!r}", "$.spec.type")
    if service_type == "ClusterIP" and spec.get("clusterIP") == "None":
        service_type = "Headless"
    ports = []
    for index, port in enumerate(object_list(spec, "ports", "$.spec")):
        path = f"$.spec.ports[{index}]"
        number = typed_field(port, "port", int, path, required=True)
        if not 0 < number < 65536:
            raise MalformedObject(f"port {number} is out of range", f"{path}.port")
        record: dict[str, Any] = {}
        if port.get("name") is not None:
            record["name"] = typed_field(port, "name", str, path)
        record["port"] = number
        # targetPort and protocol get the apiserver's defaults, so manifests and live clusters give the same record.
        target = port.get("targetPort", number)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise MalformedObject(f"must be an integer or a string, got {json_type(target)}", f"{path}.targetPort")
        record["target_port"] = target
        protocol = typed_field(port, "protocol", str, path) or "TCP"
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise MalformedObject(f"unknown protocol {protocol!r}", f"{path}.protocol")
        record["protocol"] = protocol
        ports.append(record)
    external_name = typed_field(spec, "externalName", str, "$.spec") if service_type == "ExternalName" else None
    return Service(
        f"{namespace}/Service/{name}", namespace, name, service_type, label_map(spec, "selector", "$.spec"),
        external_name.lower().rstrip(".") if external_name else None, ports,
    )


def ingress_backends(obj: dict) -> list[str]:
    """Service names an Ingress routes to (networking.k8s.io/v1 and the older extensions/v1beta1 shape)."""
    spec = typed_field(obj, "spec", dict, "$", {})
    backends = [typed_field(spec, key, dict, "$.spec") for key in ("defaultBackend", "backend")]
    for rule_index, rule in enumerate(object_list(spec, "rules", "$.spec")):
        http = typed_field(rule, "http", dict, f"$.spec.rules[{rule_index}]", {})
        paths = object_list(http, "paths", f"$.spec.rules[{rule_index}].http")
        backends.extend(typed_field(path, "backend", dict, "$.spec.rules[].http.paths[]") for path in paths)
    names = []
    for backend in backends:
        if backend:
            service = backend.get("service")
            name = service.get("name") if isinstance(service, dict) else backend.get("serviceName")
            if isinstance(name, str):
                names.append(name)
    return names


@dataclass(slots=True)
class Inputs:
    workloads: dict[str, Workload] = field(default_factory=dict)
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    exposed: set[tuple[str, str]] = field(default_factory=set)
    pdbs: list[tuple[str, str, dict, dict]] = field(default_factory=list)
    hpas: list[tuple[str, str, dict]] = field(default_factory=list)
    duplicates: set[str] = field(default_factory=set)


def read_objects(objects: list[dict]) -> Inputs:
    inputs = Inputs()
    for index, obj in enumerate(objects):
        try:
            _read_object(obj, inputs)
        except MalformedObject as e:
            e.index = index
            raise
    return inputs


def _read_object(obj: dict, inputs: Inputs) -> None:
    kind = obj.get("kind")
    if kind not in KNOWN_KINDS:
        return
    metadata = typed_field(obj, "metadata", dict, "$", required=True)
    name = object_name(metadata, "name")
    namespace = object_name(metadata, "namespace", "default")
    if kind in WORKLOAD_KINDS:
        owners = typed_field(metadata, "ownerReferences", list, "$.metadata", ())
        # A ReplicaSet of a Deployment or a Pod of any controller is part of its owner, not a workload of its own.
        if any(isinstance(o, dict) and o.get("controller") for o in owners):
            return
        workload = parse_workload(obj, kind, namespace, name)
        if workload.id in inputs.workloads:
            inputs.duplicates.add(workload.id)
        inputs.workloads[workload.id] = workload
    elif kind == "Service":
        inputs.services[(namespace, name)] = parse_service(obj, namespace, name)
    elif kind == "ConfigMap":
        data = typed_field(obj, "data", dict, "$", {})
        inputs.configmaps[(namespace, name)] = {str(k): scalar_text(v) for k, v in data.items()}
    elif kind == "Ingress":
        inputs.exposed.update((namespace, service) for service in ingress_backends(obj))
    elif kind == "PodDisruptionBudget":
        spec = typed_field(obj, "spec", dict, "$", {})
        # policy/v1: an empty selector matches every pod of the namespace, a missing one none.
        selector = typed_field(spec, "selector", dict, "$.spec")
        if selector is not None:
            inputs.pdbs.append((namespace, name, selector, spec))
    elif kind == "HorizontalPodAutoscaler":
        spec = typed_field(obj, "spec", dict, "$", {})
        typed_field(spec, "scaleTargetRef", dict, "$.spec", required=True)
        typed_field(spec, "minReplicas", int, "$.spec")
        typed_field(spec, "maxReplicas", int, "$.spec")
        inputs.hpas.append((namespace, name, spec))
