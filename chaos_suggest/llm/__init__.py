"""chaos-suggest with an LLM: the prompt, the guard and the whole path, on the providers of chaosgen.llm.

- suggest.py: suggest_with_llm, the whole LLM path (imported by the CLI only when --provider is not builtin).
- prompt.py, guard.py: its parts; the providers, options, cache and anonymizer live in chaosgen.llm.
"""
