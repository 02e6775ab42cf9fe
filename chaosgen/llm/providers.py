"""The LLM providers behind `--provider` (chaos-suggest, chaos-report): a small Protocol and one class per SDK, chosen by name.

Each SDK is imported only when its provider is called, so the builtin paths never pay for (or need) them. The
SDKs do the retrying (exponential backoff on 429 and 5xx, none on other 4xx) and the timeouts; this module turns
what they raise into one ProviderFailure with a line a user can act on. OpenAIProvider also negotiates how an
OpenAI-compatible server takes structured output (RESPONSE_FORMATS) and remembers it per base URL and model.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from chaosgen.errors import EnvironmentFailure

log = logging.getLogger(__name__)

BUILTIN = "builtin"
MAX_OUTPUT_TOKENS = 8192
AUTH_STATUSES = (401, 403)


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Conversation:
    """What a provider is asked: the system part, the turns so far, and the JSON Schema the answer must follow."""

    system: str
    turns: tuple[Turn, ...]
    answer_schema: dict[str, Any]
    answer_name: str = "experiment_plan"

    def followed_by(self, answer: str, request: str) -> Conversation:
        """The conversation of a repair round: the previous answer, then what to fix."""
        return Conversation(
            self.system, (*self.turns, Turn("assistant", answer), Turn("user", request)),
            self.answer_schema, self.answer_name,
        )


class LLMProvider(Protocol):
    """A chat model that answers a Conversation with the text of a JSON document."""

    name: str
    model: str

    def parameters(self) -> dict[str, Any]:
        """Everything besides the prompt that shapes the answer (part of the cache key)."""

    def complete(self, conversation: Conversation) -> str:
        """The model's answer; raises ProviderFailure."""


# How an OpenAI-compatible server is asked for a JSON answer that follows a schema, most enforced first; a server
# that rejects one is asked the next way. Servers differ:
# - json_schema: OpenAI's standard ({"type": "json_schema", "json_schema": {"name", "schema"}}); OpenAI, vLLM >= 0.6,
#   Ollama >= 0.5 on /v1 (its native /api/chat takes the schema as "format" instead), LM Studio, llama.cpp's C++
#   llama-server. Older vLLM wants the schema as extra_body {"guided_json": schema}, not implemented: such a server
#   ends at instructions.
# - json_object+schema: llama-cpp-python's server, whose response_format type is only "text" or "json_object" and
#   which enforces {"type": "json_object", "schema": ...} by a grammar; it answers json_schema with HTTP 500 and a
#   pydantic validation error.
# - instructions: no response_format; the prompt's own JSON Schema and instructions, and the caller's validation.
JSON_SCHEMA = "json_schema"
JSON_OBJECT_SCHEMA = "json_object+schema"
INSTRUCTIONS = "instructions"
RESPONSE_FORMATS = (JSON_SCHEMA, JSON_OBJECT_SCHEMA, INSTRUCTIONS)
# A 400, 422 or 500 whose body names the response format is the server refusing the format, not an overload.
FORMAT_REJECTION_STATUSES = (400, 422, 500)
_FORMAT_REJECTION = re.compile(r"response_format|json_schema", re.IGNORECASE)
# What the SDK would retry (openai._base_client), so a probe made without retries can be retried the same way.
RETRIED_STATUSES = (408, 409, 429)
PROBE_RETRY_PAUSE = 0.5  # the SDK's first backoff


class FormatMemory(Protocol):
    """What each server (base URL and model) is known to accept, out of RESPONSE_FORMATS."""

    def recall(self, base_url: str, model: str) -> str | None:
        """The format that worked last time, or None for a server not met yet."""

    def remember(self, base_url: str, model: str, response_format: str) -> None:
        """Record the format that worked."""


class ProviderFailure(EnvironmentFailure):
    """The provider could not be used (exit 4). fatal: a configuration problem no fallback should hide."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        self.fatal = fatal
        super().__init__(message)


@dataclass(frozen=True)
class ProviderSpec:
    key_variables: tuple[str, ...]  # the first one set wins
    base_url_variables: tuple[str, ...]
    default_model: str


SPECS: dict[str, ProviderSpec] = {
    "openai": ProviderSpec(("OPENAI_API_KEY",), ("OPENAI_BASE_URL",), "gpt-4.1-mini"),
    "gemini": ProviderSpec(("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"), "gemini-2.5-flash"),
    "anthropic": ProviderSpec(("ANTHROPIC_API_KEY",), ("ANTHROPIC_BASE_URL",), "claude-sonnet-4-5"),
}
PROVIDER_NAMES = (BUILTIN, *SPECS)


@dataclass(frozen=True)
class Connection:
    """How to reach a provider: resolved from flags, then environment variables, then defaults."""

    api_key: str
    base_url: str | None
    timeout: float
    max_retries: int


def make_provider(
    name: str, model: str | None, base_url: str | None, timeout: float, max_retries: int,
    environ: Mapping[str, str] = os.environ, formats: FormatMemory | None = None,
) -> LLMProvider:
    """Build the provider the CLI names; a missing key is a one-line exit-4 error naming its variable.

    formats remembers what an OpenAI-compatible server accepts (the other providers have one way each); without
    it every call negotiates afresh.
    """
    spec = SPECS[name]
    api_key = next((environ[var] for var in spec.key_variables if environ.get(var)), None)
    if api_key is None:
        first, *others = spec.key_variables
        wanted = first + (f" (or {' or '.join(others)})" if others else "")
        raise ProviderFailure(
            f"{wanted} is not set: --provider {name} needs an API key (or use --provider builtin)", fatal=True
        )
    url = base_url or next((environ[var] for var in spec.base_url_variables if environ.get(var)), None)
    connection = Connection(api_key, url, timeout, max_retries)
    if name == "openai":
        return OpenAIProvider(model or spec.default_model, connection, formats)
    return _CLASSES[name](model or spec.default_model, connection)


class _SDKProvider:
    """What the three providers share: the parameters, and turning an SDK error into a ProviderFailure."""

    name = ""
    SDK_MODULE = ""
    REPLY = "a reply"  # what a good reply is, as a sentence says it
    # The sampling parameters each SDK call passes on as they are (its own names): part of the cache key.
    PARAMETERS: dict[str, Any] = {}

    def __init__(self, model: str, connection: Connection) -> None:
        self.model = model
        self.connection = connection

    def parameters(self) -> dict[str, Any]:
        return dict(self.PARAMETERS)

    def complete(self, conversation: Conversation) -> str:
        self._require_sdk()
        try:
            return self._call(conversation)
        except ProviderFailure:
            raise
        except Exception as e:  # each SDK has its own hierarchy; what it does not know is a bad reply
            failure = self._classify(e) or self._malformed(f"{type(e).__name__}: {_one_line(str(e))}")
            raise failure from e

    def _malformed(self, what: str) -> ProviderFailure:
        """The server answered, but not with what the protocol promises (exit 4, or the fallback)."""
        return ProviderFailure(f"{self._where()}: the server answered with {what}, not {self.REPLY}")

    def _reply_body(self, response: Any) -> dict[str, Any]:
        """The JSON object of an HTTP reply (httpx), or a ProviderFailure saying what came instead."""
        content_type = response.headers.get("content-type", "")
        text = response.text
        if "html" in content_type or text.lstrip()[:1] == "<":
            raise self._malformed(f"HTTP {response.status_code} and HTML")
        try:
            body = json.loads(text)
        except ValueError as e:
            raise self._malformed(f"HTTP {response.status_code} and text that is not JSON") from e
        if not isinstance(body, dict):
            raise self._malformed(f"JSON that is {_kind(body)}")
        return body

    def _require_sdk(self) -> None:
        """A clear exit-4 line when the SDK's extra is not installed."""
        try:
            importlib.import_module(self.SDK_MODULE)
        except ImportError as e:
            raise ProviderFailure(
                f"--provider {self.name} needs the {self.SDK_MODULE} package: pip install 'chaosgen[{self.name}]'", fatal=True,
            ) from e

    def _call(self, conversation: Conversation) -> str:
        raise NotImplementedError

    def _classify(self, error: Exception) -> ProviderFailure | None:
        raise NotImplementedError

    def _where(self) -> str:
        return f"{self.name} ({self.connection.base_url or 'default endpoint'}, model {self.model})"

    def _failure(self, status: int | None, timed_out: bool, detail: str) -> ProviderFailure:
        where = self._where()
        retries = f" after {self.connection.max_retries} retries" if self.connection.max_retries else ""
        if status in AUTH_STATUSES:
            variables = " or ".join(SPECS[self.name].key_variables)
            return ProviderFailure(f"{where} refused the API key (HTTP {status}): check {variables}", fatal=True)
        if status == 429:
            return ProviderFailure(f"{where} is rate limiting (HTTP 429){retries}")
        if status is not None and status >= 500:
            return ProviderFailure(f"{where} failed with HTTP {status}{retries}")
        if status is not None:
            return ProviderFailure(f"{where} rejected the request (HTTP {status}): {_one_line(detail)}")
        if timed_out:
            return ProviderFailure(f"{where} did not answer within {self.connection.timeout:g}s{retries}")
        return ProviderFailure(f"{where} is unreachable{retries}: {_one_line(detail)}")

    def _stainless_failure(self, sdk: Any, error: Exception) -> ProviderFailure | None:
        """The OpenAI and Anthropic SDKs are generated by the same tool and share their error classes' shape."""
        if isinstance(error, sdk.APIStatusError):
            return self._failure(error.status_code, False, str(error))
        if isinstance(error, sdk.APIConnectionError):
            return self._failure(None, isinstance(error, sdk.APITimeoutError), str(error))
        if isinstance(error, sdk.APIError):
            return ProviderFailure(f"{self._where()} sent a response the SDK cannot read: {_one_line(str(error))}")
        return None


class OpenAIProvider(_SDKProvider):
    """OpenAI and every server that speaks its chat completions API (Ollama, vLLM, LM Studio, llama.cpp, gateways)."""

    name = "openai"
    SDK_MODULE = "openai"
    REPLY = "a chat completion"
    # No output limit: OpenAI-compatible servers disagree on its name (max_tokens, max_completion_tokens).
    PARAMETERS = {"temperature": 0.0}

    def __init__(self, model: str, connection: Connection, formats: FormatMemory | None = None) -> None:
        super().__init__(model, connection)
        self.formats = formats

    def _call(self, conversation: Conversation) -> str:
        """The answer in the first response format the server accepts, starting from the one it accepted last."""
        import openai

        client = openai.OpenAI(
            api_key=self.connection.api_key, base_url=self.connection.base_url,
            timeout=self.connection.timeout, max_retries=self.connection.max_retries,
        )
        server = self.connection.base_url or "default"
        known = self.formats.recall(server, self.model) if self.formats is not None else None
        candidates = RESPONSE_FORMATS[RESPONSE_FORMATS.index(known):] if known in RESPONSE_FORMATS else RESPONSE_FORMATS
        for response_format in candidates:
            try:
                content = self._ask(client, conversation, response_format, probe=response_format != known)
            except openai.APIStatusError as e:
                if response_format == INSTRUCTIONS or not _rejects_format(e):
                    raise
                log.info("%s does not accept response_format %s (HTTP %d); asking again with the next format",
                         self._where(), response_format, e.status_code)
                continue
            if response_format != known and self.formats is not None:
                self.formats.remember(server, self.model, response_format)
            return content
        raise AssertionError("unreachable: instructions is never rejected")

    def _ask(self, client: Any, conversation: Conversation, response_format: str, probe: bool) -> str:
        """One chat completion. A probe (a format this server has not taken yet) is made without the SDK's
        retries, because llama-cpp-python answers an unknown format with HTTP 500, which the SDK would retry like an
        overload; a probe that fails for another retriable reason is then retried as usual, in the same number of
        attempts in all."""
        import openai

        messages = [{"role": "system", "content": conversation.system}]
        messages += [{"role": turn.role, "content": turn.text} for turn in conversation.turns]
        request = {"model": self.model, "messages": messages, **self.PARAMETERS, **_response_format(response_format, conversation)}
        retries = self.connection.max_retries
        if probe and retries and response_format != INSTRUCTIONS:
            try:
                return self._content(client.with_options(max_retries=0).chat.completions.with_raw_response.create(**request))
            except (openai.APIStatusError, openai.APIConnectionError) as e:
                if isinstance(e, openai.APIStatusError) and (_rejects_format(e) or not _retried(e.status_code)):
                    raise
            time.sleep(PROBE_RETRY_PAUSE)
            retries -= 1
        return self._content(client.with_options(max_retries=retries).chat.completions.with_raw_response.create(**request))

    def _content(self, raw: Any) -> str:
        body = self._reply_body(raw.http_response)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise self._malformed("no choices")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise self._malformed("a choice without a message")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise self._malformed(f"message content that is {_kind(content)}")
        return content or ""

    def _classify(self, error: Exception) -> ProviderFailure | None:
        import openai

        return self._stainless_failure(openai, error)


def _response_format(response_format: str, conversation: Conversation) -> dict[str, Any]:
    """The request fields of one of RESPONSE_FORMATS."""
    if response_format == JSON_SCHEMA:
        # strict mode would demand every property be required; the callers validate the answer anyway.
        return {"response_format": {
            "type": "json_schema",
            "json_schema": {"name": conversation.answer_name, "schema": conversation.answer_schema, "strict": False},
        }}
    if response_format == JSON_OBJECT_SCHEMA:
        return {"response_format": {"type": "json_object", "schema": _grammar_safe(conversation.answer_schema)}}
    return {}


# What llama-cpp-python's schema-to-grammar conversion cannot take, measured on 0.3.36: it spells maxLength 200 as
# 200 nested optional characters ("number of rules that are going to be repeated multiplied by the new repetition
# exceeds sane defaults"), and it does not know \s and other escapes in a pattern ("unknown escape"). A grammar it
# cannot parse kills the server process, so these constraints are left to the callers, which check them anyway.
_GRAMMAR_UNSAFE = ("minLength", "maxLength", "pattern")


def _grammar_safe(schema: Any) -> Any:
    """The schema as a grammar-enforcing server can take it: without _GRAMMAR_UNSAFE constraints."""
    if isinstance(schema, dict):
        return {key: _grammar_safe(value) for key, value in schema.items() if key not in _GRAMMAR_UNSAFE}
    if isinstance(schema, list):
        return [_grammar_safe(item) for item in schema]
    return schema


def _rejects_format(error: Any) -> bool:
    """A server's refusal of the response_format itself (openai.APIStatusError), as opposed to any other failure."""
    return error.status_code in FORMAT_REJECTION_STATUSES and bool(_FORMAT_REJECTION.search(f"{error} {error.body}"))


def _retried(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= 500


class AnthropicProvider(_SDKProvider):
    """Claude through the Messages API; the answer is forced through a tool whose input schema is the answer's."""

    name = "anthropic"
    SDK_MODULE = "anthropic"
    REPLY = "a message"
    PARAMETERS = {"max_tokens": MAX_OUTPUT_TOKENS}

    def _call(self, conversation: Conversation) -> str:
        import anthropic
        from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam

        client = anthropic.Anthropic(
            api_key=self.connection.api_key, base_url=self.connection.base_url,
            timeout=self.connection.timeout, max_retries=self.connection.max_retries,
        )
        tool: ToolParam = {
            "name": conversation.answer_name,
            "description": "Submit the answer. Its input is the whole answer document.",
            "input_schema": conversation.answer_schema,
        }
        tool_choice: ToolChoiceToolParam = {"type": "tool", "name": conversation.answer_name}
        # A Turn's role is "user" or "assistant", the two a MessageParam takes.
        messages = [cast(MessageParam, {"role": turn.role, "content": turn.text}) for turn in conversation.turns]
        raw = client.messages.with_raw_response.create(
            model=self.model, system=conversation.system, **self.PARAMETERS,
            messages=messages, tools=[tool], tool_choice=tool_choice,
        )
        blocks = self._reply_body(raw.http_response).get("content")
        if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
            raise self._malformed("no list of content blocks")
        for block in blocks:
            if block.get("type") == "tool_use" and block.get("name") == conversation.answer_name:
                if not isinstance(block.get("input"), dict):
                    raise self._malformed(f"tool input that is {_kind(block.get('input'))}")
                return json.dumps(block["input"], ensure_ascii=False)
        # The model answered in prose instead of calling the tool: hand its text to the guard as the answer.
        texts = [block.get("text") for block in blocks if block.get("type") == "text"]
        if not all(isinstance(text, str) for text in texts):
            raise self._malformed("a text block whose text is not a string")
        return "".join(texts)

    def _classify(self, error: Exception) -> ProviderFailure | None:
        import anthropic

        return self._stainless_failure(anthropic, error)


class GeminiProvider(_SDKProvider):
    """Gemini through google-genai (the successor of the end-of-life google-generativeai) and its JSON mode."""

    name = "gemini"
    SDK_MODULE = "google.genai"
    REPLY = "a generateContent response"
    PARAMETERS = {"temperature": 0.0, "max_output_tokens": MAX_OUTPUT_TOKENS}
    RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)

    def _call(self, conversation: Conversation) -> str:
        from google import genai
        from google.genai import types

        retry = types.HttpRetryOptions(
            attempts=self.connection.max_retries + 1, initial_delay=0.5, max_delay=8.0,
            http_status_codes=list(self.RETRIED_STATUSES),
        )
        client = genai.Client(
            api_key=self.connection.api_key,
            http_options=types.HttpOptions(
                base_url=self.connection.base_url, timeout=int(self.connection.timeout * 1000), retry_options=retry,
            ),
        )
        roles = {"user": "user", "assistant": "model"}
        response = client.models.generate_content(
            model=self.model,
            contents=[types.Content(role=roles[turn.role], parts=[types.Part(text=turn.text)]) for turn in conversation.turns],
            config=types.GenerateContentConfig(
                system_instruction=conversation.system, **self.PARAMETERS, response_mime_type="application/json",
                response_json_schema=conversation.answer_schema,
            ),
        )
        if not response.candidates:
            raise self._malformed("no candidates")
        return response.text or ""

    def _classify(self, error: Exception) -> ProviderFailure | None:
        from google.genai import errors

        if isinstance(error, errors.APIError):
            return self._failure(error.code, False, error.message or str(error))
        # google-genai lets its HTTP library's transport errors through (httpx or its fork httpx2, or aiohttp).
        if type(error).__module__.split(".")[0] in ("httpx", "httpx2", "aiohttp"):
            timed_out = any("Timeout" in cls.__name__ for cls in type(error).__mro__)
            return self._failure(None, timed_out, str(error) or type(error).__name__)
        return None


def _kind(value: Any) -> str:
    """A JSON value's kind in a sentence: a list, a number, an object..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


_CLASSES: dict[str, type[_SDKProvider]] = {"gemini": GeminiProvider, "anthropic": AnthropicProvider}
