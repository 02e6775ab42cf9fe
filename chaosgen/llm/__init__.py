"""The LLM providers shared by chaos-suggest and chaos-report (OpenAI and compatible servers, Gemini, Anthropic).

- options.py: the flags as one LLMOptions value (light: the CLIs import it on every run).
- providers.py: the Provider Protocol, one class per SDK, and the structured-output negotiation of OpenAI-compatible
  servers (response_format json_schema, then json_object with a schema, then instructions only).
- cache.py: the answer cache (--cache-dir, --offline) and what each base URL is known to accept.
- anonymize.py: --anonymize's placeholders for the names of a Topology.
- answers.py: reading a model's untrusted JSON answer.
The SDKs are imported only when a provider is called, so the builtin paths never load them.
"""
