"""chaos-report: RunResult documents (files, or stdin) in, a report with scores and a root-cause analysis out:
Markdown, a self-contained HTML page, JUnit XML for CI, or the summary as JSON.

The analysis is rule-based (chaos_report.core) unless --provider names an LLM (chaos_report.rca, through the shared
providers and answer cache of chaosgen.llm); the rules stay the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click

from chaos_report import core
from chaosgen.boundary import read_document, stage_options, write_stdout
from chaosgen.documents import display_name, dump_json, parse_documents, read_bytes
from chaosgen.errors import InputRejected, UsageError
from chaosgen.llm.options import LLMOptions, StageHelp, llm_options
from chaosgen.llm.providers import BUILTIN
from chaosgen.schemas import check_kind, validate

TOOL = "chaos-report"
FORMATS = ("markdown", "html", "junit", "json")
log = logging.getLogger(TOOL)
LLM_HELP = StageHelp(
    provider="Who writes the root-cause analysis: the built-in rules, or an LLM citing the evidence of the input",
    no_fallback="Do not let the rules explain instead: exit 4 if the provider fails, 3 if no finding cites real evidence.",
    max_prompt_tokens="Budget of the prompt; the experiments that did not pass come first, then the Topology's neighbourhood.",
)


def format_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--format and --topology: what the report looks like, and the Topology its graphs and the LLM's evidence
    come from."""
    function = click.option("--topology", "topology_path", type=click.Path(dir_okay=False, allow_dash=True),
                            help="Topology (chaos-inventory output): each target's dependency graph in --format html, "
                                 "and its dependencies and risks as evidence for --provider "
                                 "[default: the RunResult's blast radius].")(function)
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
@llm_options(LLM_HELP)
@stage_options(TOOL)
def main(files: tuple[str, ...], output_format: str, topology_path: str | None, llm: LLMOptions) -> None:
    """Turn RunResults (chaos-watch output; - or none for stdin) into a report on stdout."""
    if topology_path == "-" and "-" in (files or ("-",)):
        raise UsageError("--topology - and the RunResults cannot both be read from stdin")
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
    analysis = None if llm.provider == BUILTIN else _llm_analysis(documents, topology, llm)
    write_stdout(render(documents, output_format, topology, analysis))


def render(documents: list[dict[str, Any]], output_format: str, topology: dict[str, Any] | None,
           analysis: list[str] | None = None) -> str:
    """The report in the format asked for; html and junit import their libraries only when asked. An LLM's
    analysis replaces the rules' findings in Markdown and is added to the JSON summary."""
    if output_format == "markdown":
        return core.render(documents, analysis)
    summary = core.summary(documents)
    if output_format == "json":
        return dump_json({**summary, "analysis": analysis} if analysis is not None else summary)
    if output_format == "junit":
        from chaos_report import junit

        return junit.render(summary)
    from chaos_report import html

    return html.render(summary, topology)


def _llm_analysis(documents: list[dict[str, Any]], topology: dict[str, Any] | None, llm: LLMOptions) -> list[str] | None:
    """The LLM's root-cause lines, or None (with a warning) for the rules to explain instead."""
    from chaos_report import rca  # only here: the builtin path never loads an SDK
    from chaosgen.llm.anonymize import Anonymizer
    from chaosgen.llm.cache import open_llm
    from chaosgen.llm.providers import ProviderFailure

    provider, cache = open_llm(llm)
    generator = f"llm:{provider.name}/{provider.model}"
    anonymizer = Anonymizer(rca.names(documents, topology)) if llm.anonymize else None
    try:
        analysis = rca.explain(
            documents, topology, lambda conversation: cache.ask(provider, conversation)[0], generator,
            llm.max_prompt_tokens, anonymizer,
        )
    except ProviderFailure as e:
        if e.fatal or llm.no_fallback:
            raise
        log.warning("%s; the rules explain instead", e)
        return None
    except rca.AnalysisUnusable as e:
        if llm.no_fallback:
            raise InputRejected(str(e), generator) from e
        log.warning("%s; the rules explain instead", e)
        return None
    for warning in analysis.warnings:
        log.warning(warning)
    return analysis.lines

