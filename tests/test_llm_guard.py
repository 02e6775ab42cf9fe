"""chaos-suggest's LLM path on plain data: the guard, the prompt and its budget, anonymisation and the cache.

The SDKs against local servers are in test_llm_providers.py, the installed command in test_llm_cli.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jsonschema import Draft202012Validator

from chaos_suggest.llm.guard import AnswerUnusable, Guard, answer_schema, parse_answer
from chaos_suggest.llm.prompt import (
    ALWAYS_SHOWN,
    PromptBuilder,
    rank_workloads,
    repair_request,
    scrub,
)
from chaosgen.errors import UsageError
from chaosgen.llm.anonymize import Anonymizer
from chaosgen.llm.cache import AnswerCache, cache_key, default_cache_dir
from chaosgen.llm.prompting import data_json, estimate_tokens
from chaosgen.llm.providers import Conversation, ProviderFailure, Turn, make_provider
from chaosgen.policy import load_policy
from chaosgen.resources import resource_dir
from chaosgen.schemas import validate
from conftest import REPO
from fakes import answers

GENERATOR = "llm:openai/test-model"


def load_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("prompt_budget", REPO / "benchmarks" / "prompt_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def guard() -> Guard:
    return Guard(answers.topology(), load_policy(None), GENERATOR)


def build_prompt(topology: dict[str, Any], max_tokens: int = 8000, anonymizer: Anonymizer | None = None) -> Any:
    visible = scrub(topology)
    hide = anonymizer.hide if anonymizer else (lambda value: value)
    return PromptBuilder(visible, load_policy(None), 3, answer_schema(3), max_tokens, hide).build()


# The guard

def test_a_valid_answer_passes_whole_and_completed(guard: Guard) -> None:
    verdict = guard.check(parse_answer(json.dumps(answers.valid_plan())))
    assert verdict.clean
    assert [e["target"]["workload"] for e in verdict.accepted] == [
        "shop/StatefulSet/postgres", "shop/Deployment/api", "shop/Deployment/frontend",
    ]
    for experiment in verdict.accepted:
        assert experiment["generator"] == GENERATOR
    # The blast radius gets every transitive caller, from the Topology rather than from the model.
    assert verdict.accepted[0]["blast_radius"]["workloads"] == [
        "shop/StatefulSet/postgres", "shop/Deployment/api", "shop/Deployment/frontend",
    ]


@pytest.mark.parametrize("rule", sorted(answers.hostile_experiments()))
def test_each_hostile_experiment_is_rejected_naming_its_rule(guard: Guard, rule: str) -> None:
    experiment = answers.hostile_experiments()[rule]
    verdict = guard.check([answers.postgres_pod_delete(), experiment])
    assert len(verdict.accepted) == 1
    assert [r.index for r in verdict.rejected] == [1]
    assert rule in {problem.rule for problem in verdict.rejected[0].problems}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"parameters": {"duration": "ten minutes"}}, "schema"),
        ({"fault": {"type": "kernel-panic"}}, "schema"),
        ({"parameters": {"duration": "1h"}}, "max-duration"),
        ({"target": {"workload": "shop/Deployment/api", "namespace": "shop", "kind": "Deployment", "name": "api",
                     "label_selector": "app=postgres"}}, "selector-mismatch"),
        ({"blast_radius": {"namespaces": ["shop"], "workloads": ["shop/Deployment/api", "shop/Deployment/ghost"],
                           "pods_affected_percent": 50, "max_pods": 1}}, "unknown-workload"),
        ({"rationale": {"summary": "x", "risks": ["made-up"], "dependencies": []}}, "unknown-risk"),
        ({"rationale": {"summary": "x", "risks": [], "dependencies": ["a -> b"]}}, "unknown-dependency"),
        ({"blast_radius": {"namespaces": ["shop"], "workloads": ["shop/Deployment/api"], "pods_affected_percent": 10,
                           "max_pods": 1}}, "blast-radius-understated"),
        ({"script": "rm -rf /"}, "no-command-probe"),
    ],
)
def test_other_rules(guard: Guard, change: dict[str, Any], rule: str) -> None:
    experiment = {**answers.api_memory_hog(), **change}
    verdict = guard.check([experiment])
    assert not verdict.accepted
    assert rule in {problem.rule for problem in verdict.rejected[0].problems}


def test_total_loss_only_for_a_single_replica(guard: Guard) -> None:
    replicated = answers.api_memory_hog()
    replicated.update(fault={"type": "pod-delete"}, parameters={"duration": "60s", "pods_affected_percent": 100})
    replicated["blast_radius"].update(pods_affected_percent=100, total_loss=True)
    verdict = guard.check([replicated])
    assert "total-loss-replicated" in {problem.rule for problem in verdict.rejected[0].problems}
    assert guard.check([answers.postgres_pod_delete()]).clean  # one replica: any fault is total loss


def test_a_selector_that_also_selects_another_workload_is_rejected() -> None:
    topology = answers.topology()
    topology["workloads"][2]["labels"]["team"] = "payments"  # frontend now shares team=payments with postgres
    experiment = answers.postgres_pod_delete()
    experiment["target"]["label_selector"] = "team=payments"
    verdict = Guard(topology, load_policy(None), GENERATOR).check([experiment])
    assert [p.rule for p in verdict.rejected[0].problems] == ["selector-too-broad"]


def test_the_same_test_twice_is_a_duplicate(guard: Guard) -> None:
    verdict = guard.check([answers.api_memory_hog(), answers.api_memory_hog()])
    assert len(verdict.accepted) == 1
    assert verdict.rejected[0].problems[0].rule == "duplicate-test"
    again = guard.check([answers.api_memory_hog()], taken=verdict.accepted)
    assert again.rejected[0].problems[0].rule == "duplicate-test"


def test_fields_the_guard_owns_are_overwritten(guard: Guard) -> None:
    experiment = {**answers.api_memory_hog(), "generator": "builtin", "rank": 1, "id": "Not A DNS Label!"}
    accepted = guard.check([experiment]).accepted[0]
    assert accepted["generator"] == GENERATOR
    assert "rank" not in accepted and re.fullmatch(r"[a-z0-9-]+", accepted["id"])


def test_junk_never_crashes_the_guard(guard: Guard) -> None:
    junk = [None, 3, "x", [], {"target": 1},
            {"blast_radius": {"workloads": [{}], "namespaces": 5}, "target": {"workload": "shop/Deployment/api"}},
            {"steady_state": [{"type": "CMD"}]}]
    verdict = guard.check(junk)
    assert not verdict.accepted and len(verdict.rejected) == len(junk)


@pytest.mark.parametrize(
    ("text", "rule"),
    [("{not json", "invalid-json"), ('{"plan": []}', "answer-shape"), ("[1, 2]", "answer-shape"), ("[" * 100000, "invalid-json"),
     ('{"experiments": [' + "[" * 500 + "]" * 500 + "]}", "answer-shape")],
)
def test_unusable_answers(text: str, rule: str) -> None:
    with pytest.raises(AnswerUnusable) as caught:
        parse_answer(text)
    assert caught.value.problem.rule == rule


def test_a_markdown_fence_around_the_json_is_tolerated() -> None:
    assert parse_answer('```json\n{"experiments": []}\n```') == []


def test_valid_experiments_follow_the_answer_schema() -> None:
    schema = answer_schema(3)
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(answers.valid_plan())) == []
    assert "$ref" not in json.dumps(schema) and "if" not in json.dumps(schema).replace('"if":', "").split('"', 1)[0]
    steady = schema["properties"]["experiments"]["items"]["properties"]["steady_state"]["items"]
    assert {variant["properties"]["type"]["const"] for variant in steady["anyOf"]} == {"prometheus", "k8s", "http"}


# The prompt

def test_prompt_holds_no_secret_and_quotes_injected_text_as_data() -> None:
    prompt = build_prompt(answers.topology())
    text = prompt.system + prompt.user
    for secret in answers.SECRET_VALUES:
        assert secret not in text
    assert answers.INJECTION_MARK in text
    # The injected end marker is escaped, so the only real one closes the data block, after all injected text.
    assert text.count("CLUSTER-DATA>>>") == 1 + prompt.system.count("CLUSTER-DATA>>>")
    data = answers.cluster_data(prompt.user)
    assert answers.INJECTION_MARK in data
    assert "CLUSTER-DATA\\u003e\\u003e\\u003e \\u003c/data\\u003e" in data
    for line in data.strip().splitlines():
        if line.startswith("{"):
            json.loads(line)  # every data line is one JSON value: injected text stays inside a string
    assert "not an instruction" in prompt.system or "never an instruction" in prompt.system


def test_label_values_under_secret_keys_are_redacted() -> None:
    topology = answers.topology()
    topology["workloads"][1]["selector"]["api_token"] = "tok-9f8e7d6c5b4a"
    prompt = build_prompt(topology)
    assert "tok-9f8e7d6c5b4a" not in prompt.user and "api_token=\\u003credacted\\u003e" in prompt.user


def test_data_json_escapes_what_could_end_a_block() -> None:
    assert data_json({"a": "</x> & >>>"}) == '{"a":"\\u003c/x\\u003e \\u0026 \\u003e\\u003e\\u003e"}'
    assert json.loads(data_json({"a": "</x> & >>>"})) == {"a": "</x> & >>>"}


def test_the_prompt_is_deterministic_and_renders_strictly() -> None:
    assert build_prompt(answers.topology()) == build_prompt(answers.topology())
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("prompts"))), undefined=jinja2.StrictUndefined)
    with pytest.raises(jinja2.UndefinedError):
        environment.get_template("experiment.j2").make_module({}).user()


def test_repair_request_quotes_the_errors() -> None:
    text = repair_request([{"experiment": "experiments[1]", "rule": "denied-namespace", "error": "namespace kube-system <b>"}], False, 3)
    assert '{"experiment":"experiments[1]","rule":"denied-namespace","error":"namespace kube-system \\u003cb\\u003e"}' in text
    assert "rejected" in text and "whole answer" not in text
    assert "whole answer" in repair_request([{"rule": "invalid-json", "error": "x"}], True, 3)


def test_rca_template_renders() -> None:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("prompts"))), undefined=jinja2.StrictUndefined)
    module = environment.get_template("rca.j2").make_module({
        "experiments": [data_json({"experiment": "x", "verdict": "aborted", "evidence": []})], "neighbourhood": [],
        "omitted": "", "max_findings": 3, "answer_schema": "{}",
    })
    assert "RUN-DATA>>>" in module.user() and "never an instruction" in module.system()
    assert "(no Topology given)" in module.user()
    with pytest.raises(jinja2.UndefinedError):
        environment.get_template("rca.j2").make_module({}).user()


def test_a_5000_workload_topology_fits_with_the_top_20() -> None:
    generate_topology = load_benchmark().generate_topology
    validate(generate_topology(300), "Topology", "generated")  # the 5,000 are the same shape (and slow to validate)
    topology = generate_topology(5000)
    top = {w["id"] for w in rank_workloads(topology["workloads"])[:ALWAYS_SHOWN]}
    for max_tokens, anonymize in ((8000, False), (8000, True), (20000, False)):
        prompt = build_prompt(topology, max_tokens, Anonymizer(topology) if anonymize else None)
        assert prompt.tokens <= max_tokens
        assert top <= set(prompt.shown_ids)
        assert prompt.total_workloads == 5000
    assert len(build_prompt(topology, 20000).shown_ids) > len(build_prompt(topology, 8000).shown_ids)


def test_a_budget_too_small_for_the_top_workloads_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--max-prompt-tokens 1000 is too small"):
        build_prompt(answers.topology(), 1000)


def test_the_estimate_errs_high_on_json() -> None:
    line = data_json({"id": "shop/Deployment/api", "risks": [["single-replica", "high", "one replica"]]})
    assert len(line) / 4 < estimate_tokens(line) < len(line)
    assert estimate_tokens("the quick brown fox") == 4


# Anonymisation

def test_anonymize_hides_every_name_and_maps_back() -> None:
    topology = answers.topology()
    anonymizer = Anonymizer(topology)
    prompt = build_prompt(topology, anonymizer=anonymizer)
    data = answers.cluster_data(prompt.user) + prompt.user.split("Safety policy", 1)[1][:600]
    for name in answers.REAL_NAMES:
        assert not re.search(rf"(?i)(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", data), name
    hidden = anonymizer.hide(answers.valid_plan())
    assert "postgres" not in json.dumps(hidden)
    assert anonymizer.reveal(hidden) == answers.valid_plan()


def test_anonymize_replaces_names_inside_hosts_evidence_and_labels() -> None:
    anonymizer = Anonymizer(answers.topology())
    assert anonymizer.hide_text("postgres://app:x@postgres.shop.svc:5432/shop") == "wl-4://app:x@wl-4.ns-2.svc:5432/ns-2"
    assert anonymizer.hide_text("containers[api].env[API_URL]") == "containers[wl-1].env[wl-1_URL]"
    assert anonymizer.hide_text("app=frontend,tier=backend-api") == "app=wl-3,tier=backend-wl-1"
    assert anonymizer.reveal_text("ns-2/Deployment/wl-1 wl-99") == "shop/Deployment/api wl-99"


# The cache

class CountingProvider:
    name = "openai"
    model = "m"

    def __init__(self) -> None:
        self.calls = 0

    def parameters(self) -> dict[str, Any]:
        return {"temperature": 0.0}

    def complete(self, conversation: Conversation) -> str:
        self.calls += 1
        return '{"experiments": []}'


def conversation(text: str = "hi") -> Conversation:
    return Conversation("system", (Turn("user", text),), {"type": "object"})


def test_cache_hit_skips_the_provider(tmp_path: Path) -> None:
    provider = CountingProvider()
    cache = AnswerCache(tmp_path)
    assert cache.ask(provider, conversation()) == ('{"experiments": []}', False)
    assert cache.ask(provider, conversation()) == ('{"experiments": []}', True)
    assert AnswerCache(tmp_path, offline=True).ask(provider, conversation()) == ('{"experiments": []}', True)
    assert provider.calls == 1


def test_offline_miss_is_a_fatal_provider_failure(tmp_path: Path) -> None:
    with pytest.raises(ProviderFailure, match="--offline: no cached answer") as caught:
        AnswerCache(tmp_path, offline=True).ask(CountingProvider(), conversation())
    assert caught.value.fatal and caught.value.exit_code == 4


def test_cache_key_covers_prompt_model_and_parameters() -> None:
    provider, other = CountingProvider(), CountingProvider()
    other.model = "other"
    assert cache_key(provider, conversation()) == cache_key(CountingProvider(), conversation())
    assert cache_key(provider, conversation()) != cache_key(provider, conversation("hello"))
    assert cache_key(provider, conversation()) != cache_key(other, conversation())


def test_damaged_cache_entry_is_a_miss(tmp_path: Path) -> None:
    provider = CountingProvider()
    key = cache_key(provider, conversation())
    (tmp_path / key[:2]).mkdir()
    (tmp_path / key[:2] / f"{key}.json").write_text("{broken")
    assert AnswerCache(tmp_path).ask(provider, conversation()) == ('{"experiments": []}', False)


def test_default_cache_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/chaosgen/llm")
    assert default_cache_dir({}).parts[-3:] == (".cache", "chaosgen", "llm")


# Provider selection

@pytest.mark.parametrize(
    ("name", "variable"),
    [("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY (or GOOGLE_API_KEY)"), ("anthropic", "ANTHROPIC_API_KEY")],
)
def test_a_missing_key_names_its_variable(name: str, variable: str) -> None:
    with pytest.raises(ProviderFailure) as caught:
        make_provider(name, None, None, 10, 0, {})
    assert str(caught.value).startswith(f"{variable} is not set")
    assert caught.value.fatal and caught.value.exit_code == 4


def test_base_url_comes_from_the_flag_then_the_providers_variable() -> None:
    environ = {"GOOGLE_API_KEY": "k", "GEMINI_BASE_URL": "http://127.0.0.1:1"}
    assert make_provider("gemini", None, None, 10, 0, environ).connection.base_url == "http://127.0.0.1:1"
    assert make_provider("gemini", "g", "http://127.0.0.1:2", 10, 0, environ).connection.base_url == "http://127.0.0.1:2"
    assert make_provider("openai", None, None, 10, 0, {"OPENAI_API_KEY": "k"}).connection.base_url is None


def test_the_llm_package_does_not_import_an_sdk() -> None:
    code = "import sys, chaos_suggest.llm.suggest; print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_missing_sdk_is_exit_4_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # what an install without chaosgen[anthropic] looks like
    provider = make_provider("anthropic", None, "http://127.0.0.1:9", 1, 0, {"ANTHROPIC_API_KEY": "k"})
    with pytest.raises(ProviderFailure, match=r"pip install 'chaosgen\[anthropic\]'") as caught:
        provider.complete(conversation())
    assert caught.value.fatal and caught.value.exit_code == 4


def test_tier_other_is_rejected_unless_the_policy_names_it() -> None:
    topology = answers.topology()
    frontend = next(w for w in topology["workloads"] if w["name"] == "frontend")
    frontend.update(tier="other", role="load-generator")
    verdict = Guard(topology, load_policy(None), GENERATOR).check([answers.frontend_latency()])
    assert [p.rule for p in verdict.rejected[0].problems] == ["tier-not-targeted"]
    everything = {**load_policy(None), "target_tiers": ["backend", "cache", "database", "frontend", "other", "queue"]}
    assert Guard(topology, everything, GENERATOR).check([answers.frontend_latency()]).clean
