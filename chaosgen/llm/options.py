"""The LLM options of chaos-suggest and chaos-report: the flags (and their environment variables) as one LLMOptions value.

chaos_suggest/cli.py and chaos_report/cli.py apply llm_options(...) with the help texts of their own builtin path; the
command then gets a single `llm` argument. This module stays light (no SDK, no Jinja2), so the builtin path pays
nothing for the LLM flags.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from chaosgen.llm.providers import BUILTIN, PROVIDER_NAMES, SPECS

DEFAULT_MAX_PROMPT_TOKENS = 8000
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class LLMOptions:
    """Who does a stage's thinking: builtin, or which provider and model, and how to talk to it."""

    provider: str = BUILTIN
    model: str | None = None
    base_url: str | None = None
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS
    anonymize: bool = False
    no_fallback: bool = False
    cache_dir: str | None = None
    offline: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES


def _base_url_help() -> str:
    variables = "; ".join(f"{name}: {' or '.join(spec.base_url_variables)}" for name, spec in SPECS.items())
    return f"The provider's API endpoint (an OpenAI-compatible server, a gateway). Default from the environment ({variables})."


def _default_models() -> str:
    return ", ".join(f"{name}: {spec.default_model}" for name, spec in SPECS.items())


@dataclass(frozen=True)
class StageHelp:
    """The help texts that differ between the stages: what their builtin path is, and what the prompt shows."""

    provider: str  # e.g. "Who plans: the built-in planner, or an LLM"
    no_fallback: str
    max_prompt_tokens: str


def llm_options(stage: StageHelp) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding the LLM flags to a click command, handed to it as llm=LLMOptions(...)."""
    return functools.partial(_with_llm_options, stage=stage)


def _with_llm_options(function: Callable[..., Any], stage: StageHelp) -> Callable[..., Any]:
    flags = [
        click.option("--provider", type=click.Choice(PROVIDER_NAMES), default=BUILTIN, show_default=True,
                     envvar="CHAOSGEN_LLM_PROVIDER", help=f"{stage.provider} (env CHAOSGEN_LLM_PROVIDER)."),
        click.option("--model", default=None, envvar="CHAOSGEN_LLM_MODEL",
                     help=f"The model (env CHAOSGEN_LLM_MODEL; default {_default_models()})."),
        click.option("--base-url", default=None, help=_base_url_help()),
        click.option("--max-prompt-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_PROMPT_TOKENS, show_default=True,
                     help=stage.max_prompt_tokens),
        click.option("--anonymize", is_flag=True, help="Replace namespace, workload and service names in the prompt by placeholders."),
        click.option("--no-fallback", is_flag=True, help=stage.no_fallback),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                     help="Where answers are cached [default: $XDG_CACHE_HOME/chaosgen/llm]."),
        click.option("--offline", is_flag=True, help="Use cached answers only; a cache miss is an error (exit 4)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT, show_default=True,
                     help="Seconds to wait for one answer of the provider."),
        click.option("--max-retries", type=click.IntRange(min=0, max=10), default=DEFAULT_MAX_RETRIES, show_default=True,
                     help="Retries, with backoff, on HTTP 429, 5xx and timeouts."),
    ]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = [field for field in LLMOptions.__dataclass_fields__]
        llm = LLMOptions(**{name: kwargs.pop(name) for name in names})
        return function(*args, llm=llm, **kwargs)

    for flag in reversed(flags):
        wrapper = flag(wrapper)
    return wrapper
