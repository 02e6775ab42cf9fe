"""The JSON Schemas in schemas/: the only contract between stages. Used by the CLI boundary on input and output."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, cast

import fastjsonschema

from chaosgen import API_VERSION
from chaosgen.documents import iter_json_path
from chaosgen.errors import InputRejected
from chaosgen.resources import resource_dir

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from referencing import Registry

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


@cache
def _registry() -> Registry:
    # jsonschema and referencing take ~0.14 s to import: only an invalid document or the LLM repair round needs them.
    from referencing import Registry, Resource

    resources = []
    for path in sorted(resource_dir("schemas").glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents)
        resources.append((contents["$id"], resource))
        resources.append((path.name, resource))
    return Registry().with_resources(resources)


# A schema's `$` means the end of the string (ECMA-262), but Python's `$` also matches before a trailing newline, so
# "kube-system\n" would pass ^...$. fastjsonschema rewrites every unescaped `$` to `\Z`; jsonschema gets the same.
_DOLLAR = re.compile(r"(?<!\\)\$")


@cache
def full_match_pattern(pattern: str) -> re.Pattern[str]:
    """A schema pattern compiled with `$` anchored at the very end of the string, as fastjsonschema compiles it."""
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not full_match_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def validator(kind: str) -> Draft202012Validator:
    """A cached validator for one document kind (patterns as the fast validator reads them)."""
    from jsonschema import Draft202012Validator, validators

    if kind not in SCHEMA_FILES:
        raise KeyError(f"no schema for kind {kind!r}")
    schema = _registry().get_or_retrieve(SCHEMA_FILES[kind]).value.contents
    full_match = validators.extend(Draft202012Validator, {"pattern": _pattern_keyword})
    return full_match(schema, registry=_registry())


def passes_fast_check(document: Any, schema_file: str) -> bool:
    """True when the compiled validator of a file in schemas/ accepts the document; False means "ask jsonschema"
    (it names the error, and decides where the two could differ)."""
    fast = fast_validator_of(schema_file)
    if fast is None:
        return False
    try:
        fast(document)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@cache
def fast_validator_of(schema_file: str) -> Callable[[Any], Any] | None:
    """A compiled validator that answers "valid?" some 20x faster than jsonschema on large documents (a
    5,000-workload Topology); None when the schemas use keywords it would not check. Only a pass is trusted."""
    files = {path.name: path.read_bytes() for path in sorted(resource_dir("schemas").glob("*.schema.json"))}
    store = hashlib.sha256(b"\0".join([fastjsonschema.VERSION.encode(), importlib.util.MAGIC_NUMBER,
                                        _UNNAMED_REF_CALL.pattern.encode(), schema_file.encode()]))
    for name, text in files.items():
        store.update(b"\0" + name.encode() + b"\0" + text)
    path = _code_cache_dir() / f"{store.hexdigest()}.bin"
    cached = _read_verified(path)
    if cached is None:
        schemas = {}
        for text in files.values():
            contents = json.loads(text)
            schemas[contents["$id"]] = contents
        if any(_beyond_draft7(schema) for schema in schemas.values()):
            return None
        code = _UNNAMED_REF_CALL.sub(r"\1None)", fastjsonschema.compile_to_code(
            json.loads(files[schema_file]), handlers={"https": schemas.__getitem__}, use_default=False
        ))
        # fastjsonschema writes the root schema's function first, then those of the $refs it reaches.
        cached = (_ROOT_FUNCTION.search(code).group(1), compile(code, f"<validator of {schema_file}>", "exec"))  # type: ignore[union-attr]
        _write_verified(path, cached)
    root_function, bytecode = cached
    namespace: dict[str, Any] = {}
    exec(bytecode, namespace)  # noqa: S102 - generated from our own schemas
    return cast("Callable[[Any], Any]", namespace[root_function])


_ROOT_FUNCTION = re.compile(r"^def (\w+)\(", re.MULTILINE)
# Each call to a $ref's function formats the data's path for an error message (`.format(**locals())`), which is
# half the validation time of a large Topology; only a pass is trusted, so the calls pass no path instead.
_UNNAMED_REF_CALL = re.compile(
    r'(\bvalidate_\w+\(\w+, custom_formats, )\(name_prefix or "data"\) \+ "[^"\n]*"\.format\(\*\*locals\(\)\)\)'
)


def _code_cache_dir() -> Path:
    """$XDG_CACHE_HOME/chaosgen/schema-code: generating and compiling a validator costs 0.1-0.3 s per process,
    loading it a few milliseconds."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chaosgen" / "schema-code"


def _read_verified(path: Path) -> tuple[str, CodeType] | None:
    """The cached (root function name, bytecode), or None when the file is missing or does not start with the
    sha256 of the rest: only a file written whole by _write_verified is trusted."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:32], data[32:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        root_function, bytecode = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return root_function, bytecode


def _write_verified(path: Path, cached: tuple[str, CodeType]) -> None:
    """Write atomically (a concurrent stage reads the old file or the new one); a read-only home is fine."""
    payload = marshal.dumps(cached)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(hashlib.sha256(payload).digest() + payload)
        temporary.replace(path)
    except OSError:
        pass


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
    return cast("dict[str, Any]", validator(kind).schema)


def with_article(noun: str) -> str:
    """"an ExperimentPlan", "a Topology": how every message names the kind it expected or got."""
    return f"{'an' if noun[:1] in 'AEIOUaeiou' else 'a'} {noun}"


def check_kind(document: Any, expected: str | tuple[str, ...], tool: str, source: str) -> str:
    """Reject a document that is not a chaosgen.dev/v1 object of the expected kind, naming what it is instead."""
    expected_kinds = (expected,) if isinstance(expected, str) else expected
    wanted = " or ".join(with_article(k) for k in expected_kinds)
    if not isinstance(document, dict):
        raise InputRejected(f"{tool} expects {wanted}, got a JSON {type(document).__name__}", source, "$")
    kind = document.get("kind")
    if document.get("apiVersion") != API_VERSION:
        got = f"apiVersion {document.get('apiVersion')!r}" + (f" kind {kind!r}" if kind else "")
        raise InputRejected(f"{tool} expects {wanted} of apiVersion {API_VERSION}, got {got}", source, "$.apiVersion")
    if kind not in expected_kinds:
        raise InputRejected(f"{tool} expects {wanted}, got {with_article(str(kind))}", source, "$.kind")
    return cast(str, kind)


def validate(document: Any, kind: str, source: str) -> None:
    """Raise InputRejected naming the best-matching schema error and its JSON path, plus the others' paths."""
    if passes_fast_check(document, SCHEMA_FILES[kind]):
        return
    # jsonschema names the error the way every stage reports it.
    errors = list(validator(kind).iter_errors(document))
    if not errors and fast_validator_of(SCHEMA_FILES[kind]) is not None:
        raise InputRejected(f"{kind} schema: {_FAST_ONLY}", source, "$")
    _reject_first(errors, f"{kind} schema", source)


def validate_definition(value: Any, kind: str, definition: str, source: str) -> None:
    """validate() for one part of a document, checked against a $defs entry of its kind's schema (the engine
    contract checks the experiment that chaos-litmus annotated on a ChaosEngine against ExperimentPlan's)."""
    _reject_first(list(_definition_validator(kind, definition).iter_errors(value)), f"{kind} {definition} schema", source)


@cache
def _definition_validator(kind: str, definition: str) -> Draft202012Validator:
    return validator(kind).evolve(schema={"$ref": f"{SCHEMA_FILES[kind]}#/$defs/{definition}"})


def _reject_first(errors: list[Any], schema_name: str, source: str) -> None:
    if not errors:
        return
    from jsonschema.exceptions import best_match

    best = best_match(errors)
    path = iter_json_path(best.absolute_path)
    message = best.message if len(best.message) <= 300 else best.message[:297] + "..."
    others = sorted({iter_json_path(e.absolute_path) for e in errors if e is not best} - {path})
    if others:
        listed = ", ".join(others[:MAX_LISTED_ERRORS])
        more = len(others) - MAX_LISTED_ERRORS
        message += f" (also invalid: {listed}{f' and {more} more' if more > 0 else ''})"
    raise InputRejected(f"{schema_name}: {message}", source, path)


def all_errors(document: Any, kind: str) -> list[tuple[str, str]]:
    """Every schema error as (JSON path, message); the LLM guard and its repair round name them to the model.

    The fast validator decides, jsonschema explains: a document only the fast one rejects is still rejected.
    """
    if passes_fast_check(document, SCHEMA_FILES[kind]):
        return []
    errors = sorted((iter_json_path(e.absolute_path), e.message) for e in validator(kind).iter_errors(document))
    if errors or fast_validator_of(SCHEMA_FILES[kind]) is None:
        return errors
    return [("$", _FAST_ONLY)]


# Both validators read patterns the same way; should they still disagree, the stricter answer holds.
_FAST_ONLY = "the document fails the compiled schema check, though the detailed validator names no error"
