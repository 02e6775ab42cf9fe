"""Reading fields of Kubernetes objects with their shape checked: a field of the wrong shape raises MalformedObject
naming its JSON path. Used by model.py to parse objects, and by the other topology modules for free-form values."""

from __future__ import annotations

import re
from typing import Any

from chaosgen.errors import InputRejected

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}


class MalformedObject(InputRejected):
    """A field the topology needs has the wrong shape; index is the object's position in build_topology's input."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, None, path)
        self.index: int | None = None


def json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def typed_field(mapping: dict, key: str, expected: type, path: str, default: Any = None, required: bool = False) -> Any:
    value = mapping.get(key)
    if value is None:
        if required:
            raise MalformedObject(f"{key} is required", f"{path}.{key}")
        return default
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise MalformedObject(f"must be {_TYPE_NAMES[expected]}, got {json_type(value)}", f"{path}.{key}")
    return value


def object_list(mapping: dict, key: str, path: str) -> list[dict]:
    """A list of objects, e.g. containers or env; an element that is not an object is rejected with its index."""
    values: list[dict] = typed_field(mapping, key, list, path, [])
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise MalformedObject(f"must be an object, got {json_type(value)}", f"{path}.{key}[{index}]")
    return values


def label_map(mapping: dict, key: str, path: str) -> dict[str, str]:
    values: dict[str, str] = typed_field(mapping, key, dict, path, {})
    for name, value in values.items():
        if not isinstance(value, str):
            raise MalformedObject(f"label values must be strings, got {json_type(value)}", f"{path}.{key}.{name}")
    return values


def object_name(metadata: dict, key: str, default: str | None = None) -> str:
    value: str = typed_field(metadata, key, str, "$.metadata", default, required=default is None)
    if not _DNS1123.match(value) or len(value) > 253:
        raise MalformedObject(f"{value!r} is not a valid Kubernetes name (RFC 1123)", f"$.metadata.{key}")
    return value


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None or isinstance(value, (dict, list)) else str(value)
