"""The one boundary every stage's CLI goes through: read, validate, call the pure core, validate, write, exit.

Modelled on jc's JcCli.run and check-jsonschema's SchemaChecker.run: the core never does I/O or exits; this module
turns its typed errors into exit codes and one line on stderr, and writes stdout only once the whole output
document exists and has passed its schema, so nothing half-written reaches a pipe.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, cast

import click

from chaosgen import __version__
from chaosgen.documents import display_name, dump_json, parse_documents, read_bytes
from chaosgen.errors import ChaosGenError, InputRejected, Interrupted
from chaosgen.schemas import check_kind, validate

log = logging.getLogger("chaosgen")


def read_document(path: str, expected_kind: str | tuple[str, ...], tool: str) -> dict[str, Any]:
    """The single input document of a stage, checked for kind and schema; path '-' is stdin."""
    source = display_name(path)
    documents = parse_documents(read_bytes(path), source)
    if not documents:
        raise InputRejected("empty input: no document found", source)
    if len(documents) > 1:
        raise InputRejected(f"{tool} expects one document, got {len(documents)}", source)
    document = documents[0]
    kind = check_kind(document, expected_kind, tool, source)
    validate(document, kind, source)
    return cast("dict[str, Any]", document)


def validated_output(document: dict[str, Any]) -> dict[str, Any]:
    """Check an output document against its schema; a failure here is our bug, so it is not an InputRejected."""
    try:
        validate(document, document["kind"], "output")
    except InputRejected as e:
        raise AssertionError(f"output failed its own schema: {e}") from e
    return document


def write_stdout(text: str) -> None:
    """Write the finished output in one go."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); that is not an error of ours.
        _silence_stdout()


def write_document(document: dict[str, Any]) -> None:
    write_stdout(dump_json(validated_output(document)))


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _raise_interrupted(signum: int, frame: Any) -> NoReturn:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def run(tool: str, body: Callable[[], int | None], debug: bool = False) -> NoReturn:
    """Call a stage's body and exit with the code its outcome maps to (README, "Exit codes")."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        code = body() or 0
    except ChaosGenError as e:
        _report(tool, str(e), debug)
        code = e.exit_code
    except KeyboardInterrupt:
        _report(tool, "interrupted", debug)
        code = 130
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: a bug, reported as one
        _report(tool, f"internal error (a bug, please report it): {type(e).__name__}: {e}", debug, always_hint=True)
        code = 1
    sys.exit(code)


def _report(tool: str, message: str, debug: bool, always_hint: bool = False) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    hint = "; rerun with --debug for the traceback" if always_hint and not debug else ""
    first_line = message.splitlines()[0] if message else "failed"
    click.echo(f"{tool}: error: {first_line}{hint}", err=True)


def configure_logging(tool: str, verbose: int) -> None:
    """Logs and warnings go to stderr, prefixed with the tool's name; -v shows info, -vv debug."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{tool}: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "kubernetes", "httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic", "google_genai"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def stage_options(tool: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--debug, -v and --version for a stage command, with logging set up before the body runs."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--debug", is_flag=True, help="Show the traceback of an error.")
        @click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
        @click.version_option(__version__, prog_name=tool)
        @functools.wraps(function)
        def wrapper(*args: Any, debug: bool, verbose: int, **kwargs: Any) -> Any:
            configure_logging(tool, verbose)
            run(tool, lambda: function(*args, **kwargs), debug)

        return wrapper

    return decorate
