"""Every place that knows a fault type agrees with the fault catalogue (chaosgen.faults): the schemas, the policy,
the LLM prompt, chaos-litmus's env and vendored ChaosExperiments, the built-in planner and the sandbox's Litmus
stand-in. Each test fails when its consumer names a fault, a parameter or a bound the catalogue does not."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chaos_litmus import catalogue, core
from chaos_suggest.building import build_experiment
from chaos_suggest.llm.guard import answer_schema
from chaos_suggest.llm.prompt import PromptBuilder
from chaos_suggest.topology import TopologyIndex
from chaos_suggest.weaknesses import WEAKNESSES, candidates
from chaosgen.faults import FAULT_TYPES, FAULTS, PARAMETERS, TOTAL_LOSS_FAULTS, Family, Fault, Parameter, fault_named
from chaosgen.policy import DEFAULT_POLICY, load_policy, pods_affected_violations

REPO = Path(__file__).resolve().parents[1]
TOPOLOGIES = ("tests/data/llm/topology.json", "tests/golden/suggest/3tier.topology.json", "tests/golden/suggest/sock-shop.topology.json")


def schema(name: str) -> dict[str, Any]:
    return json.loads((REPO / "schemas" / name).read_text())


def topology(path: str) -> dict[str, Any]:
    return json.loads((REPO / path).read_text())


def accepted(fault: Fault) -> tuple[Parameter, ...]:
    return (*fault.parameters, *fault.also_accepted)


def within_bounds(parameter: Parameter, value: Any) -> bool:
    if parameter.type in ("duration", "string"):
        return isinstance(value, str) and value != ""
    if parameter.type == "boolean":
        return isinstance(value, bool)
    if parameter.type == "enum":
        return value in parameter.choices
    in_range = (parameter.minimum is None or value >= parameter.minimum) and (parameter.maximum is None or value <= parameter.maximum)
    return isinstance(value, int) and not isinstance(value, bool) and in_range


# --- the catalogue itself ---------------------------------------------------------------------------------------


def test_fault_names_parameters_and_env_vars_are_unique():
    assert len(set(FAULT_TYPES)) == len(FAULTS)
    assert len({p.litmus_env for p in PARAMETERS.values()}) == len(PARAMETERS)
    for fault in FAULTS:
        names = [p.name for p in accepted(fault)]
        assert len(set(names)) == len(names), fault.name
        assert all(PARAMETERS[p.name] is p for p in accepted(fault)), fault.name
        assert fault.parameters[0].name == "duration", f"{fault.name}: every experiment has a duration"
        assert fault.tests


def test_catalogue_defaults_are_within_their_bounds():
    for parameter in PARAMETERS.values():
        if parameter.default is not None:
            assert within_bounds(parameter, parameter.default), parameter.name


def test_total_loss_is_exactly_the_faults_that_take_pods_away():
    assert TOTAL_LOSS_FAULTS == tuple(f.name for f in FAULTS if f.family in (Family.REMOVES_PODS, Family.NODE))
    assert TOTAL_LOSS_FAULTS == ("pod-delete", "container-kill", "node-drain")


# --- the schemas (the contract stays static JSON; these tests keep it equal to the catalogue) ---------------------


def test_the_schema_fault_enum_is_the_catalogue():
    assert schema("common.schema.json")["$defs"]["faultType"]["enum"] == list(FAULT_TYPES)


def test_the_schema_parameters_are_the_catalogue_parameters_with_their_bounds():
    experiment = schema("experiment-plan.schema.json")
    properties = _find_parameters(experiment)
    assert sorted(properties) == sorted(PARAMETERS)
    for name, parameter in PARAMETERS.items():
        declared = properties[name]
        if parameter.type == "duration":
            assert declared == {"$ref": "common.schema.json#/$defs/duration"}, name
        elif parameter.type == "enum":
            assert declared["enum"] == list(parameter.choices), name
        else:
            assert declared["type"] == parameter.type, name
            assert declared.get("minimum") == parameter.minimum, name
            assert declared.get("maximum") == parameter.maximum, name


def _find_parameters(node: Any) -> dict[str, Any]:
    """The ExperimentPlan's experiment parameters properties, wherever the schema nests them."""
    if isinstance(node, dict):
        if "parameters" in node.get("properties", {}):
            return node["properties"]["parameters"]["properties"]
        for value in node.values():
            found = _find_parameters(value)
            if found:
                return found
    if isinstance(node, list):
        for value in node:
            found = _find_parameters(value)
            if found:
                return found
    return {}


# --- the policy -------------------------------------------------------------------------------------------------


def test_the_default_policy_allows_every_catalogue_fault():
    assert DEFAULT_POLICY["allowed_faults"] == list(FAULT_TYPES)
    assert load_policy(None)["allowed_faults"] == sorted(FAULT_TYPES)


@pytest.mark.parametrize("fault", FAULT_TYPES)
def test_the_policy_allows_total_loss_only_for_faults_that_take_pods_away(fault):
    broken = pods_affected_violations(100, fault, {"total_loss": True}, load_policy(None))
    assert (broken == []) == fault_named(fault).takes_pods_away


# --- the LLM prompt ---------------------------------------------------------------------------------------------


def prompt_text(policy: dict[str, Any]) -> str:
    return PromptBuilder(topology(TOPOLOGIES[0]), policy, 3, answer_schema(3)).build().user


def test_the_prompt_lists_every_allowed_fault_with_what_it_tests_and_its_parameters():
    text = prompt_text(load_policy(None))
    for fault in FAULTS:
        line = next(line for line in text.splitlines() if line.startswith(f"- {fault.name}: "))
        assert fault.tests in line
        assert line.split("; parameters: ")[1].startswith(", ".join(p.name for p in fault.parameters))
        for target_field, _ in fault.target_env:
            assert f"target.{target_field}" in line


def test_the_prompt_names_the_total_loss_faults_and_only_the_allowed_faults():
    policy = {**load_policy(None), "allowed_faults": ["node-drain", "pod-delete"]}
    text = prompt_text(policy)
    listed = [line[2:].split(":")[0] for line in text.splitlines() if re.match(r"- [a-z-]+: .*; parameters: ", line)]
    assert listed == ["node-drain", "pod-delete"]
    flowing = " ".join(text.split())
    assert f"a fault from {', '.join(TOTAL_LOSS_FAULTS[:-1])} or {TOTAL_LOSS_FAULTS[-1]}," in flowing


# --- chaos-litmus -----------------------------------------------------------------------------------------------


def test_every_fault_has_its_vendored_chaos_experiment():
    definitions = catalogue.definitions()
    assert list(definitions) == list(FAULT_TYPES)
    for fault in FAULTS:
        assert definitions[fault.name]["metadata"]["name"] == fault.litmus_experiment


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_TYPES)
def test_the_litmus_env_of_a_fault_is_declared_by_its_chaos_experiment(fault):
    declared = {item["name"] for item in catalogue.definitions()[fault.name]["spec"]["definition"]["env"]}
    assert fault.litmus_env <= declared
    assert core.FAULT_ENV[fault.name] == fault.litmus_env


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_TYPES)
def test_chaos_litmus_sets_each_accepted_parameter_as_its_env_var_and_warns_for_the_rest(fault):
    every_value = {"duration": "1m", "interval": "10s", "pods_affected_percent": 50, "force": True, "sequence": "serial",
                   "cpu_cores": 1, "memory_mb": 100, "latency_ms": 100, "jitter_ms": 10, "loss_percent": 10,
                   "container": "main", "replica_count": 3}
    assert set(every_value) == set(PARAMETERS)
    experiment = {
        "id": "x", "fault": {"type": fault.name}, "parameters": every_value, "blast_radius": {},
        "target": {"node": "worker-1"},
    }
    env = [item["name"] for item in core.fault_env(experiment)]
    assert set(env) == fault.litmus_env
    assert len(env) == len(set(env))
    ignored = {warning.split("parameter ")[1].split(" ")[0] for warning in core.ignored_parameters(experiment)}
    assert ignored == set(PARAMETERS) - {p.name for p in accepted(fault)}


def test_the_sandbox_litmus_stand_in_runs_catalogue_experiments_with_catalogue_env():
    source = (REPO / "tests" / "sandbox" / "litmus_runner.py").read_text()
    supported = re.search(r"^SUPPORTED = \(([^)]*)\)", source, re.M).group(1)
    experiments = {f.litmus_experiment: f for f in FAULTS}
    assert set(re.findall(r'"([a-z-]+)"', supported)) <= set(experiments)
    read = set(re.findall(r'self\.env\.get\("([A-Z_]+)"', source))
    assert read <= set().union(*(f.litmus_env for f in FAULTS))


# --- the built-in planner ---------------------------------------------------------------------------------------


def every_candidate_experiment() -> list[dict[str, Any]]:
    """An experiment for every candidate of the test topologies, and of one whose dependencies are all soft."""
    soft = copy.deepcopy(topology(TOPOLOGIES[2]))
    for edge in soft["dependencies"]:
        edge["hard"] = False
    # node-drain is planned only for replicas known to be spread over nodes (issue 13): a copy where they are.
    spread = copy.deepcopy(topology(TOPOLOGIES[0]))
    for workload in spread["workloads"]:
        workload["runtime"] = {"nodes": ["node-1", "node-2"]}
        workload["risks"].append({"id": "no-anti-affinity", "severity": "medium", "message": "replicas may share a node"})
    policy = load_policy(None)
    built = []
    for document in [topology(path) for path in TOPOLOGIES] + [soft, spread]:
        index = TopologyIndex(document)
        built += [build_experiment(index, candidate, policy) for candidate in candidates(index, policy)]
    return built


def test_every_weakness_names_a_catalogue_fault():
    assert {weakness.fault for weakness in WEAKNESSES} <= set(FAULT_TYPES)


def test_planner_parameters_are_the_faults_parameters_within_bounds_with_catalogue_defaults():
    built = every_candidate_experiment()
    assert {e["fault"]["type"] for e in built} == set(FAULT_TYPES)
    for experiment in built:
        fault = fault_named(experiment["fault"]["type"])
        parameters = experiment["parameters"]
        offered = [p.name for p in fault.parameters]
        assert list(parameters) == [name for name in offered if name in parameters], fault.name
        assert set(offered) - set(parameters) <= {"container", "interval"}, fault.name
        for name, value in parameters.items():
            parameter = PARAMETERS[name]
            assert within_bounds(parameter, value), (fault.name, name, value)
            if parameter.default is not None:
                assert value == parameter.default, (fault.name, name)
