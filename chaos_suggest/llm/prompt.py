"""The prompt of chaos-suggest's LLM providers: a compact, ranked view of the Topology inside prompts/experiment.j2.

Called by suggest.py. The view lists workloads by criticality, each with its risks and its dependency edges (with
evidence), and aggregates what does not fit --max-prompt-tokens, so a 5,000-workload Topology still fits while the
top workloads are all present. Every cluster-sourced value is JSON-encoded with <, > and & escaped, so that text
from a label or an annotation can neither close the data block nor pass for an instruction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos_suggest.topology import label_selector
from chaos_suggest.weaknesses import FAMILIES
from chaosgen.errors import UsageError
from chaosgen.faults import TOTAL_LOSS_FAULTS, fault_named
from chaosgen.llm.options import DEFAULT_MAX_PROMPT_TOKENS
from chaosgen.llm.prompting import data_json, estimate_tokens
from chaosgen.llm.prompting import template as _template
from chaosgen.secrets import is_secret_name, redact_strings, redact_value

ALWAYS_SHOWN = 20  # the top workloads by criticality are in every prompt, whatever the budget
EDGES_PER_WORKLOAD = 4  # a database with 500 callers shows its most relevant few and counts the rest
FILL_ATTEMPTS = 3
LIST_ITEMS = 4  # reasons, evidence... beyond this are counted, not listed
TEXT_CHARS = 240
OMITTED_NAMESPACES = 10
SEVERITY_WEIGHT = {"critical": 8, "high": 4, "medium": 2, "low": 1}

def scrub(topology: dict[str, Any]) -> dict[str, Any]:
    """The Topology with label values under secret-like keys redacted (a shallow copy; the input is not changed).

    chaos-inventory already redacts; this re-check covers input that came from somewhere else. The other half of
    the re-check, redact_strings on every string, runs on each line of cluster data as PromptBuilder writes it, so
    that it costs the size of the prompt rather than the size of the Topology.
    """
    workloads = []
    for workload in topology["workloads"]:
        if any(is_secret_name(key) for labels in (workload["labels"], workload["selector"]) for key in labels):
            workload = {
                **workload,
                "labels": {key: redact_value(key, value) for key, value in workload["labels"].items()},
                "selector": {key: redact_value(key, value) for key, value in workload["selector"].items()},
            }
        workloads.append(workload)
    return {**topology, "workloads": workloads}


def rank_workloads(workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most critical first; among equals the riskier first; ids break ties so the order is stable."""
    return sorted(
        workloads,
        key=lambda w: (-w["criticality"]["score"], -sum(SEVERITY_WEIGHT[r["severity"]] for r in w["risks"]), w["id"]),
    )


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and what it shows: shown_ids are the workloads present, rank order."""

    system: str
    user: str
    tokens: int
    shown_ids: tuple[str, ...]
    total_workloads: int


@dataclass
class _View:
    workloads: list[str]
    dependencies: list[str]
    shown_ids: list[str]


class PromptBuilder:
    """Renders experiment.j2 for one Topology and policy under a token budget.

    hide is applied to every piece of cluster data (and the policy) before it is measured or shown: the
    anonymizer's hide with --anonymize, the identity otherwise.
    """

    def __init__(
        self, topology: dict[str, Any], policy: dict[str, Any], count: int, answer_schema: dict[str, Any],
        max_tokens: int = DEFAULT_MAX_PROMPT_TOKENS, hide: Callable[[Any], Any] = lambda value: value,
    ) -> None:
        self.ranked = rank_workloads(topology["workloads"])
        self.rank = {w["id"]: index for index, w in enumerate(self.ranked)}
        self.dependencies = topology["dependencies"]
        self.max_tokens = max_tokens
        self.hide = hide
        self.fixed = {
            "count": count,
            "policy": data_json(hide(policy)),  # not cluster data, but it may name the application's namespaces
            "faults": [fault_named(name) for name in policy["allowed_faults"]],
            "families": list(FAMILIES.values()),
            "total_loss_faults": TOTAL_LOSS_FAULTS,
            "answer_schema": json.dumps(answer_schema, separators=(",", ":")),
            "total": len(self.ranked),
            # None: a Topology read without --prometheus-url, which knows nothing of the cluster's metrics.
            "telemetry_families": None if "telemetry" not in topology else sorted(topology["telemetry"]["families"]),
        }
        self._incident: dict[str, list[dict[str, Any]]] = {}
        for dependency in self.dependencies:
            self._incident.setdefault(dependency["from"], []).append(dependency)
            if not dependency["external"] and dependency["to"] != dependency["from"]:
                self._incident.setdefault(dependency["to"], []).append(dependency)

    def build(self) -> Prompt:
        """The prompt with as much of the Topology as fits; UsageError when not even the top workloads fit.

        The parts are measured one by one; when the whole comes out a little over (the estimate is not quite
        additive), the room is cut by the excess and the view filled again.
        """
        room = self.max_tokens - self._tokens(_View([], [], []), omitted_all=True)
        for _ in range(FILL_ATTEMPTS):
            prompt = self._render(self._fill(room))
            if prompt.tokens <= self.max_tokens:
                return prompt
            room -= prompt.tokens - self.max_tokens
        raise UsageError(
            f"--max-prompt-tokens {self.max_tokens} is too small: the top {min(ALWAYS_SHOWN, len(self.ranked))} "
            f"workloads alone need about {prompt.tokens} tokens"
        )

    def _fill(self, room: int) -> _View:
        """The view in three steps: the top workloads (always), their nearest edges taken in turns, then the
        next workloads in rank order, each with its nearest edges, while they fit in room tokens."""
        view = _View([], [], [])
        shown_edges: set[int] = set()

        def add_edge(edge: dict[str, Any], line: str) -> None:
            shown_edges.add(id(edge))
            view.dependencies.append(line)

        top = self.ranked[:ALWAYS_SHOWN]
        for workload in top:
            entry = self._entry_line(workload)
            room -= _line_tokens(entry)
            view.workloads.append(entry)
            view.shown_ids.append(workload["id"])
        nearest = [self._nearest_edges(workload) for workload in top]
        for depth in range(EDGES_PER_WORKLOAD):
            for edges in nearest:
                if depth < len(edges) and id(edges[depth]) not in shown_edges:
                    line = self._edge_line(edges[depth])
                    if _line_tokens(line) > room:
                        return view
                    room -= _line_tokens(line)
                    add_edge(edges[depth], line)
        for workload in self.ranked[ALWAYS_SHOWN:]:
            entry = self._entry_line(workload)
            lines = [(edge, self._edge_line(edge)) for edge in self._nearest_edges(workload) if id(edge) not in shown_edges]
            cost = _line_tokens(entry) + sum(_line_tokens(line) for _, line in lines)
            if cost > room:
                break
            room -= cost
            view.workloads.append(entry)
            view.shown_ids.append(workload["id"])
            for edge, line in lines:
                add_edge(edge, line)
        return view

    def _data_line(self, value: Any) -> str:
        """A piece of cluster data as the prompt shows it: secrets redacted, names hidden when anonymizing."""
        return data_json(self.hide(redact_strings(value)))

    def _entry_line(self, workload: dict[str, Any]) -> str:
        return self._data_line(self._workload_entry(workload))

    def _edge_line(self, edge: dict[str, Any]) -> str:
        return self._data_line(self._edge_entry(edge))

    def _nearest_edges(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """The edges of a workload that matter most: to the most critical neighbours, hard ones first."""
        def neighbour_rank(edge: dict[str, Any]) -> tuple[int, bool, float, str, str]:
            other = edge["to"] if edge["from"] == workload["id"] else edge["from"]
            return (self.rank.get(other, len(self.rank)), not edge.get("hard", False), -edge["confidence"], edge["from"], edge["to"])

        return sorted(self._incident.get(workload["id"], []), key=neighbour_rank)[:EDGES_PER_WORKLOAD]

    def _workload_entry(self, workload: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": workload["id"],
            "tier": workload["tier"],
            "replicas": workload["replicas"],
            "criticality": workload["criticality"]["score"],
            "why": _listed(workload["criticality"]["reasons"]),
            "risks": [[r["id"], r["severity"], _short(r["message"])] for r in workload["risks"]],
            "selector": label_selector(workload),
        }
        if workload.get("stateful"):
            entry["stateful"] = True
        if workload.get("role"):
            entry["role"] = workload["role"]
        if "telemetry" in workload:
            entry["telemetry"] = workload["telemetry"]
        protection = {key: value for key, value in (workload.get("protection") or {}).items() if value is not None}
        if protection:
            entry["protection"] = protection
        callers = sum(1 for d in self._incident.get(workload["id"], []) if d["to"] == workload["id"])
        if callers > EDGES_PER_WORKLOAD:
            entry["callers"] = callers
        return entry

    @staticmethod
    def _edge_entry(dependency: dict[str, Any]) -> dict[str, Any]:
        entry = {key: dependency[key] for key in ("from", "to", "via") if dependency.get(key) is not None}
        if dependency["external"]:
            entry["external"] = True
        if dependency.get("port") is not None:
            entry["port"] = dependency["port"]
        entry["hard"] = bool(dependency.get("hard", False))
        entry["confidence"] = dependency["confidence"]
        # Traffic first: what the metrics saw is what the thresholds can read, and a long list of fields would hide it.
        traffic = [f"{e['source']} {e['metric']}: {e['summary']}" for e in dependency["evidence"] if isinstance(e, dict)]
        entry["evidence"] = _listed(traffic + [e for e in dependency["evidence"] if isinstance(e, str)])
        return entry

    def _omitted(self, shown_ids: list[str], omitted_all: bool = False) -> str:
        """Counts of what the view leaves out, so the model knows the size of what it does not see."""
        shown = set() if omitted_all else set(shown_ids)
        hidden = [w for w in self.ranked if w["id"] not in shown]
        namespaces = Counter(w["namespace"] for w in hidden)
        top_namespaces = dict(sorted(namespaces.items(), key=lambda item: (-item[1], item[0]))[:OMITTED_NAMESPACES])
        summary = {
            "workloads": len(hidden),
            "by_tier": dict(sorted(Counter(w["tier"] for w in hidden).items())),
            "by_namespace": top_namespaces,
            "other_namespaces": len(namespaces) - len(top_namespaces),
            "risks": dict(sorted(Counter(r["id"] for w in hidden for r in w["risks"]).items())),
        }
        return self._data_line(summary)

    def _context(self, view: _View, omitted_all: bool = False) -> dict[str, Any]:
        return {
            **self.fixed,
            "workloads": view.workloads,
            "dependencies": view.dependencies,
            "shown": len(view.workloads),
            "omitted": self._omitted(view.shown_ids, omitted_all),
            "omitted_dependencies": len(self.dependencies) - len(view.dependencies),
        }

    def _tokens(self, view: _View, omitted_all: bool = False) -> int:
        module = _macros(self._context(view, omitted_all))
        return estimate_tokens(str(module.system())) + estimate_tokens(str(module.user()))

    def _render(self, view: _View) -> Prompt:
        module = _macros(self._context(view))
        system, user = str(module.system()), str(module.user())
        return Prompt(system, user, estimate_tokens(system) + estimate_tokens(user), tuple(view.shown_ids), len(self.ranked))


def repair_request(problems: list[dict[str, Any]], whole_answer: bool, count: int) -> str:
    """The user turn of the repair round: the exact validation errors, as data."""
    return str(_macros({"count": count}).repair([data_json(problem) for problem in problems], whole_answer))


def _macros(context: dict[str, Any]) -> Any:
    """experiment.j2 rendered with context; its macros (system, user, repair) are attributes jinja2 cannot type."""
    return _template("experiment.j2").make_module(context)


def _line_tokens(line: str) -> int:
    return estimate_tokens(line) + 1  # and its newline


def _listed(items: list[str]) -> list[str]:
    shown = [_short(item) for item in items[:LIST_ITEMS]]
    if len(items) > LIST_ITEMS:
        shown.append(f"... {len(items) - LIST_ITEMS} more")
    return shown


def _short(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 3] + "..."
