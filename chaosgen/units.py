"""Durations as the documents write them (Go/Prometheus style: 30s, 2m, 1h30m)."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_WHOLE = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError when it is not one."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 2m, 1h30m)")
    return sum(int(number) * _SECONDS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest duration string for a whole number of seconds (90 -> 1m30s)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
