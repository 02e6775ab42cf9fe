"""The dependency graph of a Topology as Graphviz DOT or a Mermaid flowchart (chaos-inventory --format dot|mermaid).

Deterministic: nodes and edges in the Topology's sorted order; external hosts are drawn dashed. A Topology read
with telemetry (chaos-inventory --prometheus-url) also shows what the traffic said of each edge: observed edges
bold and blue, configured edges without traffic grey and labelled "no traffic", configured edges telemetry could
not judge as before.
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


OBSERVED, IDLE = "observed", "idle"
_OBSERVED_COLOUR, _IDLE_COLOUR = "#1f77b4", "#999999"


def _traffic(dependency: dict[str, Any]) -> str | None:
    """OBSERVED, IDLE, or None when no telemetry judged the edge (always None without --prometheus-url)."""
    records = [e for e in dependency["evidence"] if isinstance(e, dict)]
    if not records:
        return None
    return OBSERVED if any(r["requests"] > 0 for r in records) else IDLE


def _edge_label(dependency: dict[str, Any]) -> str:
    via = dependency["via"].rpartition("/")[2] if dependency["via"] else ""
    port = f":{dependency['port']}" if dependency["port"] else ""
    idle = " (no traffic)" if _traffic(dependency) == IDLE else ""
    return f"{via}{port}{idle}"


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
        traffic = _traffic(dependency)
        if traffic == OBSERVED:
            style += f', color="{_OBSERVED_COLOUR}", penwidth=2'
        elif traffic == IDLE:
            style += f', color="{_IDLE_COLOUR}", fontcolor="{_IDLE_COLOUR}"'
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
    link_styles = []
    for index, dependency in enumerate(topology["dependencies"]):
        traffic = _traffic(dependency)
        arrow = "==>" if traffic == OBSERVED else "-->" if dependency["hard"] else "-.->"
        label = _edge_label(dependency).replace("|", "#124;")
        lines.append(f"  {ids[dependency['from']]} {arrow}{f'|{label}|' if label else ''} {ids[dependency['to']]}")
        if traffic is not None:
            colour = _OBSERVED_COLOUR if traffic == OBSERVED else _IDLE_COLOUR
            link_styles.append(f"  linkStyle {index} stroke:{colour}")
    lines += link_styles
    lines.append("  classDef external stroke-dasharray: 5 5")
    return "\n".join(lines) + "\n"
