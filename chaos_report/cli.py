"""chaos-report: RunResult documents (files, or stdin) in, a report with scores and a root-cause analysis out:
Markdown, a self-contained HTML page, JUnit XML for CI, or the summary as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from chaos_report import core
from chaosgen.boundary import read_document, stage_options, write_stdout
from chaosgen.documents import display_name, dump_json, parse_documents, read_bytes
from chaosgen.errors import InputRejected
from chaosgen.schemas import check_kind, validate

TOOL = "chaos-report"
FORMATS = ("markdown", "html", "junit", "json")


def format_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--format and --topology: what the report looks like and what its dependency graphs are drawn from."""
    function = click.option("--topology", "topology_path", type=click.Path(dir_okay=False, allow_dash=False),
                            help="Topology (chaos-inventory output) to draw each target's dependency graph from "
                                 "in --format html [default: the RunResult's blast radius].")(function)
    return click.option("--format", "output_format", type=click.Choice(FORMATS), default="markdown",
                        show_default=True,
                        help="markdown; html (one self-contained file, opens offline); junit (XML, one testcase "
                             "per experiment, for CI); json (the summary: runs, verdicts, scores, findings).")(function)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-watch -f engines.yaml --prometheus-url http://127.0.0.1:9090 | chaos-report
  chaos-report --format html --topology topology.json monday.json tuesday.json > report.html
  chaos-report --format junit run.json > chaos-junit.xml""")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@format_options
@stage_options(TOOL)
def main(files: tuple[str, ...], output_format: str, topology_path: str | None) -> None:
    """Turn RunResults (chaos-watch output; - or none for stdin) into a report on stdout."""
    documents = []
    for path in files or ("-",):
        source = display_name(path)
        parsed = parse_documents(read_bytes(path), source)
        if not parsed:
            raise InputRejected("empty input: no document found", source)
        for document in parsed:
            check_kind(document, "RunResult", TOOL, source)
            validate(document, "RunResult", source)
            documents.append(document)
    topology = read_document(topology_path, "Topology", TOOL) if topology_path else None
    write_stdout(render(documents, output_format, topology))


def render(documents: list[dict[str, Any]], output_format: str, topology: dict[str, Any] | None) -> str:
    """The report in the format asked for; html and junit import their libraries only when asked."""
    if output_format == "markdown":
        return core.render(documents)
    summary = core.summary(documents)
    if output_format == "json":
        return dump_json(summary)
    if output_format == "junit":
        from chaos_report import junit

        return junit.render(summary)
    from chaos_report import html

    return html.render(summary, topology)
