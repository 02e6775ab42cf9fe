"""chaos-suggest with an LLM: prompt, ask (through the cache), guard, one repair round, builtin fill.

Called by chaos_suggest/cli.py when --provider is not builtin. The model's answer is untrusted input: only
experiments that pass the guard come back, every dropped one is a warning naming the rule it broke, and the
builtin planner (core.plan_builtin) plans the rest unless --no-fallback.
"""

from __future__ import annotations

import logging
from typing import Any

from chaos_suggest import core
from chaos_suggest.llm.guard import AnswerUnusable, Guard, Verdict, answer_schema, parse_answer
from chaos_suggest.llm.prompt import PromptBuilder, repair_request, scrub
from chaosgen.errors import InputRejected
from chaosgen.llm.anonymize import Anonymizer
from chaosgen.llm.cache import AnswerCache, open_llm
from chaosgen.llm.options import LLMOptions
from chaosgen.llm.providers import Conversation, LLMProvider, ProviderFailure, Turn

log = logging.getLogger(__name__)

# Rejections told one by one (on stderr and to the model); the rest are summed up in one line.
LISTED_REJECTIONS = 10


def suggest_with_llm(
    topology: dict[str, Any], policy: dict[str, Any], count: int, options: LLMOptions,
    provider: LLMProvider | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to count experiments for a validated Topology, and the warnings to show on stderr.

    provider defaults to the one options name (tests and other callers may inject any LLMProvider). The
    experiments carry generator llm:<provider>/<model> (builtin for the ones the planner adds) and provisional
    ids; core.assemble_plan numbers them.

    Raises ProviderFailure (exit 4) for a missing key, a refused key (401/403), an --offline cache miss, and, with
    --no-fallback, any provider failure; InputRejected (exit 3) when --no-fallback and no experiment of the
    answer passed the guard.
    """
    provider, cache = open_llm(options, provider)
    count = min(count, policy["max_experiments"])
    generator = f"llm:{provider.name}/{provider.model}"
    visible = scrub(topology)
    anonymizer = Anonymizer(visible) if options.anonymize else None
    session = _Session(
        provider, cache, Guard(topology, policy, generator), anonymizer, count, options.no_fallback,
    )
    schema = answer_schema(count)
    prompt = PromptBuilder(
        visible, policy, count, schema, options.max_prompt_tokens, anonymizer.hide if anonymizer else _same,
    ).build()
    log.info(
        "prompt for %s: about %d tokens (limit %d), %d of %d workloads shown",
        generator, prompt.tokens, options.max_prompt_tokens, len(prompt.shown_ids), prompt.total_workloads,
    )
    warnings: list[str] = []
    try:
        accepted = session.run(Conversation(prompt.system, (Turn("user", prompt.user),), schema), warnings)
    except ProviderFailure as e:
        if e.fatal or options.no_fallback:
            raise
        warnings.append(f"{e}; the builtin planner plans instead")
        accepted = []
    if len(accepted) > count:
        warnings.append(f"{generator} proposed {len(accepted)} experiments; the first {count} are kept")
        accepted = accepted[:count]
    if options.no_fallback:
        if not accepted:
            raise InputRejected(f"no usable experiment in the answer ({warnings[-1] if warnings else 'it was empty'})", generator)
        if len(accepted) < count:
            warnings.append(f"only {len(accepted)} of the {_experiments(count)} asked of {generator} passed the guard (--no-fallback)")
        return core.number_experiments(accepted), warnings
    if len(accepted) < count:
        added = _builtin_fill(topology, policy, count - len(accepted), accepted)
        if accepted and added:
            warnings.append(f"the builtin planner adds {_experiments(len(added))} to the {len(accepted)} of {generator}")
        accepted += added
    return core.number_experiments(accepted), warnings


def _builtin_fill(topology: dict[str, Any], policy: dict[str, Any], missing: int, planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Up to missing experiments of the builtin planner that test something the planned ones do not."""
    tests = {(e["target"]["workload"], e["fault"]["type"]) for e in planned}
    candidates = core.plan_builtin(topology, policy, missing + len(planned))
    return [e for e in candidates if (e["target"]["workload"], e["fault"]["type"]) not in tests][:missing]


class _Session:
    """One model, one guard, one cache: the first round and, when needed, the repair round."""

    def __init__(
        self, provider: LLMProvider, cache: AnswerCache, guard: Guard, anonymizer: Anonymizer | None, count: int,
        no_fallback: bool,
    ) -> None:
        self.provider = provider
        self.cache = cache
        self.guard = guard
        self.anonymizer = anonymizer
        self.count = count
        self.no_fallback = no_fallback
        self.generator = guard.generator

    def run(self, conversation: Conversation, warnings: list[str]) -> list[dict[str, Any]]:
        """The experiments that passed the guard in either round; every rejection becomes a warning naming its rule."""
        answer = self._ask(conversation)
        first = self._judge(answer, [])
        if first.clean:
            warnings += [f"{line} (from {self.generator})" for line in _summary_lines(first)]
            return first.accepted
        warnings += self._warnings(first, "", "sent back to repair")
        request = repair_request(self._problem_lines(first), first.answer_error is not None, self.count)
        try:
            repaired = self._ask(conversation.followed_by(excerpt(answer), request))
        except ProviderFailure as e:
            if e.fatal or self.no_fallback:
                raise
            warnings.append(f"{e}; the repair round is skipped")
            return first.accepted
        second = self._judge(repaired, first.accepted)
        warnings += self._warnings(second, "the repair answer of ", "dropped")
        return first.accepted + second.accepted

    def _ask(self, conversation: Conversation) -> str:
        answer, cached = self.cache.ask(self.provider, conversation)
        if cached:
            log.info("%s: answer read from the cache", self.generator)
        return answer

    def _judge(self, answer: str, taken: list[dict[str, Any]]) -> Verdict:
        try:
            experiments = parse_answer(answer)
        except AnswerUnusable as e:
            return Verdict(answer_error=e.problem)
        if self.anonymizer is not None:
            experiments = self.anonymizer.reveal(experiments)
        return self.guard.check(experiments, taken, limit=self.guard.policy["max_experiments"])

    def _problem_lines(self, verdict: Verdict) -> list[dict[str, Any]]:
        """The errors as the model will read them (in its own placeholders under --anonymize)."""
        if verdict.answer_error is not None:
            lines = [{"rule": verdict.answer_error.rule, "error": verdict.answer_error.message}]
        else:
            lines = [
                {"experiment": rejection.label, "rule": problem.rule, "error": problem.message}
                for rejection in verdict.rejected[:LISTED_REJECTIONS] for problem in rejection.problems
            ]
            lines += [{"error": line} for line in _summary_lines(verdict)]
        return self.anonymizer.hide(lines) if self.anonymizer is not None else lines

    def _warnings(self, verdict: Verdict, answer: str, outcome: str) -> list[str]:
        where = f"{answer}{self.generator}"
        if verdict.answer_error is not None:
            return [f"{where} was unusable ({outcome}): {_rule_text([verdict.answer_error])}"]
        listed = [
            f"{outcome}: {rejection.label} of {where}: {_rule_text(rejection.problems)}"
            for rejection in verdict.rejected[:LISTED_REJECTIONS]
        ]
        return listed + [f"{line} (from {where})" for line in _summary_lines(verdict)]


def _summary_lines(verdict: Verdict) -> list[str]:
    """One line each for the rejections not listed and the experiments past the requested count."""
    lines = []
    unlisted = verdict.rejected[LISTED_REJECTIONS:]
    if unlisted:
        rules = sorted({problem.rule for rejection in unlisted for problem in rejection.problems})
        lines.append(f"{len(unlisted):,} more {_plural(len(unlisted))} dropped: rules {', '.join(rules[:10])}")
    if verdict.over_count:
        lines.append(f"{verdict.over_count:,} more {_plural(verdict.over_count)} dropped: over the requested count")
    return lines


def _plural(number: int) -> str:
    return "experiment" if number == 1 else "experiments"


# How much of a previous answer the repair round quotes back: the model writes its whole answer again, so the start
# shows it what it wrote; more would only crowd a small model's context (a local 8k-token model overflowed at 20,000).
ECHOED_CHARACTERS = 4_000


def excerpt(answer: str) -> str:
    """The answer as the repair round quotes it back to the model: whole when short, else its start."""
    if len(answer) <= ECHOED_CHARACTERS:
        return answer
    return answer[:ECHOED_CHARACTERS] + f"\n[... {len(answer) - ECHOED_CHARACTERS:,} more characters not repeated]"


def _rule_text(problems: list[Any]) -> str:
    return "; ".join(f"rule {problem.rule}: {problem.message}" for problem in problems)


def _experiments(number: int) -> str:
    return f"{number} {_plural(number)}"


def _same(value: Any) -> Any:
    return value
