"""The dependency graph: hosts a workload's env, command, args and mounted ConfigMaps name, resolved to the workloads
behind Services or to external hosts. references.py finds the host names in text; this decides what they reach."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from chaos_inventory.fields import scalar_text
from chaos_inventory.model import DATA_TIERS, Container, Inputs, Service, Workload
from chaos_inventory.references import (
    HOST_TAKING_WORDS,
    NOT_HOSTS,
    SHELL_SEPARATORS,
    HostRef,
    hosts_in_token,
    hosts_in_value,
    is_local,
    normalise_key,
)
from chaos_inventory.telemetry import (
    EDGE_FAMILIES,
    IDLE_CONFIDENCE,
    OBSERVED_CONFIDENCE,
    Observation,
    idle_evidence,
    traffic_evidence,
)
from chaosgen.secrets import is_secret_name

# Schemes of synchronous calls or data stores: the caller cannot serve without the target.
_HARD_SCHEMES = frozenset({
    "http", "https", "grpc", "grpcs", "h2c", "postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv",
    "redis", "rediss", "memcached", "amqp", "amqps", "kafka", "nats", "cassandra", "jdbc:postgresql", "jdbc:mysql",
    "jdbc:mariadb", "jdbc:sqlserver", "jdbc:oracle",
})
ENV, COMMAND, COMMAND_CONTEXT, FILE = "env", "command", "command-context", "file"
# How much a bare Service name is worth where it appears without a host-like key; elsewhere it is no evidence.
_BARE_CONFIDENCE = {ENV: 0.6, COMMAND_CONTEXT: 0.8}
_CONFIG_FILE_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>;,]+"  # a URL
    r"|\b[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*:[0-9]{2,5}\b"  # host:port
)


@dataclass(slots=True)
class Edge:
    source: Workload
    to: str
    target: Workload | None
    via: Service | None
    port: int | None
    evidence: set[str]
    confidence: float
    hard_scheme: bool
    observed: list[dict] = field(default_factory=list)  # telemetry evidence records, in family order


def dependency_edges(workloads: list[Workload], inputs: Inputs) -> dict[tuple, Edge]:
    edges: dict[tuple, Edge] = {}
    config_file_cache: dict[tuple[str, str], list[tuple[str, HostRef]]] = {}
    for workload in workloads:
        for ref, evidence, origin in _references(workload, inputs, config_file_cache):
            _add_edges(edges, workload, ref, evidence, origin, inputs.services)
    return edges


def _references(workload: Workload, inputs: Inputs, config_file_cache: dict) -> Iterable[tuple[HostRef, str, str]]:
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
                for ref in hosts_in_value(scalar_text(item["value"]), key):
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
            prefix = scalar_text(item.get("prefix"))
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
            for token in scalar_text(word).replace(";", " ; ").split():
                if token in SHELL_SEPARATORS:
                    in_host_context, flag_key = False, None
                    continue
                origin = COMMAND_CONTEXT if in_host_context else COMMAND
                for ref in hosts_in_token(token, flag_key):
                    yield ref, f"{container.evidence_path}.{section}[{index}]", origin
                lowered = token.lower()
                in_host_context = lowered in HOST_TAKING_WORDS or (in_host_context and lowered.startswith("-"))
                flag_key = normalise_key(token) if token.startswith("-") and "=" not in token else None


def _config_file_hosts(
    namespace: str, name: str, inputs: Inputs, cache: dict[tuple[str, str], list[tuple[str, HostRef]]],
) -> list[tuple[str, HostRef]]:
    """URLs and host:port in the files of a mounted ConfigMap (nginx.conf's proxy_pass...), found once per map."""
    key = (namespace, name)
    if key not in cache:
        found: list[tuple[str, HostRef]] = []
        for config_key, text in sorted(inputs.configmaps.get(key, {}).items()):
            if not is_secret_name(config_key):
                for match in _CONFIG_FILE_ADDRESS.finditer(text):
                    found.extend((config_key, ref) for ref in hosts_in_token(match.group(0), None))
        cache[key] = found
    return cache[key]


def _add_edges(
    edges: dict[tuple, Edge], workload: Workload, ref: HostRef, evidence: str, origin: str,
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
            edges[key] = Edge(workload, to, target, via, port, {evidence}, confidence, ref.scheme in _HARD_SCHEMES)
        else:
            edge.evidence.add(evidence)
            edge.confidence = max(edge.confidence, confidence)
            edge.hard_scheme = edge.hard_scheme or ref.scheme in _HARD_SCHEMES
            if port is not None and (edge.port is None or port < edge.port):
                edge.port = port


def merge_observed(edges: dict[tuple, Edge], observation: Observation, workloads: dict[str, Workload]) -> tuple[int, int]:
    """Telemetry into the configured graph; returns (edges added, edges demoted). Called by core.build_topology.

    A configured edge with traffic gets its evidence and high confidence; traffic no configuration shows (code,
    service discovery) becomes an edge; a configured edge without traffic, while one family covers both ends,
    falls below 0.5."""
    configured: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges.values():
        if edge.target is not None:
            configured.setdefault((edge.source.id, edge.target.id), []).append(edge)
    added = 0
    for (source_id, target_id), traffic in observation.edges.items():
        evidence = [traffic_evidence(t, observation.window) for t in traffic]
        hard = any(t.hard and t.errors is not None for t in traffic)
        matches = configured.get((source_id, target_id))
        if matches is None:
            target = workloads[target_id]
            via = min(target.services, key=lambda s: s.id, default=None)
            port = via.ports[0]["port"] if via is not None and len(via.ports) == 1 else None
            matches = [Edge(workloads[source_id], target_id, target, via, port, set(), OBSERVED_CONFIDENCE, hard)]
            edges[(source_id, target_id, via.id if via else None, False)] = matches[0]
            added += 1
        for edge in matches:
            edge.observed = evidence
            edge.confidence = max(edge.confidence, OBSERVED_CONFIDENCE)
    idle = 0
    for (source_id, target_id), matches in configured.items():
        if (source_id, target_id) in observation.edges:
            continue
        both = observation.coverage.get(source_id, set()) & observation.coverage.get(target_id, set())
        family = next((f for f in EDGE_FAMILIES if f in both), None)
        if family is None:
            continue
        for edge in matches:
            edge.observed = [idle_evidence(family, observation.metrics, observation.window)]
            edge.confidence = min(edge.confidence, IDLE_CONFIDENCE)
        idle += 1
    return added, idle


def edge_records(edges: dict[tuple, Edge], workloads: dict[str, Workload]) -> list[dict]:
    records = []
    for edge in edges.values():
        records.append({
            "from": edge.source.id,
            "to": edge.to,
            "external": edge.target is None,
            "via": edge.via.id if edge.via else None,
            "port": edge.port,
            "evidence": [*sorted(edge.evidence), *edge.observed],
            "confidence": edge.confidence,
            "hard": edge.hard_scheme or (edge.target is not None and edge.target.tier in DATA_TIERS),
        })
    records.sort(key=lambda d: (d["from"], d["external"], d["to"], d["via"] or ""))
    return records


def external_hosts(dependencies: list[dict]) -> list[dict]:
    hosts: dict[str, set[str]] = {}
    for dependency in dependencies:
        if dependency["external"]:
            hosts.setdefault(dependency["to"], set()).add(dependency["from"])
    return [{"host": host, "referenced_by": sorted(callers)} for host, callers in sorted(hosts.items())]
