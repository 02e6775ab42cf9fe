"""Valid and invalid examples of every document kind (tests/schema_examples/<Kind>/{valid,invalid}/*.json).

Each example is checked by both validators chaosgen.schemas uses: the compiled fast path (validate) and jsonschema
(all_errors, which also gives the messages), so the two can never disagree on a contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosgen.errors import InputRejected
from chaosgen.schemas import SCHEMA_FILES, all_errors, validate
from conftest import REPO, run

EXAMPLES = REPO / "tests" / "schema_examples"
KINDS = sorted(SCHEMA_FILES)


def examples(validity: str) -> list[Path]:
    return sorted(path for kind in KINDS for path in (EXAMPLES / kind / validity).glob("*.json"))


def example_id(path: Path) -> str:
    return f"{path.parts[-3]}/{path.stem}"


@pytest.mark.parametrize("path", examples("valid"), ids=example_id)
def test_valid_examples_pass_their_schema(path: Path) -> None:
    document, kind = json.loads(path.read_text()), path.parts[-3]
    assert all_errors(document, kind) == []
    validate(document, kind, path.name)


@pytest.mark.parametrize("path", examples("invalid"), ids=example_id)
def test_invalid_examples_fail_their_schema(path: Path) -> None:
    document, kind = json.loads(path.read_text()), path.parts[-3]
    assert all_errors(document, kind) != []
    with pytest.raises(InputRejected, match=f"{kind} schema: "):
        validate(document, kind, path.name)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_both_sorts_of_example(kind: str) -> None:
    assert list((EXAMPLES / kind / "valid").glob("*.json")) and list((EXAMPLES / kind / "invalid").glob("*.json"))


def test_an_invalid_topology_is_rejected_by_the_next_stage_with_exit_3() -> None:
    result = run(f"chaos-suggest -f {EXAMPLES / 'Topology' / 'invalid' / 'unknown-tier.json'}")
    assert result.returncode == 3 and result.stdout == b""
    assert len(result.stderr.splitlines()) == 1
