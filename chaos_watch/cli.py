"""chaos-watch: run chaos-litmus output against the cluster, abort on Prometheus thresholds, report a RunResult.

    chaos-litmus ... | chaos-watch --prometheus-url http://127.0.0.1:9090
    chaos-watch cleanup            # stop whatever a killed run left behind (reads the run journal)
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from chaos_watch import core
from chaos_watch.cluster import KubernetesCluster
from chaos_watch.journal import FileJournal, NoJournal, default_state_dir, run_is_alive, unfinished_runs
from chaos_watch.leftovers import stop_leftovers
from chaos_watch.litmus import LitmusBackend
from chaos_watch.runner import Runner, Settings
from chaosgen import __version__
from chaosgen.boundary import configure_logging, run, write_document
from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import Interrupted, UsageError
from chaosgen.policy import load_policy
from chaosgen.prometheus import PrometheusClient
from chaosgen.units import parse_duration

TOOL = "chaos-watch"


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def cluster_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--kubeconfig, --context and --state-dir: what both the run and `cleanup` need to find the cluster and journal."""
    for option in reversed([
        click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file [env KUBECONFIG; default ~/.kube/config]."),
        click.option("--context", help="Kubeconfig context (default: the current one)."),
        click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CHAOSGEN_STATE_DIR",
                     help="Where run journals go [env CHAOSGEN_STATE_DIR; default $XDG_STATE_HOME/chaosgen/runs]."),
    ]):
        function = option(function)
    return function


def boundary_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--debug and -v for the group (it cannot use stage_options, whose run() would exit before a subcommand)."""
    function = click.option("--debug", is_flag=True, help="Show the traceback of an error.")(function)
    return click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")(function)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-litmus --with-experiments < plan.json | chaos-watch --prometheus-url http://127.0.0.1:9090 > run.json
  chaos-watch -f engines.yaml --dry-run
  chaos-watch -f engines.yaml --parallel 2 --events --recovery-timeout 2m""")
@click.option("-f", "--filename", default="-", show_default=True, help="chaos-litmus output (YAML or JSON); - is stdin.")
@click.option("--prometheus-url", envvar="PROMETHEUS_URL", help="Prometheus base URL [env PROMETHEUS_URL].")
@click.option("--interval", default="2s", show_default=True, callback=_duration, help="How often thresholds are evaluated.")
@click.option("--timeout", default=None, callback=_duration,
              help="Abort an engine that has not completed after this long [default: its chaos duration + 2m].")
@click.option("--recovery-timeout", default="5m", show_default=True, callback=_duration,
              help="How long to wait for the target and thresholds to recover after the chaos.")
@click.option("--on-metrics-loss", type=click.Choice(["abort", "continue"]), default="abort", show_default=True,
              help="What to do when Prometheus stops answering during chaos.")
@click.option("--dry-run", is_flag=True, help="Preflight and server-side dry-run apply only; no chaos.")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True, help="Experiments run at once.")
@click.option("--events", is_flag=True, help="Progress as JSON Lines on stderr.")
@click.option("--allow-inert-thresholds", is_flag=True,
              help="Run experiments whose abort thresholds read metrics with no series (they can never fire); "
                   "a warning per threshold. Without it such an experiment is an error.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), help="Safety policy file (YAML/JSON).")
@cluster_options
@boundary_options
@click.version_option(__version__, prog_name=TOOL)
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: int, **options: Any) -> None:
    """Apply ChaosEngines, guard them with Prometheus thresholds, measure recovery; a RunResult on stdout.

    Exit 0 when every hypothesis held; 5 when any deviated, was aborted (also by someone else) or was skipped by
    its preflight; 4 on an environment failure, including a fault the engine could not inject; 3 on bad input;
    130 when interrupted (the engines are stopped first).
    """
    ctx.obj = {"debug": debug, "verbose": verbose}
    if ctx.invoked_subcommand is None:
        configure_logging(TOOL, verbose)
        run(TOOL, lambda: watch(**options), debug)


def watch(filename: str, prometheus_url: str | None, interval: float, timeout: float | None,
          recovery_timeout: float, on_metrics_loss: str, dry_run: bool, parallel: int, events: bool,
          allow_inert_thresholds: bool, policy_path: str | None, kubeconfig: str | None, context: str | None,
          state_dir: Path | None) -> int:
    """The run: read and check the input, run the engines, write the RunResult, return the exit code."""
    source = display_name(filename)
    objects = core.split_documents(parse_documents(read_bytes(filename), source), source)
    engines = core.parse_engines(objects, source)
    support = [o for o in objects if o.get("kind") != "ChaosEngine"]
    policy = load_policy(policy_path)
    if interval <= 0:
        raise UsageError("--interval must be more than 0s")
    if any(e.thresholds for e in engines) and not prometheus_url:
        raise UsageError("the engines have abort thresholds: give --prometheus-url or set PROMETHEUS_URL")

    cluster = KubernetesCluster(kubeconfig, context)
    cluster.connect()
    run_id = _run_id()
    journal = NoJournal() if dry_run else FileJournal(state_dir or default_state_dir(), run_id)
    settings = Settings(interval=interval, timeout=timeout, recovery_timeout=recovery_timeout,
                        on_metrics_loss=on_metrics_loss, dry_run=dry_run, parallel=parallel,
                        allow_inert_thresholds=allow_inert_thresholds)
    # A short timeout and one retry: during chaos a slow answer is as bad as none, but one dropped request is not
    # yet a lost Prometheus.
    metrics = PrometheusClient(prometheus_url, timeout=2.0, attempts=2, connections=parallel) if prometheus_url else None
    progress = Progress(events)
    runner = Runner(cluster, LitmusBackend(cluster), metrics, journal, policy, settings, emit=progress)
    interrupted: Interrupted | None = None
    started_at = core.iso_utc(time.time())
    try:
        observations = runner.run(engines, support)
    except Interrupted as e:
        interrupted = e
        observations = runner.last_observations
    finally:
        progress.close()
    results = [core.experiment_result(o, core.iso_utc) for o in observations]
    document = core.run_result(
        results, f"{TOOL} {__version__}",
        {"type": "stdin" if filename == "-" else "files", **({} if filename == "-" else {"files": [filename]}),
         "server": cluster.server(), **({"context": context} if context else {})},
        journal.path, dry_run, {"id": run_id, "started_at": started_at},
    )
    write_document(document)
    if interrupted is not None:
        raise interrupted
    return core.exit_code(document)


def _run_id() -> str:
    """Sortable and unique per process: the journal file's name and the RunResult's run.id."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"


class Progress:
    """Where the runner's events go on stderr. --events: every event as a JSON line. Otherwise a full line for each
    finished experiment and each problem, whatever stderr is, and on a terminal a status line overwritten in place
    for the rest; close() ends a pending status line so that what follows starts on a line of its own."""

    # Problems worth a line of their own (a failed preflight check is in its experiment's verdict line).
    LINE_TYPES = frozenset({"error", "metrics-loss", "stop-failed", "stop-unconfirmed", "stopped-externally",
                            "not-recovered"})

    def __init__(self, events: bool, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.events = events
        self.tty = self.stream.isatty()
        self._pending = False
        self._lock = threading.Lock()

    def __call__(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self.events:
                self._write(json.dumps(entry, sort_keys=True) + "\n")
            elif entry["type"] == "verdict":
                self._line(f"{TOOL}: {entry['experiment']}: {entry['message']}")
            elif entry["type"] in self.LINE_TYPES:
                self._line(self._describe(entry))
            elif self.tty:
                self._write(f"\r\033[K{self._describe(entry)[:200]}")
                self._pending = True

    def close(self) -> None:
        with self._lock:
            if self._pending:
                self._write("\n")
                self._pending = False

    def _line(self, text: str) -> None:
        self._write(("\r\033[K" if self._pending else "") + text + "\n")
        self._pending = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    @staticmethod
    def _describe(entry: dict[str, Any]) -> str:
        return f"{TOOL}: {entry['experiment']} +{entry['t']:.1f}s {entry['type']}: {entry['message']}"


@main.command(epilog="""\b
Examples:
  chaos-watch cleanup
  chaos-watch cleanup --delete --wait 2m
  chaos-watch cleanup --force --state-dir /var/lib/chaosgen/runs""")
@click.option("--delete", is_flag=True, help="Also delete the objects the run created (not those it only updated).")
@click.option("--wait", "wait_seconds", default="60s", show_default=True, callback=_duration,
              help="How long to wait for each engine to report stopped.")
@click.option("--force", is_flag=True,
              help="Also stop runs whose chaos-watch still runs, or that this host cannot check (another host).")
@cluster_options
@click.pass_context
def cleanup(ctx: click.Context, delete: bool, wait_seconds: float, force: bool, kubeconfig: str | None,
            context: str | None, state_dir: Path | None) -> None:
    """Stop the ChaosEngines of runs that did not finish (killed, crashed), as their journals record them.

    A run whose chaos-watch process is still alive is skipped (it stops its own engines); --force stops it too.
    """
    configure_logging(TOOL, ctx.obj["verbose"])
    run(TOOL, functools.partial(_cleanup, delete, wait_seconds, force, kubeconfig, context, state_dir), ctx.obj["debug"])


def _cleanup(delete: bool, wait_seconds: float, force: bool, kubeconfig: str | None, context: str | None,
             state_dir: Path | None) -> int:
    directory = state_dir or default_state_dir()
    say = functools.partial(click.echo, err=True)
    runs = []
    for path, records in unfinished_runs(directory):
        alive = run_is_alive(records)
        if alive is not False:
            why = (f"its chaos-watch (pid {_process(records)['pid']}) is still running" if alive
                   else f"cannot tell whether its chaos-watch still runs ({_whose(records)})")
            say(f"{TOOL}: {path.name}: " + (f"{why}; stopping it anyway (--force)" if force
                                            else f"skipped: {why}; --force stops it anyway"))
        if alive is False or force:
            runs.append((path, records))
    if not runs:
        click.echo(f"{TOOL}: no unfinished run to clean in {directory}", err=True)
        return 0
    cluster = KubernetesCluster(kubeconfig, context)
    cluster.connect()
    backend = LitmusBackend(cluster)
    total = 0
    for path, records in runs:
        def report(line: str, run_name: str = path.name) -> None:
            say(f"{TOOL}: {run_name}: {line}")

        total += stop_leftovers(backend, cluster, records, delete, wait_seconds, report)
        FileJournal(path.parent, path.name.removesuffix(".jsonl")).record("cleaned", at=core.iso_utc(time.time()))
    say(f"{TOOL}: cleaned {len(runs)} run(s), stopped {total} engine(s)")
    return 0


def _process(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next((r.get("process") or {} for r in records if r.get("op") == "run"), {})


def _whose(records: list[dict[str, Any]]) -> str:
    process = _process(records)
    return f"it ran on host {process['host']}" if process.get("host") else "its journal records no process"
