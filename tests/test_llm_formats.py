"""Structured output with the OpenAI-compatible servers people run: the real openai SDK against fakes that refuse
response formats the way llama-cpp-python's server does, negotiating json_schema -> json_object+schema ->
instructions, not retrying a refusal like an overload, and remembering per base URL and model what worked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos_suggest.llm.suggest import suggest_with_llm
from chaosgen.llm.cache import ServerFormats
from chaosgen.llm.options import LLMOptions
from chaosgen.policy import load_policy
from fakes import LLAMA_CPP_FORMATS, FakeLLMServer, Reply, answers

MODEL = "smollm2"


def suggest(server: FakeLLMServer, cache: Path, monkeypatch: pytest.MonkeyPatch, count: int = 3) -> list[str]:
    """suggest_with_llm as the CLI calls it (no injected provider): the generators of the experiments."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    options = LLMOptions(provider="openai", model=MODEL, base_url=server.base_url, cache_dir=str(cache))
    experiments, _ = suggest_with_llm(answers.topology(), load_policy(None), count, options)
    return [e["generator"] for e in experiments]


def formats_sent(server: FakeLLMServer) -> list[str]:
    return [(r.body.get("response_format") or {}).get("type", "none") for r in server.requests]


def test_llama_cpp_refuses_json_schema_once_then_takes_json_object_with_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())], response_formats=LLAMA_CPP_FORMATS) as server:
        generators = suggest(server, tmp_path / "cache", monkeypatch)
    assert generators == [f"llm:openai/{MODEL}"] * 3
    # The HTTP 500 validation error is a refusal of the format, not an overload: asked once, not retried.
    assert len(server.refused) == 1 and server.refused[0].body["response_format"]["type"] == "json_schema"
    [request] = server.requests
    assert request.body["response_format"]["type"] == "json_object"
    assert request.body["response_format"]["schema"]["required"] == ["experiments"]
    known = json.loads((tmp_path / "cache" / "capabilities.json").read_text())
    assert known == {server.base_url: {MODEL: "json_object+schema"}}


def test_what_a_server_accepted_is_remembered_for_the_next_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())], response_formats=LLAMA_CPP_FORMATS) as server:
        suggest(server, tmp_path / "cache", monkeypatch, count=3)
        suggest(server, tmp_path / "cache", monkeypatch, count=2)  # another prompt: a cache miss, a second request
    assert len(server.refused) == 1
    assert formats_sent(server) == ["json_object", "json_object"]


def test_a_server_without_json_modes_gets_the_instructions_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())], response_formats=("text",)) as server:
        generators = suggest(server, tmp_path / "cache", monkeypatch)
    assert generators == [f"llm:openai/{MODEL}"] * 3
    assert [r.body["response_format"]["type"] for r in server.refused] == ["json_schema", "json_object"]
    assert formats_sent(server) == ["none"]
    assert "JSON Schema" in server.prompts()[0]  # the prompt itself still carries the schema
    assert ServerFormats(tmp_path / "cache").recall(server.base_url, MODEL) == "instructions"


def test_a_server_that_takes_json_schema_is_asked_that_way_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())]) as server:
        suggest(server, tmp_path / "cache", monkeypatch)
    assert server.refused == [] and formats_sent(server) == ["json_schema"]
    assert ServerFormats(tmp_path / "cache").recall(server.base_url, MODEL) == "json_schema"


def test_an_overload_during_the_negotiation_is_still_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = [Reply(status=503), Reply(answers.valid_plan())]
    with FakeLLMServer("openai", script, response_formats=LLAMA_CPP_FORMATS) as server:
        generators = suggest(server, tmp_path / "cache", monkeypatch)
    assert generators == [f"llm:openai/{MODEL}"] * 3
    assert formats_sent(server) == ["json_object", "json_object"]


def test_a_damaged_capabilities_file_means_negotiating_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "capabilities.json").write_text("{not json")
    with FakeLLMServer("openai", [Reply(answers.valid_plan())], response_formats=LLAMA_CPP_FORMATS) as server:
        suggest(server, tmp_path / "cache", monkeypatch)
    assert len(server.refused) == 1
    assert ServerFormats(tmp_path / "cache").recall(server.base_url, MODEL) == "json_object+schema"


def test_an_openai_style_400_naming_the_response_format_is_a_refusal_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
    refusal = json.dumps({"error": {"message": message,
                                    "type": "invalid_request_error", "param": "response_format", "code": None}})
    with FakeLLMServer("openai", [Reply(status=400, wire=refusal), Reply(answers.valid_plan())]) as server:
        generators = suggest(server, tmp_path / "cache", monkeypatch)
    assert generators == [f"llm:openai/{MODEL}"] * 3
    assert formats_sent(server) == ["json_schema", "json_object"]
