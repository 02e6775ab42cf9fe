"""The dependency graph of an experiment's target: its callers and what it calls, the blast radius highlighted,
laid out in columns for the HTML report's SVG (templates/graph.svg.j2 draws it).

Written here rather than taken from a library: pygal has no network chart, Graphviz needs a system binary, and
networkx's layouts need numpy and draw nothing. The neighbourhood is small (a target, its callers up to the blast
radius, its direct callees), so a column per distance from the target, sorted by name, is readable and
deterministic.
"""

from __future__ import annotations

from typing import Any

COLUMN_WIDTH = 240
ROW_HEIGHT = 56
BOX_WIDTH = 200
BOX_HEIGHT = 34
MARGIN = 16


def neighbourhood(e: dict[str, Any], topology: dict[str, Any] | None) -> dict[str, Any] | None:
    """Nodes (with column, row, role) and edges around e's target; None for an experiment without a target.

    From the Topology when given: every caller up to the blast radius (left, by distance) and the direct
    callees (right). Without one, from the RunResult's blast radius: each workload in it depends on the target,
    directly or transitively (dashed edges, the path unknown).
    """
    target = e.get("target")
    if not target:
        return None
    radius = set((e.get("blast_radius") or {}).get("workloads") or []) - {target}
    column = {target: 0}
    edges: list[dict[str, Any]] = []
    if topology is not None:
        dependencies = [d for d in topology.get("dependencies") or [] if not d["external"]]
        callers: dict[str, list[str]] = {}
        for d in dependencies:
            callers.setdefault(d["to"], []).append(d["from"])
        frontier, distance = [target], 0
        while frontier:
            distance += 1
            frontier = sorted({c for node in frontier for c in callers.get(node, []) if c not in column
                               and (distance == 1 or c in radius)})
            column.update({node: -distance for node in frontier})
        column.update({d["to"]: 1 for d in dependencies if d["from"] == target and d["to"] not in column})
        edges = [{"from": d["from"], "to": d["to"], "known": True} for d in dependencies
                 if d["from"] in column and d["to"] in column]
    for node in sorted(radius - set(column)):
        column[node] = -1
        edges.append({"from": node, "to": target, "known": False})
    return _layout(column, edges, target, radius)


def _layout(column: dict[str, int], edges: list[dict[str, Any]], target: str, radius: set[str]) -> dict[str, Any]:
    first = min(column.values())
    rows: dict[int, list[str]] = {}
    for node in sorted(column):
        rows.setdefault(column[node], []).append(node)
    height = max(len(names) for names in rows.values()) * ROW_HEIGHT + MARGIN
    nodes: dict[str, dict[str, Any]] = {}
    for col, names in rows.items():
        offset = (height - len(names) * ROW_HEIGHT) / 2
        for row, node in enumerate(names):
            nodes[node] = {
                "id": node, "label": node.split("/", 1)[-1], "x": MARGIN + (col - first) * COLUMN_WIDTH,
                "y": offset + row * ROW_HEIGHT + (ROW_HEIGHT - BOX_HEIGHT) / 2,
                "role": "target" if node == target else "blast-radius" if node in radius else "neighbour",
            }
    lines = []
    for edge in sorted(edges, key=lambda d: (d["from"], d["to"])):
        a, b = nodes[edge["from"]], nodes[edge["to"]]
        forward = b["x"] >= a["x"]
        lines.append({**edge, "x1": a["x"] + (BOX_WIDTH if forward else 0), "y1": a["y"] + BOX_HEIGHT / 2,
                      "x2": b["x"] + (0 if forward else BOX_WIDTH), "y2": b["y"] + BOX_HEIGHT / 2})
    width = (max(column.values()) - first) * COLUMN_WIDTH + BOX_WIDTH + 2 * MARGIN
    return {"nodes": sorted(nodes.values(), key=lambda n: n["id"]), "edges": lines, "width": width, "height": height,
            "box_width": BOX_WIDTH, "box_height": BOX_HEIGHT}
