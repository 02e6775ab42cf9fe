"""The installed chaos-suggest with --provider openai|gemini|anthropic, run as a user runs it: in a bash pipe, its
provider's endpoint pointed at a local fake server by the documented environment variables."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import run
from fakes import PROTOCOLS, FakeLLMServer, Reply, answers

KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
BASE_URL_VARIABLES = {"openai": "OPENAI_BASE_URL", "gemini": "GEMINI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
# Nothing of the caller's own configuration may reach the command under test.
CLEARED = ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "CHAOSGEN_LLM_PROVIDER", "CHAOSGEN_LLM_MODEL",
           *KEY_VARIABLES.values(), *BASE_URL_VARIABLES.values())


def shell(command: str, tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """The command in bash -o pipefail, in a clean LLM configuration and a cache of its own; output as text."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg-cache"), **environment)
    result = run(command, env=env)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def suggest(protocol: str, server: FakeLLMServer, tmp_path: Path, flags: str = "", pipe: str = "") -> subprocess.CompletedProcess[str]:
    """cat topology.json | chaos-suggest -n 3 FLAGS [| PIPE], configured the way the README says."""
    command = f"cat {shlex.quote(str(answers.TOPOLOGY_FILE))} | chaos-suggest -n 3 {flags}" + (f" | {pipe}" if pipe else "")
    return shell(command, tmp_path, CHAOSGEN_LLM_PROVIDER=protocol, CHAOSGEN_LLM_MODEL="test-model",
                 **{KEY_VARIABLES[protocol]: "test-key", BASE_URL_VARIABLES[protocol]: server.base_url})


def plan_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("chaos-suggest: error: ") and text in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_pipeline_works_with_each_provider(protocol: str, tmp_path: Path) -> None:
    with FakeLLMServer(protocol, [Reply(answers.valid_plan())]) as server:
        result = suggest(protocol, server, tmp_path, pipe="chaos-litmus")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("kind: ChaosEngine") == 3
    assert len(server.requests) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_replies_reach_stderr_as_rules_and_never_stdout(protocol: str, tmp_path: Path) -> None:
    hostile = answers.hostile_experiments()
    script = [Reply(answers.plan(answers.postgres_pod_delete(), *hostile.values())), Reply(answers.plan(*hostile.values()))]
    with FakeLLMServer(protocol, script) as server:
        result = suggest(protocol, server, tmp_path)
    plan = plan_of(result)
    assert [e["generator"] for e in plan["experiments"]] == [f"llm:{protocol}/test-model", "builtin", "builtin"]
    experiments = json.dumps(plan["experiments"])  # (the plan's policy names kube-system, as denied)
    assert "kube-system" not in experiments and "checkout" not in experiments and "cmdProbe" not in result.stdout
    for rule in hostile:
        assert re.search(rf"chaos-suggest: WARNING: dropped: .*rule {rule}:", result.stderr), rule
    for secret in answers.SECRET_VALUES:
        assert secret not in result.stdout + result.stderr
        assert all(secret not in request.text() for request in server.requests)


def test_builtin_is_the_default_and_needs_no_key(tmp_path: Path) -> None:
    result = shell(f"chaos-suggest -n 3 -f {shlex.quote(str(answers.TOPOLOGY_FILE))}", tmp_path)
    assert {e["generator"] for e in plan_of(result)["experiments"]} == {"builtin"}


@pytest.mark.parametrize(("protocol", "variable"), [("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY (or GOOGLE_API_KEY)"),
                                                    ("anthropic", "ANTHROPIC_API_KEY")])
def test_a_missing_key_is_exit_4_naming_the_variable(protocol: str, variable: str, tmp_path: Path) -> None:
    result = shell(f"chaos-suggest --provider {protocol} -f {shlex.quote(str(answers.TOPOLOGY_FILE))}", tmp_path)
    assert_one_error_line(result, 4, f"{variable} is not set")


@pytest.mark.slow
def test_verbose_shows_the_prompt_estimate(tmp_path: Path) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())]) as server:
        result = suggest("openai", server, tmp_path, flags="-v --max-prompt-tokens 6000")
    plan_of(result)
    assert re.search(r"INFO: prompt for llm:openai/test-model: about \d+ tokens \(limit 6000\), 4 of 4 workloads shown", result.stderr)


@pytest.mark.slow
def test_no_fallback_malformed_answer_is_exit_3(tmp_path: Path) -> None:
    with FakeLLMServer("gemini", [Reply("{oops")]) as server:
        result = suggest("gemini", server, tmp_path, flags="--no-fallback")
    assert_one_error_line(result, 3, "invalid-json")


@pytest.mark.slow
def test_no_fallback_server_errors_are_exit_4(tmp_path: Path) -> None:
    with FakeLLMServer("anthropic", [Reply(status=500)]) as server:
        result = suggest("anthropic", server, tmp_path, flags="--no-fallback --max-retries 1")
    assert_one_error_line(result, 4, "failed with HTTP 500 after 1 retries")
    assert len(server.requests) == 2


@pytest.mark.slow
def test_401_is_exit_4_naming_the_key(tmp_path: Path) -> None:
    with FakeLLMServer("openai", [Reply(status=401)]) as server:
        result = suggest("openai", server, tmp_path)
    assert_one_error_line(result, 4, "refused the API key (HTTP 401): check OPENAI_API_KEY")


@pytest.mark.slow
def test_a_hang_past_the_timeout_falls_back_with_a_warning(tmp_path: Path) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan(), delay=30)]) as server:
        result = suggest("openai", server, tmp_path, flags="--timeout 1 --max-retries 0")
    assert {e["generator"] for e in plan_of(result)["experiments"]} == {"builtin"}
    assert "did not answer within 1s; the builtin planner plans instead" in result.stderr


@pytest.mark.slow
def test_a_cached_rerun_is_byte_identical_and_offline(tmp_path: Path) -> None:
    cache = f"--cache-dir {shlex.quote(str(tmp_path / 'answers'))}"
    with FakeLLMServer("anthropic", [Reply(answers.valid_plan())]) as server:
        first = suggest("anthropic", server, tmp_path, flags=cache)
    with FakeLLMServer("anthropic", [Reply(status=500)]) as server:
        second = suggest("anthropic", server, tmp_path, flags=f"{cache} --offline")
        third = suggest("anthropic", server, tmp_path, flags=cache)
    assert plan_of(first)["experiments"][0]["generator"] == "llm:anthropic/test-model"
    assert second.stdout == first.stdout and third.stdout == first.stdout
    assert server.requests == []


def test_offline_without_a_cached_answer_is_exit_4(tmp_path: Path) -> None:
    with FakeLLMServer("openai", [Reply(answers.valid_plan())]) as server:
        result = suggest("openai", server, tmp_path, flags="--offline")
    assert_one_error_line(result, 4, "--offline: no cached answer")
    assert server.requests == []


@pytest.mark.slow
def test_anonymize_sends_no_real_name(tmp_path: Path) -> None:
    with FakeLLMServer("gemini", [Reply(answers.valid_plan())]) as server:
        result = suggest("gemini", server, tmp_path, flags="--anonymize")
    plan_of(result)
    data = answers.cluster_data(server.prompts()[0])
    for name in answers.REAL_NAMES:
        assert not re.search(rf"(?i)(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", data), name
