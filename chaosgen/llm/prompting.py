"""What every LLM prompt of ChaosGen shares: the Jinja2 templates of prompts/, cluster data quoted as JSON that cannot
end its data block, and a conservative token estimate.

Used by chaos_suggest/llm/prompt.py (experiment.j2) and chaos_report/rca.py (rca.j2).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

import jinja2

from chaosgen.resources import resource_dir

# The estimate: letters count a token per 7 (English words are one token, long identifiers more), digits per 3
# (tokenizers split numbers in threes), punctuation per 2 (JSON's '":"' is one or two), a newline run one. On JSON
# this is ~3 characters a token, closer than the 4 of prose, and it errs on the high side.
_PIECE = re.compile(r"[A-Za-z]+|[0-9]+|[^A-Za-z0-9\s]+|\n\s*|[ \t]+")
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def estimate_tokens(text: str) -> int:
    """How many tokens a prompt text costs, conservatively (no tokenizer ships offline for every provider)."""
    total = 0
    for piece in _PIECE.findall(text):
        first = piece[0]
        if first.isalpha():
            total += math.ceil(len(piece) / 7)
        elif first.isdigit():
            total += math.ceil(len(piece) / 3)
        elif first == "\n":
            total += 1
        elif not first.isspace():
            total += math.ceil(len(piece) / 2)
    return total


def data_json(value: Any) -> str:
    """One value as cluster data in a prompt: compact JSON with no character that could end the data block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return re.sub(r"[<>&]", lambda m: _ESCAPES[m.group()], text)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("prompts"))),
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True,
    )


def template(name: str) -> jinja2.Template:
    """A template of prompts/, strict: a missing variable is an error, never an empty string in a prompt."""
    return _environment().get_template(name)
