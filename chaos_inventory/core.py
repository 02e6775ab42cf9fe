"""Building a Topology from Kubernetes objects: workloads, Services, the dependency graph, tiers, criticality, risks.

Pure: plain dicts in, a Topology dict out, no I/O. chaos-inventory's CLI feeds it the objects of manifest files
(manifests.py); the live-cluster reader feeds it the objects it lists plus `runtime`, the facts only a running
cluster knows:

    runtime = {
        "pods": [<v1 Pod>, ...],                         # matched to workloads by namespace and selector
        "endpointslices": [<discovery.k8s.io/v1 EndpointSlice>, ...],   # by label kubernetes.io/service-name
        "nodes": [<v1 Node>, ...],                       # zone from topology.kubernetes.io/zone
    }

Every key is optional. With runtime, workloads get `runtime` (pods, ready replicas, restarts, nodes, zones),
Services get `ready_endpoints`, and the risks all-replicas-one-node, all-replicas-one-zone, no-ready-endpoints and
not-ready are added. Objects with a field of the wrong shape raise MalformedObject (exit 3) naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from chaosgen import API_VERSION, __version__
from chaosgen.errors import InputRejected
from chaosgen.secrets import is_secret_name
from chaos_inventory.references import (
    HOST_TAKING_WORDS, NOT_HOSTS, SHELL_SEPARATORS, HostRef, hosts_in_token, hosts_in_value, is_local, normalise_key,
)

GENERATOR = f"chaos-inventory {__version__}"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
SUPPORTING_KINDS = ("Service", "Ingress", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy")
KNOWN_KINDS = frozenset(WORKLOAD_KINDS + SUPPORTING_KINDS)
CONTROLLER_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
DATA_TIERS = frozenset({"database", "cache", "queue"})
TIER_ORDER = ("database", "cache", "queue", "frontend", "backend", "other")

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TEMPLATE_PATHS = {"CronJob": ("spec", "jobTemplate", "spec", "template"), "Pod": ()}
_DEFAULT_TEMPLATE_PATH = ("spec", "template")
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}
# Schemes of synchronous calls or data stores: the caller cannot serve without the target.
_HARD_SCHEMES = frozenset({
    "http", "https", "grpc", "grpcs", "h2c", "postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv",
    "redis", "rediss", "memcached", "amqp", "amqps", "kafka", "nats", "cassandra", "jdbc:postgresql", "jdbc:mysql",
    "jdbc:mariadb", "jdbc:sqlserver", "jdbc:oracle",
})
ENV, COMMAND, COMMAND_CONTEXT, FILE = "env", "command", "command-context", "file"
# How much a bare Service name is worth where it appears without a host-like key; elsewhere it is no evidence.
_BARE_CONFIDENCE = {ENV: 0.6, COMMAND_CONTEXT: 0.8}
_CONFIG_FILE_ADDRESS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>;,]+|\b[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*:[0-9]{2,5}\b")


class MalformedObject(InputRejected):
    """A field the topology needs has the wrong shape; index is the object's position in build_topology's input."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, None, path)
        self.index: int | None = None


# --- reading fields with their shape checked -------------------------------------------------------------------

def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _get(mapping: dict, key: str, expected: type, path: str, default: Any = None, required: bool = False) -> Any:
    value = mapping.get(key)
    if value is None:
        if required:
            raise MalformedObject(f"{key} is required", f"{path}.{key}")
        return default
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise MalformedObject(f"must be {_TYPE_NAMES[expected]}, got {_json_type(value)}", f"{path}.{key}")
    return value


def _items(mapping: dict, key: str, path: str) -> list[dict]:
    """A list of objects, e.g. containers or env; an element that is not an object is rejected with its index."""
    values = _get(mapping, key, list, path, ())
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise MalformedObject(f"must be an object, got {_json_type(value)}", f"{path}.{key}[{index}]")
    return values


def _labels(mapping: dict, key: str, path: str) -> dict[str, str]:
    values = _get(mapping, key, dict, path, {})
    for name, value in values.items():
        if not isinstance(value, str):
            raise MalformedObject(f"label values must be strings, got {_json_type(value)}", f"{path}.{key}.{name}")
    return values


def _name(metadata: dict, key: str, default: str | None = None) -> str:
    value = _get(metadata, key, str, "$.metadata", default, required=default is None)
    if not _DNS1123.match(value) or len(value) > 253:
        raise MalformedObject(f"{value!r} is not a valid Kubernetes name (RFC 1123)", f"$.metadata.{key}")
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def selector_matches(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels; used for PDBs and NetworkPolicies."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or ()
        present = key in labels
        if (operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and present and labels[key] in values) \
                or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


# --- the records built from objects ----------------------------------------------------------------------------

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
    services: list["Service"] = field(default_factory=list)
    pdb: dict | None = None
    hpa: dict | None = None
    tier: str = "other"
    tier_reasons: list[str] = field(default_factory=list)
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


def _parse_workload(obj: dict, kind: str, namespace: str, name: str) -> Workload:
    node, json_path = obj, "$"
    for key in _TEMPLATE_PATHS.get(kind, _DEFAULT_TEMPLATE_PATH):
        node = _get(node, key, dict, json_path, required=True)
        json_path += f".{key}"
    template_metadata = _get(node, "metadata", dict, json_path, {})
    labels = _labels(template_metadata, "labels", f"{json_path}.metadata")
    pod_spec = _get(node, "spec", dict, json_path, required=True)
    json_base = f"{json_path}.spec"
    evidence_base = json_base[2:]
    containers = []
    for section in ("initContainers", "containers"):
        for index, spec in enumerate(_items(pod_spec, section, json_base)):
            path = f"{json_base}.{section}[{index}]"
            container_name = _get(spec, "name", str, path, required=True)
            ports, port_names = [], []
            for port_index, port in enumerate(_items(spec, "ports", path)):
                number = _get(port, "containerPort", int, f"{path}.ports[{port_index}]", required=True)
                if not 0 < number < 65536:
                    raise MalformedObject(f"port {number} is out of range", f"{path}.ports[{port_index}].containerPort")
                ports.append(number)
                port_names.append(_get(port, "name", str, f"{path}.ports[{port_index}]", ""))
            env = _items(spec, "env", path)
            for env_index, item in enumerate(env):
                _get(item, "name", str, f"{path}.env[{env_index}]", required=True)
                _get(item, "valueFrom", dict, f"{path}.env[{env_index}]")
            containers.append(Container(
                container_name, _get(spec, "image", str, path, ""), section == "initContainers", spec, path,
                f"{evidence_base}.{section}[{container_name}]", ports, port_names, env, _items(spec, "envFrom", path),
                {key: _get(spec, key, list, path, []) for key in ("command", "args")},
            ))
    if not any(not c.init for c in containers):
        raise MalformedObject("a pod needs at least one container", f"{json_base}.containers")
    spec = _get(obj, "spec", dict, "$", {})
    if kind in CONTROLLER_KINDS:
        replicas = _get(spec, "replicas", int, "$.spec", 1)
        if replicas < 0:
            raise MalformedObject("replicas cannot be negative", "$.spec.replicas")
    else:
        replicas = 1
    metadata_labels = _labels(obj["metadata"], "labels", "$.metadata")
    if kind == "Pod":
        selector = labels = metadata_labels
    else:
        selector_spec = _get(spec, "selector", dict, "$.spec", {})
        selector = _labels(selector_spec, "matchLabels", "$.spec.selector") or labels
    return Workload(
        f"{namespace}/{kind}/{name}", namespace, kind, name, labels, selector, replicas, pod_spec, evidence_base,
        json_base, containers, metadata_labels, bool(_get(spec, "volumeClaimTemplates", list, "$.spec", ())),
        _items(pod_spec, "volumes", json_base),
    )


def _parse_service(obj: dict, namespace: str, name: str) -> Service:
    spec = _get(obj, "spec", dict, "$", {})
    service_type = _get(spec, "type", str, "$.spec", "ClusterIP")
    if service_type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise MalformedObject(f"unknown Service type {service_type!r}", "$.spec.type")
    if service_type == "ClusterIP" and spec.get("clusterIP") == "None":
        service_type = "Headless"
    ports = []
    for index, port in enumerate(_items(spec, "ports", "$.spec")):
        path = f"$.spec.ports[{index}]"
        number = _get(port, "port", int, path, required=True)
        if not 0 < number < 65536:
            raise MalformedObject(f"port {number} is out of range", f"{path}.port")
        record: dict[str, Any] = {}
        if port.get("name") is not None:
            record["name"] = _get(port, "name", str, path)
        record["port"] = number
        # targetPort and protocol get the apiserver's defaults, so manifests and live clusters give the same record.
        target = port.get("targetPort", number)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise MalformedObject(f"must be an integer or a string, got {_json_type(target)}", f"{path}.targetPort")
        record["target_port"] = target
        protocol = _get(port, "protocol", str, path) or "TCP"
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise MalformedObject(f"unknown protocol {protocol!r}", f"{path}.protocol")
        record["protocol"] = protocol
        ports.append(record)
    external_name = _get(spec, "externalName", str, "$.spec") if service_type == "ExternalName" else None
    return Service(
        f"{namespace}/Service/{name}", namespace, name, service_type, _labels(spec, "selector", "$.spec"),
        external_name.lower().rstrip(".") if external_name else None, ports,
    )


def _ingress_backends(obj: dict) -> list[str]:
    """Service names an Ingress routes to (networking.k8s.io/v1 and the older extensions/v1beta1 shape)."""
    spec = _get(obj, "spec", dict, "$", {})
    backends = [_get(spec, key, dict, "$.spec") for key in ("defaultBackend", "backend")]
    for rule_index, rule in enumerate(_items(spec, "rules", "$.spec")):
        http = _get(rule, "http", dict, f"$.spec.rules[{rule_index}]", {})
        paths = _items(http, "paths", f"$.spec.rules[{rule_index}].http")
        backends.extend(_get(path, "backend", dict, "$.spec.rules[].http.paths[]") for path in paths)
    names = []
    for backend in backends:
        if backend:
            service = backend.get("service")
            name = service.get("name") if isinstance(service, dict) else backend.get("serviceName")
            if isinstance(name, str):
                names.append(name)
    return names


# --- the whole topology ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Inputs:
    workloads: dict[str, Workload] = field(default_factory=dict)
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    exposed: set[tuple[str, str]] = field(default_factory=set)
    pdbs: list[tuple[str, str, dict, dict]] = field(default_factory=list)
    hpas: list[tuple[str, str, dict]] = field(default_factory=list)
    duplicates: set[str] = field(default_factory=set)


def build_topology(objects: list[dict], source: dict, runtime: dict | None = None) -> dict:
    """The Topology of objects (Kubernetes objects as plain dicts, namespaces already set); called by the CLI."""
    inputs = _read_objects(objects)
    workloads = sorted(inputs.workloads.values(), key=lambda w: w.id)
    services = sorted(inputs.services.values(), key=lambda s: s.id)
    by_label = _label_index(workloads)
    _select(by_label, services, inputs.exposed)
    _protect(by_label, workloads, inputs)
    edges = _dependencies(workloads, inputs)
    _assign_tiers(workloads, edges)
    dependencies = _finish_edges(edges, inputs.workloads)
    if runtime:
        _apply_runtime(runtime, workloads, services)
    callers = _transitive_callers(workloads, dependencies)
    direct = _direct_callers(dependencies)
    workload_records = [_workload_record(w, callers.get(w.id, 0), direct.get(w.id, 0)) for w in workloads]
    external = _external_hosts(dependencies)
    metadata: dict[str, Any] = {"generator": GENERATOR, "source": source}
    if inputs.duplicates:
        listed = sorted(inputs.duplicates)
        more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
        metadata["warnings"] = [f"{len(listed)} workloads are defined more than once, the last definition is used: "
                                f"{', '.join(listed[:5])}{more}"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Topology",
        "metadata": metadata,
        "workloads": workload_records,
        "services": [_service_record(s) for s in services],
        "dependencies": dependencies,
        "external": external,
        "summary": {
            "workloads": len(workload_records),
            "services": len(services),
            "dependencies": len(dependencies),
            "external": len(external),
            "risks": sum(len(w["risks"]) for w in workload_records),
        },
    }


def _read_objects(objects: list[dict]) -> _Inputs:
    inputs = _Inputs()
    for index, obj in enumerate(objects):
        try:
            _read_object(obj, inputs)
        except MalformedObject as e:
            e.index = index
            raise
    return inputs


def _read_object(obj: dict, inputs: _Inputs) -> None:
    kind = obj.get("kind")
    if kind not in KNOWN_KINDS:
        return
    metadata = _get(obj, "metadata", dict, "$", required=True)
    name = _name(metadata, "name")
    namespace = _name(metadata, "namespace", "default")
    if kind in WORKLOAD_KINDS:
        owners = _get(metadata, "ownerReferences", list, "$.metadata", ())
        # A ReplicaSet of a Deployment or a Pod of any controller is part of its owner, not a workload of its own.
        if any(isinstance(o, dict) and o.get("controller") for o in owners):
            return
        workload = _parse_workload(obj, kind, namespace, name)
        if workload.id in inputs.workloads:
            inputs.duplicates.add(workload.id)
        inputs.workloads[workload.id] = workload
    elif kind == "Service":
        inputs.services[(namespace, name)] = _parse_service(obj, namespace, name)
    elif kind == "ConfigMap":
        data = _get(obj, "data", dict, "$", {})
        inputs.configmaps[(namespace, name)] = {str(k): _scalar_text(v) for k, v in data.items()}
    elif kind == "Ingress":
        inputs.exposed.update((namespace, service) for service in _ingress_backends(obj))
    elif kind == "PodDisruptionBudget":
        spec = _get(obj, "spec", dict, "$", {})
        # policy/v1: an empty selector matches every pod of the namespace, a missing one none.
        selector = _get(spec, "selector", dict, "$.spec")
        if selector is not None:
            inputs.pdbs.append((namespace, name, selector, spec))
    elif kind == "HorizontalPodAutoscaler":
        spec = _get(obj, "spec", dict, "$", {})
        _get(spec, "scaleTargetRef", dict, "$.spec", required=True)
        _get(spec, "minReplicas", int, "$.spec")
        _get(spec, "maxReplicas", int, "$.spec")
        inputs.hpas.append((namespace, name, spec))


_LabelIndex = dict[tuple[str, str, str | None], list[Workload]]


def _label_index(workloads: list[Workload]) -> _LabelIndex:
    """Workloads by (namespace, label, value), and by (namespace, "", None) all of a namespace: selectors match
    through it so that matching stays linear in the number of objects."""
    index: _LabelIndex = {}
    for workload in workloads:
        index.setdefault((workload.namespace, "", None), []).append(workload)
        for key, value in workload.labels.items():
            index.setdefault((workload.namespace, key, value), []).append(workload)
    return index


def _candidates(index: _LabelIndex, namespace: str, match_labels: dict[str, str]) -> list[Workload]:
    """The workloads of a namespace that may match: those carrying the rarest of the selector's labels."""
    lists = [index.get((namespace, k, v), []) for k, v in match_labels.items()] or [index.get((namespace, "", None), [])]
    return min(lists, key=len)


def _select(by_label: _LabelIndex, services: list[Service], exposed: set[tuple[str, str]]) -> None:
    """Services select workloads by pod-template labels, in their own namespace."""
    for service in services:
        service.exposed = service.type in ("NodePort", "LoadBalancer") or (service.namespace, service.name) in exposed
        if not service.selector or service.type == "ExternalName":
            continue
        candidates = _candidates(by_label, service.namespace, service.selector)
        service.selects = [w for w in candidates if all(w.labels.get(k) == v for k, v in service.selector.items())]
        for workload in service.selects:
            workload.services.append(service)


def _protect(by_label: _LabelIndex, workloads: list[Workload], inputs: _Inputs) -> None:
    by_name = {(w.namespace, w.kind, w.name): w for w in workloads}
    for namespace, name, selector, spec in sorted(inputs.pdbs, key=lambda p: (p[0], p[1])):
        match_labels = selector.get("matchLabels") if isinstance(selector.get("matchLabels"), dict) else {}
        for workload in _candidates(by_label, namespace, match_labels):
            if workload.pdb is None and workload.kind != "Pod" and selector_matches(selector, workload.labels):
                workload.pdb = {"name": name, "spec": spec}
    for namespace, name, spec in sorted(inputs.hpas, key=lambda h: (h[0], h[1])):
        target = spec["scaleTargetRef"]
        workload = by_name.get((namespace, target.get("kind"), target.get("name")))
        if workload is not None and workload.hpa is None:
            workload.hpa = {"name": name, "spec": spec}


# --- dependencies ----------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Edge:
    source: Workload
    to: str
    target: Workload | None
    via: Service | None
    port: int | None
    evidence: set[str]
    confidence: float
    hard_scheme: bool


def _dependencies(workloads: list[Workload], inputs: _Inputs) -> dict[tuple, _Edge]:
    edges: dict[tuple, _Edge] = {}
    config_file_cache: dict[tuple[str, str], list[tuple[str, HostRef]]] = {}
    for workload in workloads:
        for ref, evidence, origin in _references(workload, inputs, config_file_cache):
            _add_edges(edges, workload, ref, evidence, origin, inputs.services)
    return edges


def _references(workload: Workload, inputs: _Inputs, config_file_cache: dict) -> Iterable[tuple[HostRef, str, str]]:
    """(host, evidence field, origin) for every host a workload's pod spec names; origin is one of ENV, COMMAND,
    COMMAND_CONTEXT (after a host-taking program or flag) and FILE (a mounted ConfigMap)."""
    namespace = workload.namespace
    for container in workload.containers:
        evidence = container.evidence_path
        for item in container.env:
            key = item["name"]
            if is_secret_name(key):
                continue
            field_path = f"{evidence}.env[{key}]"
            if "value" in item:
                for ref in hosts_in_value(_scalar_text(item["value"]), key):
                    yield ref, field_path, ENV
                continue
            ref_spec = (item.get("valueFrom") or {}).get("configMapKeyRef")
            if isinstance(ref_spec, dict) and isinstance(ref_spec.get("name"), str):
                data = inputs.configmaps.get((namespace, ref_spec["name"]), {})
                config_key = ref_spec.get("key")
                if isinstance(config_key, str) and config_key in data:
                    ref_path = f"{field_path}.valueFrom.configMapKeyRef[{ref_spec['name']}].{config_key}"
                    for ref in hosts_in_value(data[config_key], key):
                        yield ref, ref_path, ENV
        for item in container.env_from:
            ref_spec = item.get("configMapRef")
            if not isinstance(ref_spec, dict) or not isinstance(ref_spec.get("name"), str):
                continue
            prefix = _scalar_text(item.get("prefix"))
            for config_key, value in sorted(inputs.configmaps.get((namespace, ref_spec["name"]), {}).items()):
                if not is_secret_name(config_key):
                    for ref in hosts_in_value(value, prefix + config_key):
                        yield ref, f"{evidence}.envFrom[configmap {ref_spec['name']}].{config_key}", ENV
        yield from _command_references(container)
    for volume in workload.volumes:
        config_map = volume.get("configMap")
        if isinstance(config_map, dict) and isinstance(config_map.get("name"), str):
            volume_path = f"{workload.evidence_base}.volumes[{volume.get('name')}].configMap[{config_map['name']}]"
            for config_key, ref in _config_file_hosts(namespace, config_map["name"], inputs, config_file_cache):
                yield ref, f"{volume_path}.{config_key}", FILE


def _command_references(container: Container) -> Iterable[tuple[HostRef, str, str]]:
    """Hosts in command and args; a bare word counts only after a host-taking program or flag (nc -z db 5432)."""
    for section, words in container.command_words.items():
        in_host_context, flag_key = False, None
        for index, word in enumerate(words):
            for token in _scalar_text(word).replace(";", " ; ").split():
                if token in SHELL_SEPARATORS:
                    in_host_context, flag_key = False, None
                    continue
                for ref in hosts_in_token(token, flag_key):
                    yield ref, f"{container.evidence_path}.{section}[{index}]", COMMAND_CONTEXT if in_host_context else COMMAND
                lowered = token.lower()
                in_host_context = lowered in HOST_TAKING_WORDS or (in_host_context and lowered.startswith("-"))
                flag_key = normalise_key(token) if token.startswith("-") and "=" not in token else None


def _config_file_hosts(
    namespace: str, name: str, inputs: _Inputs, cache: dict[tuple[str, str], list[tuple[str, HostRef]]],
) -> list[tuple[str, HostRef]]:
    """URLs and host:port in the files of a mounted ConfigMap (nginx.conf's proxy_pass...), found once per map."""
    key = (namespace, name)
    if key not in cache:
        found = []
        for config_key, text in sorted(inputs.configmaps.get(key, {}).items()):
            if not is_secret_name(config_key):
                for match in _CONFIG_FILE_ADDRESS.finditer(text):
                    found.extend((config_key, ref) for ref in hosts_in_token(match.group(0), None))
        cache[key] = found
    return cache[key]


def _add_edges(
    edges: dict[tuple, _Edge], workload: Workload, ref: HostRef, evidence: str, origin: str,
    services: dict[tuple[str, str], Service],
) -> None:
    """Resolve one named host to Service-selected workloads, or to an external host, and record the edges.

    A bare word is evidence only when it is a Service's name where names are expected (env values, after
    `nc`/`-h`...) or when its key says it holds a host; files only yield URLs and host:port of known Services."""
    host = ref.host
    if is_local(host) or ref.excluded_key or (ref.key and is_secret_name(ref.key)):
        return
    labels = host.split(".")
    cluster_name = len(labels) >= 3 and "svc" in labels[2:4]
    if len(labels) == 1:
        service = services.get((workload.namespace, host))
    elif len(labels) == 2 or (cluster_name and labels[2] == "svc"):
        service = services.get((labels[1], labels[0]))
    elif cluster_name:
        # A StatefulSet pod behind its headless Service: <pod>.<service>.<namespace>.svc...
        service = services.get((labels[2], labels[1]))
    else:
        service = None
    bare = len(labels) == 1 and not ref.scheme and not ref.port
    if bare and (host in NOT_HOSTS or not ref.hinted and (origin not in _BARE_CONFIDENCE or service is None)):
        return
    if service is None and (origin == FILE or not (cluster_name or ref.host_shaped or ref.hinted)):
        return
    if service is None:
        confidence = 0.6 if bare else 0.9
        targets: list[tuple[str, Workload | None, Service | None]] = [(host, None, None)]
    else:
        if bare:
            confidence = 0.9 if ref.hinted else _BARE_CONFIDENCE[origin]
        else:
            confidence = 0.7 if origin == FILE else 0.95
        targets = [(w.id, w, service) for w in service.selects]
        if service.external_name:
            targets = [(service.external_name, None, service)]
        elif not targets:
            targets = [(host, None, service)]
    port = ref.port
    if port is None and service is not None and len(service.ports) == 1:
        port = service.ports[0]["port"]
    for to, target, via in targets:
        if target is workload:
            continue
        key = (workload.id, to, via.id if via else None, target is None)
        edge = edges.get(key)
        if edge is None:
            edges[key] = _Edge(workload, to, target, via, port, {evidence}, confidence, ref.scheme in _HARD_SCHEMES)
        else:
            edge.evidence.add(evidence)
            edge.confidence = max(edge.confidence, confidence)
            edge.hard_scheme = edge.hard_scheme or ref.scheme in _HARD_SCHEMES
            if port is not None and (edge.port is None or port < edge.port):
                edge.port = port


def _finish_edges(edges: dict[tuple, _Edge], workloads: dict[str, Workload]) -> list[dict]:
    records = []
    for edge in edges.values():
        records.append({
            "from": edge.source.id,
            "to": edge.to,
            "external": edge.target is None,
            "via": edge.via.id if edge.via else None,
            "port": edge.port,
            "evidence": sorted(edge.evidence),
            "confidence": edge.confidence,
            "hard": edge.hard_scheme or (edge.target is not None and edge.target.tier in DATA_TIERS),
        })
    records.sort(key=lambda d: (d["from"], d["external"], d["to"], d["via"] or ""))
    return records


def _external_hosts(dependencies: list[dict]) -> list[dict]:
    hosts: dict[str, set[str]] = {}
    for dependency in dependencies:
        if dependency["external"]:
            hosts.setdefault(dependency["to"], set()).add(dependency["from"])
    return [{"host": host, "referenced_by": sorted(callers)} for host, callers in sorted(hosts.items())]


# --- tiers -----------------------------------------------------------------------------------------------------

_WORD_TIERS = {
    **dict.fromkeys((
        "postgres", "postgresql", "postgis", "mysql", "mariadb", "mongo", "mongodb", "cassandra", "scylla",
        "cockroach", "cockroachdb", "couchdb", "couchbase", "influxdb", "neo4j", "clickhouse", "timescaledb",
        "percona", "mssql", "elasticsearch", "opensearch", "yugabyte", "tidb", "etcd", "pgbouncer",
    ), "database"),
    **dict.fromkeys(("redis", "memcached", "valkey", "keydb", "hazelcast", "dragonfly"), "cache"),
    **dict.fromkeys((
        "rabbitmq", "kafka", "nats", "activemq", "artemis", "pulsar", "nsq", "mosquitto", "emqx", "redpanda", "amqp",
    ), "queue"),
    **dict.fromkeys(("nginx", "httpd", "apache", "envoy", "haproxy", "traefik", "caddy", "openresty"), "frontend"),
    **dict.fromkeys((
        "prometheus", "grafana", "alertmanager", "exporter", "fluentd", "fluent-bit", "jaeger", "zipkin", "loki",
        "promtail", "otel", "kube-state-metrics", "busybox",
    ), "other"),
}
_WELL_KNOWN_PORTS = {
    5432: "database", 3306: "database", 27017: "database", 9042: "database", 26257: "database", 5984: "database",
    7687: "database", 6379: "cache", 11211: "cache", 5672: "queue", 5671: "queue", 9092: "queue", 4222: "queue",
    1883: "queue", 61616: "queue", 6650: "queue",
}
_LABEL_KEYS = ("tier", "app.kubernetes.io/component", "component")
_LABEL_TIERS = {
    **dict.fromkeys(("frontend", "front-end", "web", "ui", "webapp", "www", "client"), "frontend"),
    **dict.fromkeys(("backend", "back-end", "api", "server", "service", "worker", "microservice"), "backend"),
    **dict.fromkeys(("database", "db", "datastore", "storage", "postgres", "postgresql", "mysql", "mongodb"),
                    "database"),
    **dict.fromkeys(("cache", "redis", "memcached"), "cache"),
    **dict.fromkeys(("queue", "broker", "messaging", "mq", "message-queue", "rabbitmq", "kafka"), "queue"),
}
_NAME_ROLE_TIERS = {
    **dict.fromkeys(("web", "ui", "www", "frontend", "portal", "site", "webapp", "storefront", "gui"), "frontend"),
    **dict.fromkeys(("db", "database", "sql", "pg", "postgres", "postgresql", "mysql", "mariadb", "mongo", "mongodb"),
                    "database"),
    **dict.fromkeys(("cache", "redis", "memcached"), "cache"),
    **dict.fromkeys(("mq", "broker", "rabbitmq", "kafka", "nats"), "queue"),
    **dict.fromkeys(("api", "backend", "server", "service", "svc", "worker"), "backend"),
}
_VERSION_WORD = re.compile(r"^(v[0-9]+[a-z0-9]*|[0-9]+|canary|stable|primary|blue|green)$")
_WORD_SPLIT = re.compile(r"[-_.]")


def _assign_tiers(workloads: list[Workload], edges: dict[tuple, _Edge]) -> None:
    """Tier from the strongest signal: labels, then image, ports, exposure, name, position in the graph."""
    callers: dict[str, int] = {}
    calls: set[str] = set()
    for edge in edges.values():
        if edge.target is not None:
            callers[edge.target.id] = callers.get(edge.target.id, 0) + 1
            calls.add(edge.source.id)
    for workload in workloads:
        votes = _tier_votes(workload, callers.get(workload.id, 0), workload.id in calls)
        best = max(votes, key=lambda v: (v[0], -TIER_ORDER.index(v[1])))
        workload.tier = best[1]
        workload.tier_reasons = [reason for weight, tier, reason in sorted(votes, key=lambda v: (-v[0], v[2]))
                                 if tier == best[1]]


def _tier_votes(workload: Workload, callers: int, calls: bool) -> list[tuple[int, str, str]]:
    votes: list[tuple[int, str, str]] = []
    for key in _LABEL_KEYS:
        value = workload.labels.get(key) or workload.metadata_labels.get(key)
        if value and value.lower() in _LABEL_TIERS:
            votes.append((100, _LABEL_TIERS[value.lower()], f"label {key}={value}"))
    primary = workload.app_containers[0]
    image_name = primary.image.partition("@")[0].rpartition("/")[2].partition(":")[0].lower()
    image_words = [image_name, *_WORD_SPLIT.split(image_name)]
    image_tiers = [_WORD_TIERS[w] for w in image_words if w in _WORD_TIERS]
    if image_tiers:
        # An exporter or agent next to a data store's name is not the data store (rabbitmq-exporter).
        tier = "other" if "other" in image_tiers else image_tiers[0]
        votes.append((80 if tier != "frontend" else 60, tier, f"image {primary.image}"))
    elif "db" in image_words:
        votes.append((50, "database", f"image {primary.image} is named as a database"))
    for container in workload.app_containers:
        for number, port_name in zip(container.ports, container.port_names):
            tier = _WELL_KNOWN_PORTS.get(number) or _WORD_TIERS.get(port_name.lower())
            if tier in DATA_TIERS:
                votes.append((70, tier, f"serves port {number}{f' ({port_name})' if port_name else ''}"))
    for service in workload.services:
        for port in service.ports:
            tier = _WELL_KNOWN_PORTS.get(port["port"])
            if tier:
                votes.append((70, tier, f"Service {service.name} serves port {port['port']}"))
        if service.exposed:
            how = service.type if service.type in ("NodePort", "LoadBalancer") else "an Ingress"
            votes.append((65, "frontend", f"exposed outside the cluster by Service {service.name} ({how})"))
    role_tier, role_reason = _name_role(workload.name)
    if role_tier:
        votes.append((35, role_tier, role_reason))
    if callers or calls:
        what = f"called by {callers} workload{'s' if callers != 1 else ''}" if callers else "calls other workloads"
        votes.append((30, "backend", f"{what} in the dependency graph"))
    if workload.kind in ("Job", "CronJob", "DaemonSet"):
        votes.append((32, "other", f"a {workload.kind}, not a long-running service"))
    elif workload.services or any(c.ports for c in workload.app_containers):
        votes.append((20, "backend", "serves traffic inside the cluster"))
    else:
        votes.append((10, "other", "serves no port"))
    return votes


def _name_role(name: str) -> tuple[str | None, str]:
    words = [w for w in name.split("-") if not _VERSION_WORD.match(w)] or [name]
    base = "-".join(words)
    if base.startswith("front") or base.endswith("page"):
        return "frontend", f"name {name} names a user-facing part"
    tier = _NAME_ROLE_TIERS.get(words[-1])
    return tier, f"name {name}" if len(words) == 1 else f"name {name} ends in {words[-1]}"


# --- criticality, risks and the output records -----------------------------------------------------------------

def _direct_callers(dependencies: list[dict]) -> dict[str, int]:
    callers: dict[str, set[str]] = {}
    for dependency in dependencies:
        if not dependency["external"]:
            callers.setdefault(dependency["to"], set()).add(dependency["from"])
    return {target: len(sources) for target, sources in callers.items()}


def _transitive_callers(workloads: list[Workload], dependencies: list[dict]) -> dict[str, int]:
    """How many workloads reach each one through internal edges, as bitsets over strongly connected components."""
    index = {w.id: i for i, w in enumerate(workloads)}
    successors: list[list[int]] = [[] for _ in workloads]
    for dependency in dependencies:
        if not dependency["external"]:
            successors[index[dependency["from"]]].append(index[dependency["to"]])
    components = _strongly_connected(successors)
    component_of = {}
    for number, members in enumerate(components):
        for member in members:
            component_of[member] = number
    # Tarjan emits components callee-first; walking them in reverse visits every caller before its callees.
    reached_by = [0] * len(components)
    for number in range(len(components) - 1, -1, -1):
        members = components[number]
        own = 0
        for member in members:
            own |= 1 << member
        inherited = reached_by[number] | (own if len(members) > 1 else 0)
        for member in members:
            for successor in successors[member]:
                target = component_of[successor]
                if target != number:
                    reached_by[target] |= inherited | own
        reached_by[number] = inherited
    result = {}
    for workload_id, i in index.items():
        count = bin(reached_by[component_of[i]] & ~(1 << i)).count("1")
        if count:
            result[workload_id] = count
    return result


def _strongly_connected(successors: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm without recursion (thousands of workloads would overflow the stack)."""
    counter, indices, lowlinks, on_stack, stack, components = 0, {}, {}, set(), [], []
    for root in range(len(successors)):
        if root in indices:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                indices[node] = lowlinks[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if child < len(successors[node]):
                work.append((node, child + 1))
                successor = successors[node][child]
                if successor not in indices:
                    work.append((successor, 0))
                elif successor in on_stack:
                    lowlinks[node] = min(lowlinks[node], indices[successor])
                continue
            if lowlinks[node] == indices[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                lowlinks[parent] = min(lowlinks[parent], lowlinks[node])
    return components


_TIER_WEIGHT = {"database": 25, "queue": 20, "cache": 15, "frontend": 15, "backend": 10, "other": 0}


def _criticality(workload: Workload, transitive: int, direct: int, stateful: bool) -> dict:
    score, reasons = 0, []
    if transitive:
        score += min(45, 12 * direct + 6 * (transitive - direct))
        reasons.append(f"{transitive} workload{'s' if transitive != 1 else ''} depend on it ({direct} directly)")
    score += _TIER_WEIGHT[workload.tier]
    reasons.append(f"tier {workload.tier}")
    if any(s.exposed for s in workload.services):
        score += 10
        reasons.append("exposed outside the cluster")
    if workload.kind in CONTROLLER_KINDS or workload.kind == "Pod":
        if workload.replicas <= 1:
            score += 15
            reasons.append("single replica")
        elif workload.replicas == 2:
            score += 5
            reasons.append("only 2 replicas")
        if workload.pdb is None:
            score += 5
            reasons.append("no PodDisruptionBudget")
        if workload.hpa is None:
            score += 5
            reasons.append("no HorizontalPodAutoscaler")
    if stateful:
        score += 10
        reasons.append("stateful")
    return {"score": min(100, score), "reasons": reasons}


def _risks(workload: Workload, stateful: bool, persistent: bool, direct: int) -> list[dict]:
    risks = []

    def add(risk_id: str, severity: str, message: str) -> None:
        risks.append({"id": risk_id, "severity": severity, "message": message})

    kind, replicas, app = workload.kind, workload.replicas, workload.app_containers
    long_running = kind not in ("Job", "CronJob")
    if kind in CONTROLLER_KINDS or kind == "Pod":
        if replicas <= 1:
            severity = "high" if workload.tier in DATA_TIERS or direct else "medium"
            what = "a bare Pod: nothing recreates it" if kind == "Pod" else f"{replicas} replica"
            add("single-replica", severity, f"{what}; losing one pod takes {workload.name} down")
    if long_running:
        missing = [c.name for c in app if "readinessProbe" not in c.spec]
        if missing:
            add("no-readiness-probe", "medium", f"no readinessProbe on {', '.join(missing)}: traffic reaches pods before they are ready")
        missing = [c.name for c in app if "livenessProbe" not in c.spec]
        if missing:
            add("no-liveness-probe", "low", f"no livenessProbe on {', '.join(missing)}: a hung process is not restarted")
    for risk_id, section, severity in (("no-resource-requests", "requests", "medium"), ("no-resource-limits", "limits", "medium")):
        missing = [c.name for c in app if not _resources(c).get(section)]
        if missing:
            add(risk_id, severity, f"no resource {section} on {', '.join(missing)}")
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        if workload.pdb is None:
            add("no-pdb", "medium" if replicas > 1 else "low", "no PodDisruptionBudget: a node drain may evict every pod at once")
        elif _pdb_blocks_eviction(workload.pdb["spec"], replicas):
            add("pdb-blocks-eviction", "medium", f"PodDisruptionBudget {workload.pdb['name']} allows no voluntary eviction: node drains hang")
    if workload.hpa is not None and workload.hpa["spec"].get("minReplicas", 1) <= 1:
        add("hpa-min-replicas-1", "medium", f"HorizontalPodAutoscaler {workload.hpa['name']} may scale down to 1 replica")
    untagged = [c.image for c in workload.containers if _untagged(c.image)]
    if untagged:
        add("image-latest-or-untagged", "medium", f"image {', '.join(sorted(set(untagged)))} has no fixed tag")
    if replicas > 1 and long_running and not _spreads(workload.pod_spec):
        add("no-anti-affinity", "medium", f"{replicas} replicas without podAntiAffinity or topologySpreadConstraints may share one node")
    if stateful and workload.tier in ("database", "queue") and not persistent:
        empty_dirs = sorted(str(v.get("name")) for v in workload.volumes if "emptyDir" in v)
        where = f"emptyDir volume {', '.join(empty_dirs)} and the container filesystem" if empty_dirs else "the container filesystem"
        add("stateful-data-on-emptydir", "high", f"a {workload.tier} without a persistent volume keeps its data on {where}: deleting the pod loses it")
    if workload.runtime is not None:
        risks.extend(_runtime_risks(workload))
    return sorted(risks, key=lambda r: r["id"])


def _resources(container: Container) -> dict:
    resources = container.spec.get("resources")
    return resources if isinstance(resources, dict) else {}


def _pdb_blocks_eviction(spec: dict, replicas: int) -> bool:
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        return max_unavailable in (0, "0%", "0")
    if isinstance(min_available, int) and not isinstance(min_available, bool):
        return min_available >= replicas
    return min_available == "100%"


def _untagged(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rpartition("/")[2]
    return ":" not in last or last.endswith(":latest")


def _spreads(pod_spec: dict) -> bool:
    affinity = pod_spec.get("affinity")
    return bool(pod_spec.get("topologySpreadConstraints")) or (
        isinstance(affinity, dict) and bool(affinity.get("podAntiAffinity")))


def _workload_record(workload: Workload, transitive: int, direct: int) -> dict:
    persistent = workload.claim_templates or any("persistentVolumeClaim" in v for v in workload.volumes)
    stateful = workload.kind == "StatefulSet" or persistent or workload.tier in DATA_TIERS
    record: dict[str, Any] = {
        "id": workload.id,
        "namespace": workload.namespace,
        "kind": workload.kind,
        "name": workload.name,
        "replicas": workload.replicas,
        "labels": dict(sorted(workload.labels.items())),
        "selector": dict(sorted(workload.selector.items())),
        "stateful": stateful,
        "containers": [_container_record(c) for c in workload.containers],
        "tier": workload.tier,
        "tier_reasons": workload.tier_reasons,
        "criticality": _criticality(workload, transitive, direct, stateful),
        "risks": _risks(workload, stateful, persistent, direct),
        "protection": {
            "pdb": workload.pdb["name"] if workload.pdb else None,
            "hpa": workload.hpa["name"] if workload.hpa else None,
            "min_replicas": workload.hpa["spec"].get("minReplicas", 1) if workload.hpa else None,
            "max_replicas": workload.hpa["spec"].get("maxReplicas") if workload.hpa else None,
        },
    }
    if workload.runtime is not None:
        record["runtime"] = workload.runtime
    return record


def _container_record(container: Container) -> dict:
    resources = _resources(container)
    return {
        "name": container.name,
        "image": container.image,
        "init": container.init,
        "ports": container.ports,
        "readiness_probe": "readinessProbe" in container.spec,
        "liveness_probe": "livenessProbe" in container.spec,
        "requests": _quantities(resources.get("requests")),
        "limits": _quantities(resources.get("limits")),
    }


def _quantities(values: Any) -> dict[str, str]:
    return {str(k): _scalar_text(v) for k, v in sorted(values.items())} if isinstance(values, dict) else {}


def _service_record(service: Service) -> dict:
    record: dict[str, Any] = {
        "id": service.id,
        "namespace": service.namespace,
        "name": service.name,
        "type": service.type,
        "selector": dict(sorted(service.selector.items())),
    }
    if service.external_name:
        record["external_name"] = service.external_name
    record["ports"] = service.ports
    record["selects"] = sorted(w.id for w in service.selects)
    record["exposed"] = service.exposed
    if service.ready_endpoints is not None:
        record["ready_endpoints"] = service.ready_endpoints
    return record


# --- live-cluster facts ----------------------------------------------------------------------------------------

_ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def _apply_runtime(runtime: dict, workloads: list[Workload], services: list[Service]) -> None:
    """Pods, EndpointSlices and Nodes from a live cluster: where replicas run and whether Services have endpoints."""
    zone_of = {}
    for node in runtime.get("nodes") or ():
        metadata = node.get("metadata") or {}
        labels = metadata.get("labels") or {}
        zone = next((labels[k] for k in _ZONE_LABELS if labels.get(k)), None)
        if zone:
            zone_of[metadata.get("name")] = zone
    by_selector_item: dict[tuple[str, str, str], list[Workload]] = {}
    for workload in workloads:
        workload.runtime = {"ready_replicas": 0, "restarts": 0, "pods": 0, "nodes": [], "zones": []}
        if workload.selector:
            key, value = next(iter(sorted(workload.selector.items())))
            by_selector_item.setdefault((workload.namespace, key, value), []).append(workload)
    for pod in runtime.get("pods") or ():
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        namespace, labels = metadata.get("namespace", "default"), metadata.get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
        for key, value in labels.items():
            for workload in by_selector_item.get((namespace, key, value), ()):
                if all(labels.get(k) == v for k, v in workload.selector.items()):
                    facts = workload.runtime
                    facts["pods"] += 1
                    facts["ready_replicas"] += ready
                    facts["restarts"] += restarts
                    if node and node not in facts["nodes"]:
                        facts["nodes"].append(node)
                    if node in zone_of and zone_of[node] not in facts["zones"]:
                        facts["zones"].append(zone_of[node])
    for workload in workloads:
        workload.runtime["nodes"].sort()
        workload.runtime["zones"].sort()
    ready_by_service: dict[tuple[str, str], int] = {}
    for endpoint_slice in runtime.get("endpointslices") or ():
        metadata = endpoint_slice.get("metadata") or {}
        service_name = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        key = (metadata.get("namespace", "default"), service_name)
        ready = sum(1 for e in endpoint_slice.get("endpoints") or ()
                    if (e.get("conditions") or {}).get("ready") is not False)
        ready_by_service[key] = ready_by_service.get(key, 0) + ready
    if "endpointslices" in runtime:
        for service in services:
            if service.selects:
                service.ready_endpoints = ready_by_service.get((service.namespace, service.name), 0)
    zones_in_cluster = len(set(zone_of.values()))
    for workload in workloads:
        workload.zones_in_cluster = zones_in_cluster


def _runtime_risks(workload: Workload) -> list[dict]:
    facts = workload.runtime
    risks = []
    if facts["ready_replicas"] < workload.replicas:
        severity = "high" if facts["ready_replicas"] == 0 else "medium"
        risks.append({"id": "not-ready", "severity": severity,
                      "message": f"{facts['ready_replicas']} of {workload.replicas} replicas ready"})
    if workload.replicas > 1 and facts["pods"] > 1 and len(facts["nodes"]) == 1:
        risks.append({"id": "all-replicas-one-node", "severity": "high",
                      "message": f"all {facts['pods']} pods run on node {facts['nodes'][0]}"})
    if workload.replicas > 1 and facts["pods"] > 1 and len(facts["zones"]) == 1 and workload.zones_in_cluster > 1:
        risks.append({"id": "all-replicas-one-zone", "severity": "medium",
                      "message": f"all {facts['pods']} pods run in zone {facts['zones'][0]}"})
    empty = sorted(s.name for s in workload.services if s.ready_endpoints == 0)
    if empty:
        risks.append({"id": "no-ready-endpoints", "severity": "high",
                      "message": f"Service {', '.join(empty)} has no ready endpoints"})
    return risks
