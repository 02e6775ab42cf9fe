"""The JSON Schemas in schemas/: the only contract between stages. Used by the CLI boundary on input and output."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Callable

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from chaosgen import API_VERSION
from chaosgen.documents import iter_json_path
from chaosgen.errors import InputRejected
from chaosgen.resources import resource_dir

SCHEMA_FILES = {
    "Topology": "topology.schema.json",
    "ExperimentPlan": "experiment-plan.schema.json",
    "RunResult": "run-result.schema.json",
    "SafetyPolicy": "safety-policy.schema.json",
}
MAX_LISTED_ERRORS = 3
# Keywords that draft-07 code generation (fastjsonschema) would not check, and $ref siblings it would ignore: a
# schema using any of them is checked by jsonschema alone.
_NOT_DRAFT7 = frozenset({
    "unevaluatedProperties", "unevaluatedItems", "prefixItems", "dependentRequired", "dependentSchemas",
    "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "minContains", "maxContains",
})
_ANNOTATIONS = frozenset({"$ref", "description", "title", "$comment", "examples", "default", "deprecated"})


@lru_cache(maxsize=None)
def _registry() -> Registry:
    resources = []
    for path in sorted(resource_dir("schemas").glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents)
        resources.append((contents["$id"], resource))
        resources.append((path.name, resource))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    """A cached validator for one document kind."""
    if kind not in SCHEMA_FILES:
        raise KeyError(f"no schema for kind {kind!r}")
    schema = _registry().get_or_retrieve(SCHEMA_FILES[kind]).value.contents
    return Draft202012Validator(schema, registry=_registry())


@lru_cache(maxsize=None)
def _fast_validator(kind: str) -> Callable[[Any], Any] | None:
    """A compiled validator that answers "valid?" some 20x faster than jsonschema on large documents (a
    5,000-workload Topology); None when the schemas use keywords it would not check. Only a pass is trusted."""
    schemas = {}
    for path in resource_dir("schemas").glob("*.schema.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        schemas[contents["$id"]] = contents
    if any(_beyond_draft7(schema) for schema in schemas.values()):
        return None
    root = _registry().get_or_retrieve(SCHEMA_FILES[kind]).value.contents
    return fastjsonschema.compile(root, handlers={"https": schemas.__getitem__}, use_default=False)


def _beyond_draft7(node: Any) -> bool:
    if isinstance(node, dict):
        if _NOT_DRAFT7.intersection(node) or ("$ref" in node and not _ANNOTATIONS.issuperset(node)):
            return True
        return any(_beyond_draft7(value) for value in node.values())
    if isinstance(node, list):
        return any(_beyond_draft7(value) for value in node)
    return False


def schema_of(kind: str) -> dict[str, Any]:
    """The schema document of a kind (the LLM prompt shows the ExperimentPlan one)."""
    return validator(kind).schema


def check_kind(document: Any, expected: str | tuple[str, ...], tool: str, source: str) -> str:
    """Reject a document that is not a chaosgen.dev/v1 object of the expected kind, naming what it is instead."""
    expected_kinds = (expected,) if isinstance(expected, str) else expected
    wanted = " or ".join(f"an {k}" if k[0] in "AEIOU" else f"a {k}" for k in expected_kinds)
    if not isinstance(document, dict):
        raise InputRejected(f"{tool} expects {wanted}, got a JSON {type(document).__name__}", source, "$")
    kind = document.get("kind")
    if document.get("apiVersion") != API_VERSION:
        got = f"apiVersion {document.get('apiVersion')!r}" + (f" kind {kind!r}" if kind else "")
        raise InputRejected(f"{tool} expects {wanted} of apiVersion {API_VERSION}, got {got}", source, "$.apiVersion")
    if kind not in expected_kinds:
        article = "an" if isinstance(kind, str) and kind[:1] in "AEIOU" else "a"
        raise InputRejected(f"{tool} expects {wanted}, got {article} {kind}", source, "$.kind")
    return kind


def validate(document: Any, kind: str, source: str) -> None:
    """Raise InputRejected naming the best-matching schema error and its JSON path, plus the others' paths."""
    fast = _fast_validator(kind)
    if fast is not None:
        try:
            fast(document)
            return
        except fastjsonschema.JsonSchemaException:
            pass  # jsonschema decides, and names the error the way every stage reports it
    errors = list(validator(kind).iter_errors(document))
    if not errors:
        return
    best = best_match(errors)
    path = iter_json_path(best.absolute_path)
    message = best.message if len(best.message) <= 300 else best.message[:297] + "..."
    others = sorted({iter_json_path(e.absolute_path) for e in errors if e is not best} - {path})
    if others:
        listed = ", ".join(others[:MAX_LISTED_ERRORS])
        more = len(others) - MAX_LISTED_ERRORS
        message += f" (also invalid: {listed}{f' and {more} more' if more > 0 else ''})"
    raise InputRejected(f"{kind} schema: {message}", source, path)


def all_errors(document: Any, kind: str) -> list[tuple[str, str]]:
    """Every schema error as (JSON path, message); the LLM repair round sends these back to the model."""
    return sorted((iter_json_path(e.absolute_path), e.message) for e in validator(kind).iter_errors(document))
