"""chaos-suggest's LLM providers (OpenAI and compatible servers, Gemini, Anthropic), guarded and cached.

- options.py: the flags as one LLMOptions value (light: chaos_suggest/cli.py imports it on every run).
- suggest.py: suggest_with_llm, the whole LLM path (imported by the CLI only when --provider is not builtin).
- prompt.py, guard.py, anonymize.py, cache.py, providers.py: its parts. The SDKs are imported only when a
  provider is called, so the builtin planner never loads them.
"""
