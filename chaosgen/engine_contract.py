"""The contract between chaos-litmus and chaos-watch: the chaosgen.dev/* annotations on each engine it renders.

chaos-litmus encodes the experiment an engine runs into annotations; chaos-watch decodes them to know what to
enforce (abort thresholds, expected recovery, the policy checked again). The keys and both directions live here so
that neither stage spells them; decode checks the experiment against the ExperimentPlan schema, because an
annotation can be edited between the two stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chaosgen.errors import InputRejected
from chaosgen.schemas import validate_definition

PREFIX = "chaosgen.dev/"
EXPERIMENT_ID = PREFIX + "experiment-id"
TARGET = PREFIX + "target"
ABORT_THRESHOLDS = PREFIX + "abort-thresholds"
EXPECTED_RECOVERY_SECONDS = PREFIX + "expected-recovery-seconds"
EXPERIMENT = PREFIX + "experiment"


@dataclass(frozen=True)
class Annotated:
    """What an engine's annotations say; None (or no thresholds) where an annotation is absent."""

    experiment_id: str | None
    target: str | None
    abort_thresholds: list[dict[str, Any]]
    expected_recovery_seconds: int | None
    experiment: dict[str, Any] | None


def encode(experiment: dict[str, Any]) -> dict[str, str]:
    """The annotations of the engine that runs one ExperimentPlan experiment; chaos-litmus calls it per engine."""
    return {
        EXPERIMENT_ID: experiment["id"],
        TARGET: experiment["target"]["workload"],
        ABORT_THRESHOLDS: _compact_json(experiment["abort_thresholds"]),
        EXPECTED_RECOVERY_SECONDS: str(experiment["expected_recovery_seconds"]),
        EXPERIMENT: _compact_json(experiment),
    }


def decode(annotations: dict[str, Any], engine_name: str, source: str, path: str) -> Annotated:
    """The annotations of one engine, checked; chaos-watch calls it for every engine of its input.

    An annotation that is not JSON, or whose experiment or thresholds break the ExperimentPlan schema, is
    InputRejected (exit 3) at `path` (the annotations' JSON path in `source`), naming the engine and the key.
    """

    def reject(key: str, problem: str) -> InputRejected:
        return InputRejected(f"annotation {key} {problem} (in {engine_name})", source, path)

    def checked_json(key: str, definition: str) -> Any:
        text = annotations.get(key)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            raise reject(key, f"is not JSON: {getattr(e, 'msg', e)}") from e
        try:
            validate_definition(value, "ExperimentPlan", definition, source)
        except InputRejected as e:
            raise reject(key, f"is malformed at {e.path}: {e.message}") from e
        return value

    expected = annotations.get(EXPECTED_RECOVERY_SECONDS)
    try:
        expected_seconds = int(expected) if expected is not None else None
    except (TypeError, ValueError) as e:
        raise reject(EXPECTED_RECOVERY_SECONDS, f"is not an integer: {expected!r}") from e
    return Annotated(
        experiment_id=annotations.get(EXPERIMENT_ID),
        target=annotations.get(TARGET),
        abort_thresholds=checked_json(ABORT_THRESHOLDS, "experiment/properties/abort_thresholds") or [],
        expected_recovery_seconds=expected_seconds,
        experiment=checked_json(EXPERIMENT, "experiment"),
    )


def _compact_json(value: Any) -> str:
    # Sorted and without spaces: the same experiment always gives the same bytes (chaos-litmus's golden files).
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
