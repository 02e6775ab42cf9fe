"""String formats are full-match in both schema validators: a trailing newline never slips past `^...$`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chaosgen.errors import InputRejected
from chaosgen.schemas import all_errors, passes_fast_check, validate, validator
from fakes import answers


def plan_with(experiment: dict[str, Any]) -> dict[str, Any]:
    experiment = {**copy.deepcopy(experiment), "id": "x", "generator": "builtin"}
    return {"apiVersion": "chaosgen.dev/v1", "kind": "ExperimentPlan",
            "metadata": {"generator": "test", "source": {"type": "document"}}, "experiments": [experiment]}


@pytest.mark.parametrize("value", ["shop\n", "shop\r", "\nshop", "shop\n\n"])
def test_a_newline_never_passes_a_pattern_in_either_validator(value: str) -> None:
    experiment = answers.api_memory_hog()
    experiment["blast_radius"]["namespaces"] = [value]
    plan = plan_with(experiment)
    assert not passes_fast_check(plan, "experiment-plan.schema.json")
    assert any("does not match" in message for _, message in all_errors(plan, "ExperimentPlan"))
    assert list(validator("ExperimentPlan").iter_errors(plan))
    with pytest.raises(InputRejected, match=r"\$\.experiments\[0\]\.blast_radius\.namespaces\[0\]"):
        validate(plan, "ExperimentPlan", "plan.json")


def test_the_valid_plan_passes_both() -> None:
    plan = plan_with(answers.api_memory_hog())
    assert passes_fast_check(plan, "experiment-plan.schema.json")
    assert all_errors(plan, "ExperimentPlan") == []


@pytest.mark.parametrize(("path", "value"), [
    (("parameters", "container"), "server;$(reboot)"),
    (("target", "node"), "node-1\n"),
    (("target", "label_selector"), "app=api\n---\nkind: ClusterRoleBinding"),
    (("steady_state", 0, "label_selector"), "app=api\n---\nkind: ClusterRoleBinding"),
    (("steady_state", 0, "namespace"), "shop\n"),
])
def test_fields_that_reach_a_process_have_closed_formats(path: tuple[Any, ...], value: str) -> None:
    experiment = answers.api_memory_hog()
    node: Any = experiment
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert all_errors(plan_with(experiment), "ExperimentPlan")
