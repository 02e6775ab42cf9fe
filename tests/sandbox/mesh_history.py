"""An hour of mesh traffic as OpenMetrics, for promtool to backfill into the test Prometheus: the series Istio,
Linkerd or the OpenTelemetry servicegraph connector would have exported for given caller -> target edges.

Used by tests/test_inventory_prometheus.py and benchmarks/telemetry_inventory.py; the label sets are the ones
chaos_inventory/telemetry.py reads (see its docstring for the sources)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SAMPLES = 6  # points over the window; the counter grows linearly to `requests`
SPAN_SECONDS = 50 * 60  # inside the 1h window and the test Prometheus's 1h retention


@dataclass(frozen=True)
class Call:
    """requests (and errors of them) from workload (namespace, name) to workload (namespace, name)."""

    source: tuple[str, str]
    target: tuple[str, str]
    requests: int
    errors: int = 0
    kind: str = "Deployment"  # the target's kind, for Linkerd's dst_<kind> label


def _istio(call: Call) -> Iterator[tuple[str, dict[str, str], int]]:
    for reporter in ("source", "destination"):  # both proxies report every edge
        base = {"reporter": reporter, "source_workload": call.source[1], "source_workload_namespace": call.source[0],
                "destination_workload": call.target[1], "destination_workload_namespace": call.target[0],
                "destination_service_name": call.target[1]}
        yield "istio_requests", {**base, "response_code": "200"}, call.requests - call.errors
        if call.errors:
            yield "istio_requests", {**base, "response_code": "503"}, call.errors


def _linkerd(call: Call) -> Iterator[tuple[str, dict[str, str], int]]:
    base = {"direction": "outbound", "namespace": call.source[0], "deployment": call.source[1],
            "dst_namespace": call.target[0], f"dst_{call.kind.lower()}": call.target[1]}
    yield "response", {**base, "classification": "success"}, call.requests - call.errors
    if call.errors:
        yield "response", {**base, "classification": "failure"}, call.errors


def _servicegraph(call: Call) -> Iterator[tuple[str, dict[str, str], int]]:
    base = {"client": call.source[1], "server": call.target[1], "connection_type": ""}
    yield "traces_service_graph_request", base, call.requests
    if call.errors:
        yield "traces_service_graph_request_failed", base, call.errors


FAMILIES = {"istio": _istio, "linkerd": _linkerd, "servicegraph": _servicegraph}


def openmetrics(calls: Iterable[Call], family: str, now: float, noise: bool = True) -> str:
    """The OpenMetrics text of the calls' counters in one family, ending before now; with noise, the series no
    edge may come from: Prometheus scraping, an unknown caller, a self-loop."""
    calls = list(calls)
    if noise and calls:
        some = calls[0].target
        calls += [Call(("monitoring", "prometheus"), some, 500), Call(("", "unknown"), some, 40), Call(some, some, 9)]
    by_family: dict[str, list[str]] = {}
    start = int(now) - SPAN_SECONDS
    for call in calls:
        for name, labels, total in FAMILIES[family](call):
            text = ",".join(f'{key}="{value}"' for key, value in labels.items())
            points = by_family.setdefault(name, [])
            for index in range(SAMPLES):
                at = start + index * (SPAN_SECONDS - 60) // (SAMPLES - 1)
                points.append(f"{name}_total{{{text}}} {total * index // (SAMPLES - 1)} {at}")
    lines = []
    for name, points in by_family.items():
        lines.append(f"# TYPE {name} counter")
        lines += points
    return "\n".join(lines + ["# EOF"]) + "\n"
