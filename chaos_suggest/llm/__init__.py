"""chaos-suggest's LLM providers (OpenAI and compatible servers, Gemini, Anthropic), guarded and cached.

Imported by chaos_suggest/cli.py only when --provider is not builtin; the SDKs themselves are imported only when a
provider is called, so the builtin planner never loads them.
"""

from __future__ import annotations

from chaos_suggest.llm.providers import BUILTIN, PROVIDER_NAMES, LLMProvider, ProviderFailure, make_provider
from chaos_suggest.llm.suggest import LLMOptions, suggest_with_llm

__all__ = [
    "BUILTIN", "PROVIDER_NAMES", "LLMOptions", "LLMProvider", "ProviderFailure", "make_provider",
    "suggest_with_llm",
]
