"""chaos-report: RunResult documents (files, or stdin) in, a Markdown report with a root-cause analysis out.

The analysis is rule-based (chaos_report.core) unless --provider names an LLM (chaos_report.rca, through the shared
providers and answer cache of chaosgen.llm); the rules stay the fallback.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from chaos_report import core
from chaosgen.boundary import read_document, stage_options, write_stdout
from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import InputRejected, UsageError
from chaosgen.llm.options import LLMOptions, StageHelp, llm_options
from chaosgen.llm.providers import BUILTIN
from chaosgen.schemas import check_kind, validate

TOOL = "chaos-report"
log = logging.getLogger(TOOL)
LLM_HELP = StageHelp(
    provider="Who writes the root-cause analysis: the built-in rules, or an LLM citing the evidence of the input",
    no_fallback="Do not let the rules explain instead: exit 4 if the provider fails, 3 if no finding cites real evidence.",
    max_prompt_tokens="Budget of the prompt; the experiments that did not pass come first, then the Topology's neighbourhood.",
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--topology", "topology_file", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="The Topology of the application (chaos-inventory output): its dependencies and risks become evidence for --provider.")
@llm_options(LLM_HELP)
@stage_options(TOOL)
def main(files: tuple[str, ...], topology_file: str | None, llm: LLMOptions) -> None:
    """Turn RunResults (chaos-watch output; - or none for stdin) into a Markdown report on stdout."""
    if topology_file == "-" and "-" in (files or ("-",)):
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
    topology = read_document(topology_file, "Topology", TOOL) if topology_file else None
    analysis = None if llm.provider == BUILTIN else _llm_analysis(documents, topology, llm)
    write_stdout(core.render(documents, analysis))


def _llm_analysis(documents: list[dict[str, Any]], topology: dict[str, Any] | None, llm: LLMOptions) -> list[str] | None:
    """The LLM's root-cause lines, or None (with a warning) for the rules to explain instead."""
    from chaos_report import rca  # only here: the builtin path never loads Jinja2 or an SDK
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
