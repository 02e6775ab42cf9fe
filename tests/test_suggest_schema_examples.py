"""Valid and invalid examples of the documents chaos-suggest writes and reads besides its input: ExperimentPlan
and SafetyPolicy (tests/schema_examples/<Kind>/{valid,invalid}/*.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosgen.schemas import all_errors

EXAMPLES = Path(__file__).resolve().parent / "schema_examples"
KINDS = ("ExperimentPlan", "SafetyPolicy")


def examples(validity: str) -> list[Path]:
    return sorted(path for kind in KINDS for path in (EXAMPLES / kind / validity).glob("*.json"))


@pytest.mark.parametrize("path", examples("valid"), ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_valid_examples_pass_their_schema(path: Path) -> None:
    assert all_errors(json.loads(path.read_text()), path.parts[-3]) == []


@pytest.mark.parametrize("path", examples("invalid"), ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_invalid_examples_fail_their_schema(path: Path) -> None:
    assert all_errors(json.loads(path.read_text()), path.parts[-3]) != []


def test_each_kind_has_both_sorts_of_example() -> None:
    for kind in KINDS:
        assert list((EXAMPLES / kind / "valid").glob("*.json")) and list((EXAMPLES / kind / "invalid").glob("*.json"))
