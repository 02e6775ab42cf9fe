"""Reading a model's answer, which is untrusted input: JSON only, finite numbers, bounded nesting.

Called by chaos_suggest/llm/guard.py (parse_answer) and chaos_report/rca.py before either looks inside.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, cast

MAX_NESTING = 32
_CODE_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(?P<body>.*)\n\s*```\s*$", re.S)


class UnreadableAnswer(Exception):
    """The answer is not a JSON document a caller may look into; rule names why (invalid-json, non-finite-number,
    answer-shape)."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message
        super().__init__(f"{rule}: {message}")


def read_json_answer(text: str, key: str) -> list[Any]:
    """The array under key of the JSON object an answer is; models sometimes wrap JSON in a Markdown code fence,
    which is allowed."""
    fenced = _CODE_FENCE.match(text)
    body = fenced.group("body") if fenced else text
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except NotFinite as e:
        raise UnreadableAnswer("non-finite-number", f"{e}: JSON numbers must be finite") from e
    except json.JSONDecodeError as e:
        raise UnreadableAnswer("invalid-json", f"the answer is not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
    except RecursionError as e:
        raise UnreadableAnswer("invalid-json", "the answer is nested too deeply") from e
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise UnreadableAnswer("answer-shape", f'the answer must be a JSON object {{"{key}": [...]}}')
    if _nesting(document) > MAX_NESTING:
        # An experiment is 5 levels deep; this bound keeps every recursive walk after it far from the stack limit.
        raise UnreadableAnswer("answer-shape", f"the answer is nested deeper than {MAX_NESTING} levels")
    return cast(list[Any], document[key])


class NotFinite(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json accepts them, a ChaosGen document may not."""


def _no_constant(name: str) -> float:
    raise NotFinite(f"the answer holds {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(f"the answer holds {text[:40]}, which is not a finite number")
    return value


def _nesting(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest
