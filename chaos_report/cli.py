"""chaos-report: RunResult documents (files, or stdin) in, a Markdown report with a root-cause analysis out."""

from __future__ import annotations

import click

from chaosgen.boundary import stage_options, write_stdout
from chaosgen.documents import display_name, parse_documents, read_bytes
from chaosgen.errors import InputRejected
from chaosgen.schemas import check_kind, validate
from chaos_report import core

TOOL = "chaos-report"


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-report run.json > report.md
  chaos-watch -f engines.yaml --prometheus-url http://127.0.0.1:9090 | chaos-report
  chaos-report monday.json tuesday.json""")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@stage_options(TOOL)
def main(files: tuple[str, ...]) -> None:
    """Turn RunResults (chaos-watch output; - or none for stdin) into a Markdown report on stdout."""
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
    write_stdout(core.render(documents))
