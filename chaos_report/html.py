"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched) that opens offline.

Per experiment: the timeline plot (timeline.py), the dependency graph of the target with its blast radius
(graph.py, drawn by templates/graph.svg.j2), the scores, the events and the root causes; the summary table on top.
Jinja2 autoescapes every string of the RunResult; only the SVG built here is marked safe.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from chaos_report import graph, timeline
from chaos_report.core import describe_kube_event, notable_kube_events, timeline_events

_ENVIRONMENT = Environment(loader=PackageLoader("chaos_report", "templates"),
                           autoescape=select_autoescape(default=True, default_for_string=True),
                           trim_blocks=False, keep_trailing_newline=True)


def render(summary: dict[str, Any], topology: dict[str, Any] | None) -> str:
    """The report for chaos_report.core.summary's facts; topology (--topology) draws the graphs, else the blast radius."""
    experiments = []
    for e in summary["experiments"]:
        plot = timeline.svg(e)
        neighbourhood = graph.neighbourhood(e, topology)
        key = re.sub(r"[^a-zA-Z0-9-]", "-", f"{e['run']}-{e['id']}")
        drawn = (_ENVIRONMENT.get_template("graph.svg.j2").render(g=neighbourhood, key=key, target=e["target"])
                 if neighbourhood else None)
        experiments.append({**e, "timeline_svg": Markup(plot) if plot else None,  # pygal escapes its text
                            "graph_svg": Markup(drawn) if drawn else None,  # rendered with autoescape
                            "timeline": timeline_events(e),
                            "kube": [describe_kube_event(k) for k in notable_kube_events(e)]})
    return _ENVIRONMENT.get_template("report.html.j2").render(s={**summary, "experiments": experiments},
                                                              topology=topology is not None)
