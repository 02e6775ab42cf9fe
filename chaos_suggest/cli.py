"""chaos-suggest: a Topology on stdin (or -f FILE) in, an ExperimentPlan on stdout.

The experiments come from one place, the `experiments = ...` lines in main(): the built-in planner
(chaos_suggest.core.plan_builtin), or with --provider an LLM (chaos_suggest.llm.suggest.suggest_with_llm, which
guards the model's answer and lets the built-in planner fill in); core.assemble_plan then numbers them and checks
them against the safety policy.
"""

from __future__ import annotations

import logging

import click

from chaos_suggest import core
from chaosgen import __version__
from chaosgen.boundary import read_document, stage_options, write_document
from chaosgen.llm.options import LLMOptions, StageHelp, llm_options
from chaosgen.llm.providers import BUILTIN
from chaosgen.policy import load_policy

TOOL = "chaos-suggest"
log = logging.getLogger(TOOL)
LLM_HELP = StageHelp(
    provider="Who plans: the built-in planner, or an LLM",
    no_fallback="Do not let the built-in planner fill in: exit 4 if the provider fails, 3 if its answer is unusable.",
    max_prompt_tokens="Budget of the prompt; a large Topology is compacted by criticality to fit (-v shows the estimate).",
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  chaos-inventory -f k8s/3tier-app.yaml | chaos-suggest -n 3
  chaos-suggest -f topology.json --provider openai --anonymize
  chaos-suggest -f topology.json --policy policy.yaml --offline""")
@click.option("-f", "--filename", default="-", show_default=True, help="Topology file (JSON or YAML); - is stdin.")
@click.option(
    "-n", "--count", type=click.IntRange(min=1), default=3, show_default=True,
    help="How many experiments to propose (fewer when fewer are safe).",
)
@click.option(
    "--policy", "policy_file", default=None,
    help="Safety policy (YAML or JSON, kind SafetyPolicy) merged over the defaults.",
)
@llm_options(LLM_HELP)
@stage_options(TOOL)
def main(filename: str, count: int, policy_file: str | None, llm: LLMOptions) -> None:
    """Propose ranked, policy-safe chaos experiments for the weak points of a Topology."""
    topology = read_document(filename, "Topology", TOOL)
    policy = load_policy(policy_file)
    if llm.provider == BUILTIN:
        experiments = core.plan_builtin(topology, policy, count)
    else:
        from chaos_suggest.llm.suggest import suggest_with_llm  # only here: the builtin path never loads it

        experiments, warnings = suggest_with_llm(topology, policy, count, llm)
        for warning in warnings:
            log.warning(warning)
    plan = core.assemble_plan(topology, experiments, policy, f"{TOOL} {__version__}", requested=count)
    for warning in core.plan_warnings(plan):
        log.warning(warning)
    write_document(plan)
