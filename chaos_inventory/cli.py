"""chaos-inventory: a Topology of an application from its Kubernetes manifests."""

from __future__ import annotations

import logging
import re

import click

from chaos_inventory import core, render, telemetry
from chaos_inventory.manifests import load_manifests
from chaosgen.boundary import stage_options, validated_output, write_stdout
from chaosgen.documents import dump_json
from chaosgen.errors import EnvironmentFailure, UsageError
from chaosgen.prometheus import PrometheusClient

TOOL = "chaos-inventory"
FORMATS = {"json": dump_json, "dot": render.to_dot, "mermaid": render.to_mermaid}
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
log = logging.getLogger(TOOL)


def _namespace(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _NAMESPACE.match(value) or len(value) > 63:
        raise click.BadParameter(f"{value!r} is not a valid namespace name")
    return value


def _window(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not telemetry.DURATION.match(value):
        raise click.BadParameter(f"{value!r} is not a Prometheus duration such as 30m, 1h or 1d")
    return value


def read_telemetry(client: PrometheusClient, window: str) -> telemetry.Readings:
    """The families Prometheus has (one metric-name look-up) and the answers of telemetry.plan's queries."""
    metrics = telemetry.detected(client.label_values("__name__"))
    queries = telemetry.plan(metrics, window)
    answers = {q.id: [{"labels": s.labels, "value": s.value} for s in client.instant(q.promql)] for q in queries}
    log.info("telemetry: %s from %d queries", ", ".join(metrics) or "no known family", len(queries) + 1)
    return telemetry.Readings(window, metrics, queries, answers)


def _namespaces(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_namespace(ctx, param, value) for value in values)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-inventory -f k8s/3tier-app.yaml > topology.json
  chaos-inventory -n shop --context staging --strict
  chaos-inventory -f app.yaml --format mermaid""")
@click.option("-f", "--filename", "filenames", multiple=True, metavar="FILE|DIR|-",
              help="Manifest file (multi-document YAML or JSON), directory of them, or - for stdin. Repeatable. "
                   "Without -f, the cluster of the current kubeconfig context is read.")
@click.option("-n", "--namespace", "namespaces", multiple=True, callback=_namespaces,
              help="With -f: namespace of objects that set none [default: default]. Live: read only this "
                   "namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Live: read every namespace (the default without -n).")
@click.option("--exclude-namespace", "exclude_namespaces", multiple=True, callback=_namespaces,
              help="Live: leave this namespace out (repeatable).")
@click.option("-l", "--selector", help="Live: only objects with these labels (ConfigMaps and Nodes are always read).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Live: kubeconfig file [default: $KUBECONFIG, ~/.kube/config].")
@click.option("--context", help="Live: kubeconfig context [default: the current one].")
@click.option("--format", "output_format", type=click.Choice(sorted(FORMATS)), default="json", show_default=True,
              help="json: the Topology document; dot or mermaid: its dependency graph.")
@click.option("--prometheus-url", envvar="PROMETHEUS_URL",
              help="Also read who calls whom from the traffic metrics in this Prometheus (Istio, Linkerd, "
                   "OpenTelemetry service graph, the app convention) [env PROMETHEUS_URL].")
@click.option("--telemetry-window", default="1h", show_default=True, callback=_window,
              help="With --prometheus-url: the traffic of this long before now counts.")
@click.option("--strict", is_flag=True,
              help="Live: a namespace given with -n in which nothing is found is an error (exit 4), not a warning.")
@stage_options(TOOL)
def main(filenames: tuple[str, ...], namespaces: tuple[str, ...], all_namespaces: bool,
         exclude_namespaces: tuple[str, ...], selector: str | None, kubeconfig: str | None, context: str | None,
         output_format: str, prometheus_url: str | None, telemetry_window: str, strict: bool) -> None:
    """Find the workloads, Services and dependencies of an application in its manifests or a live cluster;
    print a Topology."""
    notes: list[str] = []
    if filenames:
        live_only = [flag for flag, given in (("-A", all_namespaces), ("--exclude-namespace", exclude_namespaces),
                                              ("-l", selector), ("--kubeconfig", kubeconfig), ("--context", context),
                                              ("--strict", strict))
                     if given]
        if live_only:
            raise UsageError(f"{live_only[0]} is only for a live cluster (without -f)")
        if len(namespaces) > 1:
            raise UsageError("-n names one default namespace with -f; several are only for a live cluster")
    elif all_namespaces and namespaces:
        raise UsageError("-A and -n exclude each other")
    readings = None
    if prometheus_url:
        # One look-up, a handful of aggregate queries over the window: worth a longer timeout than chaos-watch's.
        readings = read_telemetry(PrometheusClient(prometheus_url, timeout=30.0, attempts=3), telemetry_window)
    if filenames:
        manifests = load_manifests(filenames, namespaces[0] if namespaces else "default")
        try:
            topology = core.build_topology(manifests.objects, {"type": "files", "files": list(filenames)},
                                           readings=readings)
        except core.MalformedObject as e:
            if e.index is None:  # build_topology sets it on every MalformedObject it lets out: a bug
                raise
            raise manifests.origins[e.index].rejection(e) from e
        warnings = manifests.warnings + topology["metadata"].get("warnings", [])
        if warnings:
            topology["metadata"]["warnings"] = warnings
        notes = manifests.notes
    else:
        from chaos_inventory import cluster  # the kubernetes package is only loaded for live reads

        scope = cluster.Scope(namespaces, exclude_namespaces, selector)
        topology = cluster.inventory(cluster.KubeconfigReader(kubeconfig, context), scope, readings)
        empty = empty_namespaces(topology, namespaces)
        if empty and strict:
            raise EnvironmentFailure("; ".join(empty))
        warnings = topology["metadata"].get("warnings", []) + empty
        if warnings:
            topology["metadata"]["warnings"] = warnings
    for note in notes:
        log.info(note)
    for warning in warnings:
        log.warning(warning)
    write_stdout(FORMATS[output_format](validated_output(topology)))


def empty_namespaces(topology: dict, namespaces: tuple[str, ...]) -> list[str]:
    """A warning for each namespace asked for with -n that holds no workload and no Service: most often one that does
    not exist (a typo), which the list calls cannot tell from an empty one, as the read-only role may not read
    Namespaces."""
    found = {item["namespace"] for item in topology["workloads"] + topology["services"]}
    return [f"nothing found in namespace {namespace} (no workload, no Service): does it exist?"
            for namespace in namespaces if namespace not in found]
