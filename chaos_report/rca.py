"""chaos-report's LLM root-cause analysis (--provider): the evidence a model may cite, its prompt (prompts/rca.j2),
and the findings that survive the check that every citation is real.

Called by chaos_report/cli.py when --provider is not builtin. The provider is reached through an injected ask (the
answer cache of chaosgen.llm in front of it), so this module does no I/O. The rule-based analysis of core.py stays
the default and the fallback: for a failed call, an unreadable answer, findings that cite nothing real, and every
experiment the model left unexplained.

Evidence ids, built from the input only (an experiment is named by its id, or id#2, id#3 for later runs of it):
- threshold:<experiment>/<name>   an abort threshold: its condition, worst value, first breach
- event:<experiment>/<index>      the index-th event the run recorded (0-based)
- abort:<experiment>              who aborted the run, when, and whether Litmus confirmed the stop
- recovery:<experiment>           the time to recovery against the expected
- chaos-result:<experiment>       Litmus's ChaosResult
- preflight:<experiment>/<check>  a failed preflight check
- edge:<from> -> <to>             a dependency of the Topology (--topology) from or to a target
- risk:<workload>/<risk-id>       a risk of a target, or of a workload next to one, in the Topology
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos_report import core
from chaosgen.errors import UsageError
from chaosgen.llm.answers import UnreadableAnswer, read_json_answer
from chaosgen.llm.prompting import data_json, estimate_tokens, template
from chaosgen.llm.providers import Conversation, Turn
from chaosgen.secrets import redact_strings, redact_text

ANSWER_NAME = "root_cause_analysis"
CONFIDENCES = ("high", "medium", "low")
FINDINGS_PER_EXPERIMENT = 3
MAX_FINDINGS = 20
CITATIONS_PER_FINDING = 8
# A schema enum makes servers that enforce schemas by grammar (llama.cpp) cite only real ids; past this many ids
# the grammar gets large, and the check after the answer is what counts anyway.
ENUM_LIMIT = 300
EVENTS_PER_EXPERIMENT = 30
TEXT_CHARS = 400
ORDER = {verdict: index for index, verdict in enumerate(core.VERDICT_ORDER)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MARKUP = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "`": "'"}


@dataclass(frozen=True)
class Evidence:
    """What the model is shown: one entry per experiment (its evidence inside), the Topology's neighbourhood of
    the targets, and the ids a finding may cite."""

    experiments: tuple[dict[str, Any], ...]
    neighbourhood: tuple[dict[str, Any], ...]
    ids: frozenset[str]

    @property
    def labels(self) -> list[str]:
        return [entry["experiment"] for entry in self.experiments]


@dataclass(frozen=True)
class Finding:
    experiment: str
    cause: str
    evidence: tuple[str, ...]
    confidence: str
    recommendation: str


@dataclass
class Analysis:
    """The root-cause lines of the report, and the warnings for stderr."""

    lines: list[str]
    warnings: list[str] = field(default_factory=list)


class AnalysisUnusable(Exception):
    """The model's answer gave no finding that cites real evidence (exit 3 with --no-fallback)."""


def collect_evidence(documents: list[dict[str, Any]], topology: dict[str, Any] | None) -> Evidence:
    """Every piece of evidence of the RunResults (and the Topology), each under its id, in input order."""
    experiments = []
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for e in (e for document in documents for e in document["experiments"]):
        seen[e["id"]] = seen.get(e["id"], 0) + 1
        label = e["id"] if seen[e["id"]] == 1 else f"{e['id']}#{seen[e['id']]}"
        items = _experiment_evidence(label, e)
        ids.update(item["id"] for item in items)
        experiments.append({
            "experiment": label, "target": e["target"], "fault": e["fault"], "verdict": e["verdict"],
            "reason": e["reason"], "hypothesis": e.get("hypothesis"), "evidence": items,
            **({"events_not_shown": len(e["events"]) - EVENTS_PER_EXPERIMENT} if len(e["events"]) > EVENTS_PER_EXPERIMENT else {}),
        })
    experiments.sort(key=lambda entry: ORDER[entry["verdict"]])  # stable: the unexplained first, input order kept
    neighbourhood = _neighbourhood(topology, {e["target"] for e in experiments if e["target"]}) if topology else []
    ids.update(item["id"] for item in neighbourhood)
    return Evidence(tuple(experiments), tuple(neighbourhood), frozenset(ids))


def _experiment_evidence(label: str, e: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"id": f"threshold:{label}/{t['name']}", "condition": f"{t['operator']} {t['value']:g} for {t['for']}",
         "query": t["query"], "worst": t["worst"], "breached": t["breached"], "first_breach_at": t["first_breach_at"]}
        for t in e["thresholds"]
    ]
    items += [
        {"id": f"event:{label}/{index}", "t": event["t"], "type": event["type"], "message": event["message"]}
        for index, event in enumerate(e["events"][:EVENTS_PER_EXPERIMENT])
    ]
    if e["abort"]:
        items.append({"id": f"abort:{label}", **e["abort"]})
    items.append({"id": f"recovery:{label}", "recovered": e["recovered"], "seconds": e["time_to_recovery_seconds"],
                  "expected_seconds": e["expected_recovery_seconds"]})
    if e["chaos_result"]:
        items.append({"id": f"chaos-result:{label}", **e["chaos_result"]})
    items += [{"id": f"preflight:{label}/{c['check']}", "message": c["message"]} for c in e["preflight"] if not c["ok"]]
    return items


def _neighbourhood(topology: dict[str, Any], targets: set[str]) -> list[dict[str, Any]]:
    """The dependency edges from or to a target, and the risks of the targets and the workloads at their ends."""
    edges = [d for d in topology["dependencies"] if d["from"] in targets or d["to"] in targets]
    near = targets | {d["from"] for d in edges} | {d["to"] for d in edges if not d["external"]}
    items = [
        {"id": f"edge:{d['from']} -> {d['to']}", "via": d["via"], "hard": d.get("hard"), "evidence": d["evidence"][:2]}
        for d in edges
    ]
    items += [
        {"id": f"risk:{w['id']}/{r['id']}", "severity": r["severity"], "message": r["message"]}
        for w in topology["workloads"] if w["id"] in near for r in w["risks"]
    ]
    return items


def answer_schema(labels: list[str], ids: list[str]) -> dict[str, Any]:
    """The JSON Schema of the answer (structured output, and shown in the prompt), over the names the prompt uses."""
    citation: dict[str, Any] = {"type": "string", "enum": ids} if len(ids) <= ENUM_LIMIT else {"type": "string"}
    finding = {
        "type": "object",
        "properties": {
            "experiment": {"type": "string", "enum": labels},
            "cause": {"type": "string", "maxLength": TEXT_CHARS},
            "evidence": {"type": "array", "items": citation, "minItems": 1, "maxItems": CITATIONS_PER_FINDING},
            "confidence": {"type": "string", "enum": list(CONFIDENCES)},
            "recommendation": {"type": "string", "maxLength": TEXT_CHARS},
        },
        "required": ["experiment", "cause", "evidence", "confidence", "recommendation"],
        "additionalProperties": False,
    }
    limit = min(MAX_FINDINGS, FINDINGS_PER_EXPERIMENT * max(len(labels), 1))
    return {
        "type": "object",
        "properties": {"findings": {"type": "array", "maxItems": limit, "items": finding}},
        "required": ["findings"],
        "additionalProperties": False,
    }


def conversation(evidence: Evidence, max_tokens: int, hide: Callable[[Any], Any]) -> Conversation:
    """rca.j2 with as many experiments (the unexplained first) and then neighbours as fit in max_tokens.

    hide is the anonymizer's (--anonymize) or the identity; it applies to everything cluster-sourced, the
    evidence ids of the schema included. UsageError when not even the first experiment fits.
    """
    schema = answer_schema(hide(evidence.labels), hide(sorted(evidence.ids)))
    experiments = [data_json(hide(redact_strings(entry))) for entry in evidence.experiments]
    neighbours = [data_json(hide(redact_strings(entry))) for entry in evidence.neighbourhood]
    module = _render(schema, [], [], "")
    room = max_tokens - estimate_tokens(str(module.system())) - estimate_tokens(str(module.user())) - 40
    shown: list[list[str]] = [[], []]
    for part, lines in enumerate((experiments, neighbours)):
        for line in lines:
            cost = estimate_tokens(line) + 1
            if cost > room:
                break
            shown[part].append(line)
            room -= cost
    if experiments and not shown[0]:
        raise UsageError(f"--max-prompt-tokens {max_tokens} is too small for the root-cause analysis of even one experiment")
    omitted = _omitted(len(experiments) - len(shown[0]), len(neighbours) - len(shown[1]))
    module = _render(schema, shown[0], shown[1], omitted)
    return Conversation(str(module.system()), (Turn("user", str(module.user())),), schema, ANSWER_NAME)


def _render(schema: dict[str, Any], experiments: list[str], neighbours: list[str], omitted: str) -> Any:
    return template("rca.j2").make_module({
        "experiments": experiments, "neighbourhood": neighbours, "omitted": omitted,
        "answer_schema": data_json(schema), "max_findings": schema["properties"]["findings"]["maxItems"],
    })


def _omitted(experiments: int, neighbours: int) -> str:
    parts = [f"{experiments} experiment(s)" if experiments else "", f"{neighbours} neighbourhood entries" if neighbours else ""]
    return " and ".join(part for part in parts if part)


def read_findings(answer: str, evidence: Evidence, reveal: Callable[[Any], Any]) -> tuple[list[Finding], list[str]]:
    """The findings of an answer that name a real experiment and cite at least one real piece of evidence, and a
    warning for each one dropped or trimmed. Raises AnalysisUnusable for an answer that is not the JSON asked for."""
    try:
        raw = reveal(read_json_answer(answer, "findings"))
    except UnreadableAnswer as e:
        raise AnalysisUnusable(f"the answer was unusable: rule {e.rule}: {e.message}") from e
    findings, warnings = [], []
    for index, item in enumerate(raw[:MAX_FINDINGS]):
        where = f"finding {index + 1}"
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("experiment", "cause")):
            warnings.append(f"{where} dropped: not an object with an experiment and a cause")
            continue
        if item["experiment"] not in evidence.labels:
            warnings.append(f"{where} dropped: it explains {_quoted(item['experiment'])}, which is not an experiment of the input")
            continue
        evidence_ids = item.get("evidence")
        cited = evidence_ids if isinstance(evidence_ids, list) else []
        real = tuple(dict.fromkeys(c for c in cited if isinstance(c, str) and c in evidence.ids))[:CITATIONS_PER_FINDING]
        unknown = [c for c in cited if c not in real]
        if not real:
            warnings.append(f"{where} dropped: it cites no evidence of the input ({_citations(unknown)})")
            continue
        if unknown:
            warnings.append(f"{where}: citations not in the input removed ({_citations(unknown)})")
        stated, advice = item.get("confidence"), item.get("recommendation")
        confidence = stated if isinstance(stated, str) and stated in CONFIDENCES else "low"
        recommendation = advice if isinstance(advice, str) else ""
        findings.append(Finding(item["experiment"], _plain(item["cause"]), real, confidence, _plain(recommendation)))
    if len(raw) > MAX_FINDINGS:
        warnings.append(f"{len(raw) - MAX_FINDINGS} findings past the first {MAX_FINDINGS} dropped")
    return findings, warnings


def explain(
    documents: list[dict[str, Any]], topology: dict[str, Any] | None, ask: Callable[[Conversation], str],
    generator: str, max_tokens: int, anonymizer: Any | None = None,
) -> Analysis:
    """The report's root-cause lines from the model's findings, the rules filling in every experiment the model
    left unexplained. ask raises ProviderFailure (the caller decides about the fallback); AnalysisUnusable when no
    finding survives."""
    evidence = collect_evidence(documents, topology)
    hide = anonymizer.hide if anonymizer is not None else _same
    reveal = anonymizer.reveal if anonymizer is not None else _same
    findings, warnings = read_findings(ask(conversation(evidence, max_tokens, hide)), evidence, reveal)
    warnings = [f"{line} (from {generator})" for line in warnings]
    if not findings:
        raise AnalysisUnusable(f"no finding of {generator} cites real evidence" + (f" ({warnings[-1]})" if warnings else ""))
    lines = [_finding_line(finding, generator) for finding in findings]
    explained = {finding.experiment for finding in findings}
    filled = [(entry, rules) for entry, rules in _rule_findings(documents) if entry not in explained and rules]
    if filled:
        warnings.append(f"the rules explain {len(filled)} experiment(s) {generator} did not: {', '.join(e for e, _ in filled)}")
    return Analysis(lines + [line for _, rules in filled for line in rules], warnings)


def names(documents: list[dict[str, Any]], topology: dict[str, Any] | None) -> dict[str, Any]:
    """What --anonymize hides (chaosgen.llm.anonymize.Anonymizer's input): the Topology's names, or without one the
    targets of the runs."""
    if topology is not None:
        return topology
    targets = {e["target"] for document in documents for e in document["experiments"] if e["target"]}
    workloads = [{"namespace": namespace, "name": name} for namespace, _, name in (t.split("/", 2) for t in sorted(targets))]
    return {"workloads": workloads, "services": []}


def _rule_findings(documents: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    seen: dict[str, int] = {}
    out = []
    for e in (e for document in documents for e in document["experiments"]):
        seen[e["id"]] = seen.get(e["id"], 0) + 1
        out.append((e["id"] if seen[e["id"]] == 1 else f"{e['id']}#{seen[e['id']]}", core.root_causes(e)))
    return out


def _finding_line(finding: Finding, generator: str) -> str:
    cited = ", ".join("`" + citation.replace("`", "'") + "`" for citation in finding.evidence)  # ids of the input
    recommendation = f" Recommendation: {finding.recommendation}" if finding.recommendation else ""
    return (f"`{finding.experiment}`: {finding.cause}{recommendation} "
            f"(confidence {finding.confidence}; evidence {cited}; {generator})")


def _plain(text: str) -> str:
    """Model prose as one line of inert report text: no control characters, no Markdown code or HTML, no secret,
    bounded length."""
    line = " ".join(_CONTROL.sub(" ", redact_text(text)).split())
    line = line if len(line) <= TEXT_CHARS else line[: TEXT_CHARS - 3] + "..."
    return re.sub(r"[<>&`]", lambda m: _MARKUP[m.group()], line)


def _quoted(value: Any) -> str:
    return repr(_plain(str(value))[:80])


def _citations(cited: list[Any]) -> str:
    shown = ", ".join(_quoted(c) for c in cited[:5])
    return (shown + (f" and {len(cited) - 5} more" if len(cited) > 5 else "")) or "none"


def _same(value: Any) -> Any:
    return value
