"""chaos-litmus: an ExperimentPlan in, LitmusChaos 3.x manifests out (ChaosEngines, optionally with their
ChaosExperiments and RBAC), checked against the CRD schema and, with --validate, by the cluster itself."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import click

from chaos_litmus import catalogue, core, crd
from chaosgen.boundary import read_document, stage_options, write_stdout
from chaosgen.documents import display_name, dump_json, dump_yaml_stream
from chaosgen.errors import UsageError
from chaosgen.policy import load_policy

TOOL = "chaos-litmus"
log = logging.getLogger(TOOL)


def _checked_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--prometheus-endpoint must be an http(s) URL, got {endpoint!r}")
    if parts.username or parts.password:
        # The endpoint is written into every engine; credentials belong in Litmus's probe auth secrets.
        raise UsageError("--prometheus-endpoint must not carry credentials (user:password@)")
    return endpoint


def as_list(documents: list[dict]) -> dict:
    """--format json: a Kubernetes v1 List, as `kubectl get -o json` prints one."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": documents}


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-suggest -n 3 < topology.json | chaos-litmus --with-experiments --with-rbac
  chaos-litmus -f plan.json --format json --prometheus-endpoint http://prometheus.monitoring:9090
  chaos-litmus -f plan.json --validate --context staging""")
@click.option("-f", "--filename", default="-", show_default=True, help="ExperimentPlan (JSON or YAML); - is stdin.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Safety policy (YAML) over the defaults.")
@click.option("--prometheus-endpoint", envvar="PROMETHEUS_URL", default=core.DEFAULT_PROMETHEUS_ENDPOINT,
              show_default=True, help="Prometheus URL the probes query, as seen from the cluster [env PROMETHEUS_URL].")
@click.option("--with-experiments", is_flag=True, help="Add the ChaosExperiment definitions of the faults used.")
@click.option("--with-rbac", is_flag=True, help="Add the ServiceAccount/Role/RoleBinding each fault needs.")
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="Multi-document YAML, or JSON as a Kubernetes v1 List.")
@click.option("--job-cleanup-policy", type=click.Choice(core.JOB_CLEANUP_POLICIES), default="delete",
              show_default=True, help="Whether Litmus deletes or keeps its experiment jobs afterwards.")
@click.option("--container-runtime", type=click.Choice(sorted(core.CONTAINER_RUNTIMES)), default="containerd",
              show_default=True, help="The nodes' container runtime, for runtime faults (container-kill, hogs, network).")
@click.option("--socket-path", help="The runtime's socket on the nodes [default: the runtime's usual one, e.g. "
              "/run/containerd/containerd.sock; k3s: /run/k3s/containerd/containerd.sock].")
@click.option("--validate", is_flag=True, help="Server-side dry-run apply of every object against the cluster.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig for --validate [default: $KUBECONFIG, ~/.kube/config].")
@click.option("--context", help="Kubeconfig context for --validate [default: the current one].")
@stage_options(TOOL)
def main(filename: str, policy_file: str | None, prometheus_endpoint: str, with_experiments: bool, with_rbac: bool,
         output_format: str, job_cleanup_policy: str, container_runtime: str, socket_path: str | None, validate: bool,
         kubeconfig: str | None, context: str | None) -> None:
    """Turn an ExperimentPlan into LitmusChaos 3.x manifests on stdout.

    Runtime faults run privileged helper pods (hostPath socket, hostPID): their namespace's Pod Security level
    must admit them (privileged).
    """
    problem = socket_path and core.socket_path_problem(socket_path)
    if problem:
        raise UsageError(problem)
    options = core.Options(
        prometheus_endpoint=_checked_endpoint(prometheus_endpoint), job_cleanup_policy=job_cleanup_policy,
        with_experiments=with_experiments, with_rbac=with_rbac, container_runtime=container_runtime,
        socket_path=socket_path,
    )
    plan = read_document(filename, "ExperimentPlan", TOOL)
    core.check_plan(plan, load_policy(policy_file), display_name(filename))
    rendering = core.render(plan, options, catalogue.definitions())
    for warning in rendering.warnings:
        log.warning(warning)
    if not plan["experiments"]:
        log.warning("the plan has no experiments; nothing to render")
    crd.check_engines(rendering.documents)
    if validate:
        from chaos_litmus.validate import dry_run_apply  # the kubernetes client is only loaded when needed

        dry_run_apply(rendering.documents, kubeconfig, context)
    if output_format == "json":
        write_stdout(dump_json(as_list(rendering.documents)))
    else:
        write_stdout(dump_yaml_stream(rendering.documents))
