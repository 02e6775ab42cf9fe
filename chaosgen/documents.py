"""Reading and writing documents: JSON and multi-document YAML, hardened against hostile input.

Every stage reads through parse_documents so that bad input of any kind (binary junk, truncated JSON, alias bombs,
deep nesting) becomes one InputRejected with the file name, never a traceback or a crash of the C parser.
"""

from __future__ import annotations

import io
import json
import re
import sys
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, cast

import orjson
import yaml

from chaosgen.errors import InputRejected

STDIN = "<stdin>"
MAX_INPUT_BYTES = 256 * 1024 * 1024
# libyaml's composer recurses on the C stack and crashes the interpreter somewhere past 20,000 levels; inputs
# whose nesting could reach this bound go through the pure-Python loader, which raises RecursionError instead.
C_LOADER_DEPTH_BOUND = 10_000
# An alias bomb expands a few hundred nodes into billions of references; real manifests barely use aliases.
MAX_ALIAS_EXPANSION = 1_000_000

# An anchor is `&name` after a space, a flow indicator or the start; a bare `&` scan with that check on the few
# hits is ~100x faster than one pattern with the alternation in front. Lines are measured from their start only.
_AMPERSAND_WORD = re.compile(r"&[^\s\[\]{},]+")
_BEFORE_ANCHOR = frozenset("[{,:-")
_LONG_LINE = re.compile(rf"(?m)^[^\n]{{{C_LOADER_DEPTH_BOUND}}}")
_NON_BRACKETS = re.compile(r"[^\[\]{}]+")
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE, _VALUE = (_TAG + name for name in ("str", "map", "seq", "merge", "value"))
# The scalar tags whose SafeConstructor functions are plain conversions of the node's text.
_PLAIN_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "null", "bool", "int", "float", "binary", "timestamp"))


class _Unusual(Exception):
    """A node the lean constructor leaves to the standard one (another tag, a non-scalar key, any error)."""


_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALAR_NODE, _MAPPING_NODE = yaml.ScalarNode, yaml.MappingNode


class _LeanSafeLoader(_CLoader):  # type: ignore[misc,valid-type]
    """SafeLoader's results, built faster: libyaml composes the nodes, and this builds the dicts, lists and
    scalars from them in one loop (no recursion of its own, unlike SafeConstructor's several frames per level), with
    the same resolvers, scalar constructors and merge-key handling.

    PyYAML's constructor spends most of a manifest's load time in generic per-node dispatch. A document holding
    anything else (sets, ordered maps, other tags, non-scalar keys, a scalar that fails to convert) is rebuilt by
    the standard constructor, so results and error messages stay exactly SafeLoader's.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._resolved_plain: dict[str, str] = {}

    if not _CLoader.yaml_path_resolvers:
        # Without path resolvers (SafeLoader has none) a node's tag depends on its kind and, for a plain scalar, its
        # text alone; manifests repeat the same texts constantly. libyaml asks for every node, so this is hot.
        def resolve(self, kind: type, value: str | None, implicit: Any) -> str:
            if kind is _SCALAR_NODE:
                if not implicit[0]:
                    return _STR
                try:
                    return self._resolved_plain[value]  # type: ignore[index]
                except KeyError:
                    tag: str = super().resolve(kind, value, implicit)
                    self._resolved_plain[value] = tag  # type: ignore[index]
                    return tag
            return _MAP if kind is _MAPPING_NODE else _SEQ

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            return self._construct_lean(node)
        except Exception:  # noqa: BLE001 - _Unusual, or an error the standard constructor raises in its own words
            return super().construct_document(node)

    def _construct_lean(self, root: yaml.Node) -> Any:
        constructors = self.yaml_constructors
        built: dict[int, Any] = {}
        pending: list[tuple[yaml.Node, Any]] = []
        scalar_node, string = _SCALAR_NODE, _STR  # locals: this loop runs once per node

        def value_of(node: yaml.Node) -> Any:
            tag = node.tag
            if type(node) is scalar_node:
                if tag == string:
                    return node.value
                if tag not in _PLAIN_SCALAR_TAGS:
                    raise _Unusual
                return constructors[tag](self, node)
            found = built.get(id(node))
            if found is not None:
                return found
            if tag == _MAP and type(node) is yaml.MappingNode:
                container: Any = {}
            elif tag == _SEQ and type(node) is yaml.SequenceNode:
                container = []
            else:
                raise _Unusual
            built[id(node)] = container
            pending.append((node, container))
            return container

        result = value_of(root)
        while pending:
            node, container = pending.pop()
            if type(container) is list:
                container.extend([value_of(item) for item in node.value])
                continue
            for key_node, value_node in node.value:
                if type(key_node) is not scalar_node:
                    raise _Unusual
                key_tag = key_node.tag
                if key_tag == string:
                    container[key_node.value] = value_of(value_node)
                elif key_tag in (_MERGE, _VALUE):
                    container.clear()
                    pending.append((node, container))
                    self.flatten_mapping(node)
                    break
                else:
                    container[value_of(key_node)] = value_of(value_node)
        return result


_Loader = _LeanSafeLoader


def read_bytes(path: str) -> bytes:
    """Read a file, or stdin for '-'; called by the CLI boundary and by chaos-inventory for each -f."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError as e:
        raise InputRejected("no such file", display_name(path)) from e
    except IsADirectoryError as e:
        raise InputRejected("is a directory", display_name(path)) from e
    except OSError as e:
        raise InputRejected(f"cannot read: {e.strerror}", display_name(path)) from e
    if len(data) > MAX_INPUT_BYTES:
        raise InputRejected(f"input larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", display_name(path))
    return data


def display_name(path: str) -> str:
    return STDIN if path == "-" else path


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text or a clear rejection; binary junk stops here."""
    if not data.strip():
        raise InputRejected("empty input: expected a JSON or YAML document", source)
    if b"\x00" in data:
        raise InputRejected("not text: the input contains NUL bytes (binary data?)", source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputRejected(f"not UTF-8 text: invalid byte at offset {e.start} (binary data?)", source) from e


def parse_documents(data: bytes, source: str) -> list[Any]:
    """All documents in a JSON or (multi-document) YAML input; empty YAML documents are dropped."""
    text = decode_text(data, source)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as e:
            if stripped[:1] == "[" or _looks_like_json(stripped):
                raise InputRejected(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})", source) from e
        except RecursionError as e:
            raise InputRejected("document nested too deeply", source) from e
    return [doc for doc in _load_yaml(text, source) if doc is not None]


def _looks_like_json(text: str) -> bool:
    return text.startswith("{") and text[1:].lstrip()[:1] in ('"', "}")


def _load_yaml(text: str, source: str) -> list[Any]:
    loader_class = _Loader if _nesting_bound(text) < C_LOADER_DEPTH_BOUND else yaml.SafeLoader
    # Where anchors end: only a document holding one can expand aliases (anchors do not cross documents).
    anchor_ends = [match.end() for match in _AMPERSAND_WORD.finditer(text)
                   if match.start() == 0 or text[match.start() - 1] in _BEFORE_ANCHOR
                   or text[match.start() - 1].isspace()]
    loader = loader_class(text)
    documents = []
    try:
        while loader.check_node():
            node = cast(yaml.Node, loader.get_node())  # check_node() said there is one
            if anchor_ends and _may_hold_anchor(node, anchor_ends):
                _check_alias_expansion(node, source)
            documents.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as e:
        raise InputRejected(f"not valid YAML: {_yaml_problem(e)}", source) from e
    except yaml.YAMLError as e:
        raise InputRejected(f"not valid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}", source) from e
    except RecursionError as e:
        raise InputRejected("document nested too deeply", source) from e
    finally:
        loader.dispose()
    return documents


def _may_hold_anchor(node: yaml.Node, anchor_ends: list[int]) -> bool:
    if node.start_mark is None or node.end_mark is None:
        return True
    first = bisect_left(anchor_ends, node.start_mark.index)
    return first < len(anchor_ends) and anchor_ends[first] <= node.end_mark.index


def _nesting_bound(text: str) -> int:
    """An upper bound of the nesting depth: block depth needs a character per level, flow depth an open bracket."""
    block_bound = C_LOADER_DEPTH_BOUND if _has_long_line(text) else 0
    flow_bound = text.count("[") + text.count("{")
    if flow_bound >= C_LOADER_DEPTH_BOUND:
        brackets = _NON_BRACKETS.sub("", text)
        flow_bound = max(accumulate(map(_BRACKET_DELTA.__getitem__, brackets)), default=0)
    return block_bound + flow_bound


def _has_long_line(text: str) -> bool:
    """A line of C_LOADER_DEPTH_BOUND characters or more; the regex alone takes 0.1 s on a 10 MB manifest.

    Such a line covers a whole aligned block of half that size, so when every block holds a newline there is none.
    """
    block = C_LOADER_DEPTH_BOUND // 2
    if all(text.find("\n", start, start + block) >= 0 for start in range(0, len(text) - block + 1, block)):
        return False
    return _LONG_LINE.search(text) is not None


def _check_alias_expansion(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}
    # Nodes whose children are being sized: meeting one again means an alias inside its own anchor (`&a [*a]`).
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if id(node) in open_nodes and not children_done:
            raise InputRejected("YAML alias refers to its own anchor (a recursive structure)", source)
        children = _children(node)
        if children_done or not children:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_ALIAS_EXPANSION:
                raise InputRejected(
                    f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes (alias bomb?)", source
                )
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _yaml_problem(e: yaml.MarkedYAMLError) -> str:
    problem = e.problem or e.context or "syntax error"
    mark = e.problem_mark or e.context_mark
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def dump_json(document: Any) -> str:
    """The canonical JSON form of an output document: stable, so identical inputs give identical bytes.

    orjson writes the same bytes as json.dumps(indent=2, ensure_ascii=False), but the standard library falls back to
    its pure-Python encoder whenever it indents, which is 20x slower on a 5,000-workload Topology.
    """
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n"
    except TypeError:
        # Integers beyond 64 bits (legal JSON, rare in manifests) are out of orjson's range.
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def dump_yaml_stream(documents: list[Any]) -> str:
    """Multi-document YAML, each document after '---', keys in the order the stage built them."""
    buffer = io.StringIO()
    yaml.dump_all(
        documents, buffer, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
        explicit_start=True, default_flow_style=False, allow_unicode=True, width=120,
    )
    return buffer.getvalue()


def iter_json_path(path: Iterable[Any]) -> str:
    """$.a[0].b style JSON path from a jsonschema error's absolute_path."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) else f"[{json.dumps(part)}]"
    return out
