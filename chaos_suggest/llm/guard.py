"""The guard between a model's answer and stdout: model output is untrusted input.

Called by suggest.py on every answer (first and repair round). An experiment passes only if it has no command
field of any kind, validates against the ExperimentPlan experiment schema, keeps the safety policy
(chaosgen.policy) and names only what exists in the Topology, with a label selector that selects the target's pods
and nothing else. Every rejection names the rule it broke, so the repair round and the warnings can say so.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeGuard

from chaos_suggest.promql import family_of
from chaos_suggest.topology import TopologyIndex
from chaosgen import API_VERSION
from chaosgen.documents import iter_json_path
from chaosgen.faults import BY_NAME, PARAMETERS
from chaosgen.llm.answers import UnreadableAnswer, read_json_answer
from chaosgen.policy import tier_violations, violations
from chaosgen.promql import vector_selectors
from chaosgen.resources import resource_dir
from chaosgen.schemas import all_errors

# Fields the model does not write: the guard sets generator and a provisional id, core.assemble_plan the final
# id and rank (from the position in the plan).
SET_BY_GUARD = ("id", "rank", "generator")
# Litmus cmdProbe and anything else that would run a command somewhere: never from a model.
_COMMAND_WORDS = {"cmd", "command", "commands", "shell", "script", "scripts", "exec", "bash", "sh", "entrypoint"}
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# The prose a model writes, which later stages print, template and annotate: (path, label) of each.
_FREE_TEXT = (("title",), ("hypothesis",), ("blast_radius", "description"), ("rationale", "summary"))
# What would mean something to a shell or a YAML reader if the text were ever pasted into one.
_SHELL_OR_YAML = re.compile(r"\$[({]|`|(^|\n)\s*(---|\.\.\.)(\s|$)")


@dataclass(frozen=True)
class Problem:
    rule: str
    message: str


@dataclass
class Rejection:
    """One experiment of the answer that failed, with every rule it broke."""

    index: int
    experiment: Any
    problems: list[Problem]

    @property
    def label(self) -> str:
        """experiments[1] (pod-delete on shop/Deployment/api), as far as the experiment says."""
        where = f"experiments[{self.index}]"
        if not isinstance(self.experiment, dict):
            return where
        fault, target = self.experiment.get("fault"), self.experiment.get("target")
        fault_type = fault.get("type") if isinstance(fault, dict) else None
        workload = target.get("workload") if isinstance(target, dict) else None
        if isinstance(fault_type, str) and isinstance(workload, str):
            where += f" ({fault_type[:40]} on {workload[:120]})"
        return where


@dataclass
class Verdict:
    """What the guard made of one answer: the experiments that passed, and the rejections or an answer error."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    answer_error: Problem | None = None
    over_count: int = 0  # experiments past the requested count, not examined

    @property
    def clean(self) -> bool:
        return not self.rejected and self.answer_error is None


class AnswerUnusable(Exception):
    """The answer as a whole is not a JSON object with an experiments array."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(f"{problem.rule}: {problem.message}")


def parse_answer(text: str) -> list[Any]:
    """The experiments array of an answer (chaosgen.llm.answers reads it)."""
    try:
        return read_json_answer(text, "experiments")
    except UnreadableAnswer as e:
        raise AnswerUnusable(Problem(e.rule, e.message)) from e


class Guard:
    """Checks experiments against one Topology and policy; generator is what accepted experiments record."""

    def __init__(self, topology: dict[str, Any], policy: dict[str, Any], generator: str) -> None:
        self.policy = policy
        self.generator = generator
        self.index = TopologyIndex(topology)
        self.workloads = self.index.workloads
        self.known_workloads = set(self.workloads)
        self.replicas = {workload_id: workload["replicas"] for workload_id, workload in self.workloads.items()}
        self.edges = {f"{d['from']} -> {d['to']}" for d in topology["dependencies"]}
        self.nodes = sorted({node for w in topology["workloads"] for node in w.get("runtime", {}).get("nodes") or []})

    def check(self, experiments: list[Any], taken: Sequence[dict[str, Any]] = (), limit: int | None = None) -> Verdict:
        """Sort experiments into accepted and rejected; taken are experiments accepted before (no duplicates).

        Only the first limit experiments are examined (the policy's max_experiments); the rest are only counted.
        """
        verdict = Verdict()
        if limit is not None and len(experiments) > limit:
            verdict.over_count = len(experiments) - limit
            experiments = experiments[:limit]
        seen = {(e["target"]["workload"], e["fault"]["type"]) for e in taken}
        for index, experiment in enumerate(experiments):
            completed, problems = self._examine(index, experiment)
            if not problems:
                test = (completed["target"]["workload"], completed["fault"]["type"])
                if test in seen:
                    problems = [Problem("duplicate-test", f"{test[1]} on {test[0]} is already in the plan")]
            if problems:
                verdict.rejected.append(Rejection(index, experiment, problems))
                continue
            seen.add(test)
            verdict.accepted.append(completed)
        return verdict

    def _examine(self, index: int, experiment: Any) -> tuple[dict[str, Any], list[Problem]]:
        """The completed experiment and every problem it has (none: it may go out)."""
        if not isinstance(experiment, dict):
            return {}, [Problem("schema", f"$.experiments[{index}]: an experiment must be a JSON object")]
        commands = sorted(_command_fields(experiment))
        if commands:
            return {}, [Problem("no-command-probe", f"command or probe fields are never accepted: {', '.join(commands[:3])}")]
        completed = self._complete(index, experiment)
        problems = [Problem("schema", f"{path}: {message}") for path, message in _schema_errors(completed, index)]
        if problems:
            return completed, problems
        problems = _text_problems(completed)
        problems += [
            Problem(rule, message) for rule, message in violations(completed, self.policy, self.known_workloads, self.replicas)
        ]
        return completed, problems + _parameter_problems(completed) + self._topology_problems(completed)

    def _complete(self, index: int, experiment: dict[str, Any]) -> dict[str, Any]:
        """The experiment with the guard's fields set and its blast radius widened to every transitive caller.

        The callers are facts of the Topology, not judgement, so the guard adds them rather than trusting the model
        to list them; the policy then checks the namespaces of the whole blast radius.
        """
        completed = {key: copy.deepcopy(value) for key, value in experiment.items() if key not in SET_BY_GUARD}
        completed["id"] = f"llm-{index + 1}"
        completed["generator"] = self.generator
        target = completed.get("target")
        blast = completed.get("blast_radius")
        if not (isinstance(target, dict) and target.get("workload") in self.workloads and isinstance(blast, dict)):
            return completed
        listed, namespaces = blast.get("workloads"), blast.get("namespaces")
        if _all_strings(listed) and _all_strings(namespaces):
            callers = {*listed, *self.index.transitive_callers(target["workload"])} - {target["workload"]}
            blast["workloads"] = [target["workload"], *sorted(callers)]
            blast["namespaces"] = sorted({*namespaces, *(w.split("/")[0] for w in blast["workloads"])})
        fault = completed.get("fault")
        if isinstance(fault, dict) and fault.get("type") == "node-drain" and "litmus_node" not in target:
            # Where Litmus's own pods run during a drain is a fact of the Topology, as for the planner: another node
            # of the target's, else any other node the Topology knows.
            nodes = self.workloads[target["workload"]].get("runtime", {}).get("nodes") or []
            others = [n for n in [*sorted(nodes), *self.nodes] if n != target.get("node")]
            if target.get("node") and others:
                target["litmus_node"] = others[0]
        return completed

    def _topology_problems(self, experiment: dict[str, Any]) -> list[Problem]:
        """What the policy cannot know: the experiment must agree with the Topology it was planned from."""
        problems: list[Problem] = []
        blast = experiment["blast_radius"]
        unknown = sorted(set(blast["workloads"]) - self.known_workloads)
        if unknown:
            problems.append(Problem("unknown-workload", f"blast_radius names workloads that do not exist: {', '.join(unknown[:3])}"))
        workload = self.workloads.get(experiment["target"]["workload"])
        if workload is None:
            return problems  # the policy's unknown-target says it
        problems += self._selector_problems(experiment["target"]["label_selector"], workload)
        problems += self._process_input_problems(experiment, workload)
        problems += self._telemetry_problems(experiment)
        problems += [Problem(rule, message) for rule, message in tier_violations(workload["tier"], self.policy)]
        if _litmus_percent(experiment["parameters"].get("pods_affected_percent", 0), workload["replicas"]) > blast["pods_affected_percent"]:
            problems.append(Problem(
                "blast-radius-understated", "blast_radius.pods_affected_percent is lower than parameters.pods_affected_percent",
            ))
        if workload["replicas"] > 1 and (blast.get("total_loss") or blast["pods_affected_percent"] == 100):
            # The policy's total-loss exception exists for single-replica workloads, where any fault is total.
            problems.append(Problem(
                "total-loss-replicated",
                f"{workload['id']} has {workload['replicas']} replicas: taking every pod at once is an outage, not a test",
            ))
        made_up_risks = sorted(set(experiment["rationale"]["risks"]) - {risk["id"] for risk in workload["risks"]})
        if made_up_risks:
            problems.append(Problem("unknown-risk", f"{workload['id']} has no risk {', '.join(made_up_risks[:3])}"))
        made_up_edges = sorted(set(experiment["rationale"]["dependencies"]) - self.edges)
        if made_up_edges:
            problems.append(Problem("unknown-dependency", f"no dependency {'; '.join(made_up_edges[:3])} in the topology"))
        return problems

    def _telemetry_problems(self, experiment: dict[str, Any]) -> list[Problem]:
        """With telemetry in the Topology, a query may read only the request families Prometheus was found to
        have: a threshold on a family the cluster lacks reads 0 forever and can never fire."""
        if self.index.telemetry is None:
            return []
        found = sorted(self.index.telemetry.get("families", {}))
        checks = [(f"abort_thresholds[{n}]", t) for n, t in enumerate(experiment["abort_thresholds"])]
        checks += [(f"steady_state[{n}]", c) for n, c in enumerate(experiment["steady_state"]) if "query" in c]
        problems = []
        for where, check in checks:
            try:
                metrics = vector_selectors(check["query"])
            except ValueError:
                continue  # the policy's invalid-promql says it
            for metric in metrics:
                family = family_of(metric)
                if family is not None and family not in found:
                    problems.append(Problem("metric-not-in-telemetry", (
                        f"{where} reads {metric} ({family}), which the Topology's telemetry did not find in Prometheus"
                        f" (it has: {', '.join(found) or 'none'}); use the family the workload lists under telemetry")))
        return problems

    def _selector_problems(self, selector: str, workload: dict[str, Any], where: str = "label_selector") -> list[Problem]:
        """The label selector must select the target's pods and no other workload's (or the fault spreads)."""
        pairs = dict(pair.split("=", 1) for pair in selector.split(","))
        if any(workload["labels"].get(key) != value for key, value in pairs.items()):
            return [Problem("selector-mismatch", f"{where} {selector} does not select the pods of {workload['id']}")]
        others = sorted(
            other["id"] for other in self.workloads.values()
            if other["namespace"] == workload["namespace"] and other["id"] != workload["id"]
            and all(other["labels"].get(key) == value for key, value in pairs.items())
        )
        if others:
            return [Problem("selector-too-broad", f"{where} {selector} also selects {', '.join(others[:3])}")]
        return []

    def _process_input_problems(self, experiment: dict[str, Any], workload: dict[str, Any]) -> list[Problem]:
        """What Litmus hands to a process (env values, probe inputs) must be the target's own, per the Topology."""
        problems = []
        node = experiment["target"].get("node")
        nodes = workload.get("runtime", {}).get("nodes") or []
        if node is not None and node not in nodes:
            known = f"it runs on {', '.join(sorted(nodes)[:5])}" if nodes else "the Topology knows no node it runs on"
            problems.append(Problem("unknown-node", f"target.node {node} is not a node {workload['id']} runs on ({known})"))
        litmus_node = experiment["target"].get("litmus_node")
        if litmus_node is not None and litmus_node not in self.nodes:
            problems.append(Problem("unknown-node", f"target.litmus_node {litmus_node} is not a node of the Topology"))
        fault = BY_NAME.get(experiment["fault"]["type"])
        if fault is not None and fault.first_label_only:
            key, _, value = experiment["target"]["label_selector"].split(",")[0].partition("=")
            own = 1 if workload["labels"].get(key) == value else 0
            if self.index.label_counts.get((workload["namespace"], key, value), 0) > own:
                problems.append(Problem(
                    "first-label-not-unique",
                    f"{fault.name} aims by the first label only, and {key}={value} is carried by other workloads too",
                ))
        container = experiment["parameters"].get("container")
        containers = [c["name"] for c in workload.get("containers", [])]
        if container is not None and container not in containers:
            known = f"it has {', '.join(containers[:5])}" if containers else "the Topology lists no container of it"
            problems.append(Problem("unknown-container", f"container {container} is not one of {workload['id']} ({known})"))
        for number, check in enumerate(experiment["steady_state"]):
            if check["type"] != "k8s":
                continue
            where = f"steady_state[{number}]"
            if check["namespace"] != workload["namespace"]:
                problems.append(Problem(
                    "probe-not-target", f"{where}.namespace {check['namespace']} is not the target's namespace {workload['namespace']}",
                ))
            problems += [
                Problem("probe-not-target", problem.message)
                for problem in self._selector_problems(check["label_selector"], workload, f"{where}.label_selector")
            ]
        return problems


def _litmus_percent(percent: int, replicas: int) -> int:
    """The share of pods Litmus really hits for PODS_AFFECTED_PERC: max(1, floor(percent * pods / 100)) of them."""
    if percent <= 0 or replicas <= 0:
        return 0
    return -(-max(1, replicas * percent // 100) * 100 // replicas)


def _text_problems(experiment: dict[str, Any]) -> list[Problem]:
    """Prose is data for people: no control or invisible format characters, nothing a shell or YAML would read."""
    texts = [(".".join(path), _at(experiment, path)) for path in _FREE_TEXT]
    texts += [(f"abort_thresholds[{n}].description", t.get("description")) for n, t in enumerate(experiment["abort_thresholds"])]
    problems = []
    for where, text in texts:
        if not isinstance(text, str):
            continue
        if any(unicodedata.category(char) in ("Cc", "Cf") for char in text):
            problems.append(Problem("unsafe-text", f"{where} holds a control or invisible formatting character"))
        elif _SHELL_OR_YAML.search(text):
            problems.append(Problem("unsafe-text", f"{where} holds $(, ${{, a backtick or a YAML document marker"))
    return problems


def _at(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None  # type: ignore[assignment]
    return document


def _parameter_problems(experiment: dict[str, Any]) -> list[Problem]:
    """Each parameter within the fault catalogue's bounds (the catalogue, not the schema, is where they live)."""
    problems = []
    for name, value in experiment["parameters"].items():
        parameter = PARAMETERS[name]
        low, high = parameter.minimum, parameter.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(Problem("parameter-out-of-bounds", f"parameters.{name} {value} is outside {low}..{high}"))
        if parameter.choices and value not in parameter.choices:
            problems.append(Problem("parameter-out-of-bounds", f"parameters.{name} is not one of {', '.join(parameter.choices)}"))
    return problems


def _all_strings(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _command_fields(value: Any, parts: tuple[Any, ...] = ()) -> set[str]:
    """JSON paths of keys (or probe types) that ask for a command to be run."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            here = (*parts, key)
            if _names_a_command(str(key)) or (key == "type" and isinstance(item, str) and _names_a_command(item)):
                found.add(iter_json_path(here))
            found |= _command_fields(item, here)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found |= _command_fields(item, (*parts, number))
    return found


def _names_a_command(name: str) -> bool:
    """cmdProbe, command, shell_script, exec... by their words, so that 'description' is not 'script'."""
    words = _WORD.findall(name)
    return any(word.lower() in _COMMAND_WORDS for word in words)


def _schema_errors(experiment: dict[str, Any], index: int) -> list[tuple[str, str]]:
    """Schema errors of one experiment, with paths as they are in the model's answer ($.experiments[index]...)."""
    plan = {"apiVersion": API_VERSION, "kind": "ExperimentPlan", "metadata": {"generator": "guard", "source": {"type": "document"}},
            "experiments": [experiment]}
    errors = []
    for path, message in all_errors(plan, "ExperimentPlan"):
        path = path.replace("$.experiments[0]", f"$.experiments[{index}]", 1)
        errors.append((path, message if len(message) <= 300 else message[:297] + "..."))
    return errors


@cache
def _bundled_experiment_schema() -> str:
    """The ExperimentPlan experiment schema with every $ref inlined, as JSON (a string, so nobody mutates it)."""
    files = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in resource_dir("schemas").glob("*.schema.json")}
    plan_file = "experiment-plan.schema.json"
    return json.dumps(_inline_refs(files[plan_file]["$defs"]["experiment"], plan_file, files))


def _inline_refs(node: Any, current: str, files: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, current, files) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        file_name, _, pointer = node["$ref"].partition("#")
        file_name = file_name or current
        target = files[file_name]
        for part in pointer.strip("/").split("/"):
            target = target[part]
        return _inline_refs(target, file_name, files)
    return {key: _inline_refs(value, current, files) for key, value in node.items() if key not in ("$schema", "$id")}


def _without_conditionals(node: Any) -> Any:
    """allOf of if/then (the steady-state check's shape) as anyOf of variants: what structured-output modes accept."""
    if isinstance(node, list):
        return [_without_conditionals(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _without_conditionals(value) for key, value in node.items()}
    branches = node.get("allOf")
    if not branches or not all("if" in b and "then" in b for b in branches):
        return node
    base_properties = node.get("properties", {})
    variants = []
    for branch in branches:
        variant = copy.deepcopy(branch["then"])
        for name, schema in variant.get("properties", {}).items():
            if schema is True:
                fixed = branch["if"].get("properties", {}).get(name)
                variant["properties"][name] = fixed if fixed is not None else base_properties.get(name, {})
        variant["type"] = "object"
        variant["required"] = sorted({*variant.get("required", []), *node.get("required", [])})
        variants.append(variant)
    return {"anyOf": variants}


def answer_schema(count: int) -> dict[str, Any]:
    """The JSON Schema of the answer a model must give (structured output, and shown in the prompt)."""
    experiment = _without_conditionals(json.loads(_bundled_experiment_schema()))
    for name in SET_BY_GUARD:
        experiment["properties"].pop(name, None)
    experiment["required"] = [name for name in experiment["required"] if name not in SET_BY_GUARD]
    return {
        "type": "object",
        "properties": {"experiments": {"type": "array", "maxItems": count, "items": experiment}},
        "required": ["experiments"],
        "additionalProperties": False,
    }
