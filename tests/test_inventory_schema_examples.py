"""Valid and invalid Topology examples (tests/schema_examples/Topology/{valid,invalid}/*.json) against the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosgen.schemas import all_errors
from conftest import REPO

EXAMPLES = REPO / "tests" / "schema_examples" / "Topology"


@pytest.mark.parametrize("path", sorted((EXAMPLES / "valid").glob("*.json")), ids=lambda p: p.stem)
def test_valid_topology_examples_pass(path: Path) -> None:
    assert all_errors(json.loads(path.read_text()), "Topology") == []


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_invalid_topology_examples_fail(path: Path) -> None:
    assert all_errors(json.loads(path.read_text()), "Topology") != []


def test_invalid_examples_are_rejected_by_the_next_stage_with_exit_3() -> None:
    from conftest import run

    result = run(f"chaos-suggest -f {EXAMPLES / 'invalid' / 'unknown-tier.json'}")
    assert result.returncode == 3 and result.stdout == b""
    assert len(result.stderr.splitlines()) == 1


def test_the_fast_validation_path_agrees_with_jsonschema() -> None:
    """chaosgen.schemas.validate answers from compiled code first and asks jsonschema only on a failure."""
    from chaosgen.errors import InputRejected
    from chaosgen.schemas import _fast_validator, validate

    assert _fast_validator("Topology") is not None
    for path in sorted((EXAMPLES / "valid").glob("*.json")):
        validate(json.loads(path.read_text()), "Topology", path.name)
    for path in sorted((EXAMPLES / "invalid").glob("*.json")):
        with pytest.raises(InputRejected, match="Topology schema: "):
            validate(json.loads(path.read_text()), "Topology", path.name)
