"""What a user reads before running anything: every command's --help ends with examples, and the README's
exit-code table says what the code does."""

from __future__ import annotations

import re

import pytest

from chaos_watch import core
from conftest import REPO, run
from tests.sandbox import watch_app

COMMANDS = ["chaos-inventory", "chaos-suggest", "chaos-litmus", "chaos-watch", "chaos-watch cleanup", "chaos-report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_two_or_three_examples(command: str) -> None:
    result = run(f"{command} --help")
    assert result.returncode == 0
    lines = result.stdout.decode().rstrip("\n").splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    examples = [line.strip() for line in lines[start + 1:]]
    assert 2 <= len(examples) <= 3, lines[start:]
    assert all(re.match(r"chaos-(inventory|suggest|litmus|watch|report)\b", e) for e in examples), examples
    assert all(command in e for e in examples), examples


def readme_exit_codes() -> dict[int, str]:
    table = REPO.joinpath("README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_readme_and_chaos_watch_agree_on_a_fault_that_was_never_injected() -> None:
    """The experiment was not tested because the engine could not act (runtime, helper pod, target selection):
    verdict error, exit 4, an environment failure, and the README lists it there, not under 5."""
    engine = core.parse_engines([watch_app.engine("web-pod-delete", "web")], "t")[0]
    not_injected = {"verdict": "Fail", "error_code": "CHAOS_INJECT_ERROR", "failed_step": "injecting the fault"}
    observation = core.Observation(engine, started_at=1.0, chaos_ended=True, recovered=True, chaos_result=not_injected)
    document = core.run_result([core.experiment_result(observation, core.iso_utc)], "t", {"type": "stdin"}, None, False)
    assert core.exit_code(document) == 4
    codes = readme_exit_codes()
    assert "not injected" in codes[4] and "not injected" not in codes[5]
    assert "could not be tested" not in codes[5]

