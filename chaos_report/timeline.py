"""The timeline plot of one experiment: each abort threshold's value over time, its limit, and the marks of what
happened (injected, breach, abort requested, Litmus stopped, recovered), as an inline SVG for the HTML report.

pygal draws it (axes, scales, legend, escaping); what is left here is choosing the series. Its output is made
deterministic and self-contained: the chart id comes from the experiment, not a random uuid, and the dated
comments and the script (tooltips it would load from the network) are removed, so the report opens offline with
no script at all.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pygal
from pygal.style import Style

from chaos_report.core import timeline_events

# Event type -> the mark's legend word. Marks are vertical lines across the plot.
MARKS = {
    "injected": "injected", "breach": "breach", "stop-requested": "abort requested", "stopped": "Litmus stopped",
    "stopped-externally": "stopped from outside", "recovered": "recovered", "not-recovered": "not recovered",
}
SERIES_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#17becf")
THRESHOLD_COLOUR = "#d62728"
MARK_COLOURS = {"injected": "#7f7f7f", "breach": "#d62728", "stop-requested": "#ff7f0e", "stopped": "#bcbd22",
                "stopped-externally": "#ff7f0e", "recovered": "#2ca02c", "not-recovered": "#d62728"}


def svg(e: dict[str, Any]) -> str | None:
    """The experiment's timeline as an <svg> element; None when it has no threshold samples to plot."""
    if not e["samples"]:
        return None
    values = [s["value"] for s in e["samples"] if s["value"] is not None] + [t["value"] for t in e["thresholds"]]
    top = max([*values, 0.0]) * 1.15 or 1.0
    bottom = min([*values, 0.0])
    events = [event for event in timeline_events(e) if event["type"] in MARKS]
    end = max([s["t"] for s in e["samples"]] + [event["t"] for event in events] + [1.0])
    # pygal colours series by position: the palette is built in the order the series are added.
    colours = [colour for index, _ in enumerate(e["thresholds"])
               for colour in (SERIES_COLOURS[index % len(SERIES_COLOURS)], THRESHOLD_COLOUR)]
    colours += [MARK_COLOURS[event["type"]] for event in events]
    style = Style(background="white", plot_background="white", font_family="sans-serif", colors=tuple(colours))
    legend_rows = -(-len(colours) // 3)
    chart = pygal.XY(js=[], width=900, height=320 + 34 * legend_rows, explicit_size=True, show_dots=False, style=style,
                     range=(bottom, top), xrange=(0, end), legend_at_bottom=True, legend_at_bottom_columns=3,
                     x_title="seconds since the experiment started", truncate_legend=60, print_values=False)
    chart.uuid = f"timeline-{e['run']}-{e['id']}"
    for t in e["thresholds"]:
        series = [(s["t"], s["value"]) for s in e["samples"] if s["name"] == t["name"]]
        chart.add(t["name"], series, stroke_style={"width": 2})
        chart.add(f"{t['name']} threshold ({t['operator']} {t['value']:g})", [(0, t["value"]), (end, t["value"])],
                  stroke_style={"width": 1.5, "dasharray": "6,4"})
    for event in events:
        chart.add(f"{MARKS[event['type']]} +{event['t']:g}s", [(event["t"], bottom), (event["t"], top)],
                  stroke_style={"width": 1.5, "dasharray": "2,3"})
    return _self_contained(chart.render_tree())


def _self_contained(root: ET.Element) -> str:
    """The SVG without pygal's dated comments and its script; deterministic and inert."""
    for parent in list(root.iter()):
        for child in list(parent):
            if callable(child.tag) or child.tag in ("script", "{http://www.w3.org/2000/svg}script"):  # a comment's tag is ET.Comment
                parent.remove(child)
    return ET.tostring(root, encoding="unicode")
