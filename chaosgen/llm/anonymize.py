"""--anonymize: stable placeholders (ns-1, wl-1, svc-1) for the names of a Topology in a prompt, and back.

Called by suggest.py on every piece of cluster data before it enters a prompt (and on the validation errors of a
repair round), and on the parsed answer before the guard checks it against the real Topology. Names are replaced
wherever they occur as a whole token, case-insensitively, so that ids, label values that equal a name, evidence
such as env[DB_HOST] and host names such as db.shop.svc leak nothing.
"""

from __future__ import annotations

import re
from typing import Any

# A name-like token: DNS labels joined by '-' or '.'; '_', '/', ':' and the rest separate tokens.
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*")
_SEPARATOR = re.compile(r"([-.])")
_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9])(?:ns|svc|wl)-[0-9]+(?![A-Za-z0-9])")


class Anonymizer:
    """A bijection between the real names of one Topology and placeholders, numbered in sorted name order."""

    def __init__(self, topology: dict[str, Any]) -> None:
        workloads = sorted({w["name"] for w in topology["workloads"]})
        services = sorted({s["name"] for s in topology["services"]} - set(workloads))
        namespaces = sorted({w["namespace"] for w in topology["workloads"]} | {s["namespace"] for s in topology["services"]})
        self._forward: dict[str, str] = {}
        # A name used by several kinds of object gets one placeholder: workload before service before namespace.
        for prefix, names in (("ns", namespaces), ("svc", services), ("wl", workloads)):
            for number, name in enumerate(names, 1):
                self._forward[name.lower()] = f"{prefix}-{number}"
        self._backward = {placeholder: name for name, placeholder in self._forward.items()}

    def hide(self, value: Any) -> Any:
        """A copy of a JSON-like value whose strings name no namespace, workload or service (keys are kept)."""
        return _map_strings(value, self.hide_text)

    def reveal(self, value: Any) -> Any:
        """A copy of the model's answer with every placeholder replaced by the real name again."""
        return _map_strings(value, self.reveal_text)

    def hide_text(self, text: str) -> str:
        return _TOKEN.sub(lambda m: self._hide_token(m.group()), text)

    def reveal_text(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self._backward.get(m.group(), m.group()), text)

    def _hide_token(self, token: str) -> str:
        whole = self._forward.get(token.lower())
        if whole is not None:
            return whole
        if not _SEPARATOR.search(token):
            return token
        # db.shop.svc or my-api-v2: replace the longest known runs of labels, left to right.
        parts = _SEPARATOR.split(token)
        labels, separators = parts[0::2], parts[1::2]
        out: list[str] = []
        start = 0
        while start < len(labels):
            end = len(labels)
            while end > start + 1 and _join(labels, separators, start, end).lower() not in self._forward:
                end -= 1
            run = _join(labels, separators, start, end)
            out.append(self._forward.get(run.lower(), run))
            if end < len(labels):
                out.append(separators[end - 1])
            start = end
        return "".join(out)


def _join(labels: list[str], separators: list[str], start: int, end: int) -> str:
    text = labels[start]
    for index in range(start + 1, end):
        text += separators[index - 1] + labels[index]
    return text


def _map_strings(value: Any, function: Any) -> Any:
    if isinstance(value, str):
        return function(value)
    if isinstance(value, list):
        return [_map_strings(item, function) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, function) for key, item in value.items()}
    return value
