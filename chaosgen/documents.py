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
from itertools import accumulate
from typing import Any, Iterator

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
_LONG_LINE = re.compile(r"(?m)^[^\n]{%d}" % C_LOADER_DEPTH_BOUND)
_NON_BRACKETS = re.compile(r"[^\[\]{}]+")
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
            node = loader.get_node()
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
    block_bound = C_LOADER_DEPTH_BOUND if _LONG_LINE.search(text) else 0
    brackets = _NON_BRACKETS.sub("", text)
    flow_bound = max(accumulate(map(_BRACKET_DELTA.__getitem__, brackets)), default=0)
    return block_bound + flow_bound


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


def iter_json_path(path: Iterator[Any] | list[Any]) -> str:
    """$.a[0].b style JSON path from a jsonschema error's absolute_path."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) else f"[{json.dumps(part)}]")
    return out
