"""The dependency graph of a Topology as Graphviz DOT or a Mermaid flowchart (chaos-inventory --format dot|mermaid).

Deterministic: nodes and edges in the Topology's sorted order; external hosts are drawn dashed.
"""

from __future__ import annotations

from typing import Any


def _nodes(topology: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(workload id, label) for every workload, and the external hosts; labels carry the namespace when several."""
    workloads = topology["workloads"]
    several_namespaces = len({w["namespace"] for w in workloads}) > 1
    nodes = [
        (w["id"], f"{w['namespace'] + '/' if several_namespaces else ''}{w['name']}\n{w['tier']}") for w in workloads
    ]
    return nodes, [e["host"] for e in topology.get("external", [])]


def _edge_label(dependency: dict[str, Any]) -> str:
    via = dependency["via"].rpartition("/")[2] if dependency["via"] else ""
    port = f":{dependency['port']}" if dependency["port"] else ""
    return f"{via}{port}"


def to_dot(topology: dict[str, Any]) -> str:
    """Graphviz: `chaos-inventory -f app.yaml --format dot | dot -Tsvg > graph.svg`."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    nodes, external = _nodes(topology)
    lines = ["digraph topology {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    lines += [f"  {quote(node_id)} [label={quote(label)}];" for node_id, label in nodes]
    lines += [f"  {quote(host)} [label={quote(host + chr(10) + 'external')}, shape=ellipse, style=dashed];"
              for host in external]
    for dependency in topology["dependencies"]:
        style = "" if dependency["hard"] else ", style=dashed"
        lines.append(f"  {quote(dependency['from'])} -> {quote(dependency['to'])} "
                     f"[label={quote(_edge_label(dependency))}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(topology: dict[str, Any]) -> str:
    """A Mermaid flowchart, e.g. for a Markdown report; node ids are positional (w0, x0) since ids hold slashes."""

    def text(label: str) -> str:
        return label.replace('"', "#quot;").replace("\n", "<br/>")

    nodes, external = _nodes(topology)
    ids = {node_id: f"w{index}" for index, (node_id, _) in enumerate(nodes)}
    ids.update({host: f"x{index}" for index, host in enumerate(external)})
    lines = ["flowchart LR"]
    lines += [f'  {ids[node_id]}["{text(label)}"]' for node_id, label in nodes]
    lines += [f'  {ids[host]}(["{text(host)}"]):::external' for host in external]
    for dependency in topology["dependencies"]:
        arrow = "-->" if dependency["hard"] else "-.->"
        label = _edge_label(dependency).replace("|", "#124;")
        lines.append(f"  {ids[dependency['from']]} {arrow}{f'|{label}|' if label else ''} {ids[dependency['to']]}")
    lines.append("  classDef external stroke-dasharray: 5 5")
    return "\n".join(lines) + "\n"
