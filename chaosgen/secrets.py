"""Recognising secret-like values so that none ever leaves a stage (inventory redacts, suggest re-checks)."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|pwd|secret|token|api[-_]?key|apikey|private[-_]?key|access[-_]?key|credential"
    r"|bearer|session[-_]?key|signing[-_]?key|encryption[-_]?key|client[-_]?key|salt|cookie|(^|[-_])key$)"
)
# scheme://user:password@host, the password part; DSNs such as postgres://u:p@db:5432/app.
_URL_CREDENTIALS = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)(?=@)")
# key=value pairs inside connection strings: "host=db password=hunter2", "Password=x;".
_INLINE_SECRET = re.compile(r"(?i)(?P<prefix>\b(?:password|passwd|pwd|secret|token|api[-_]?key)\s*[=:]\s*)(?P<password>[^\s;&,]+)")


def is_secret_name(name: str) -> bool:
    """True for env var or key names that hold secrets (DB_PASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY...)."""
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """The text with credentials inside URLs/DSNs and key=value pairs replaced."""
    text = _URL_CREDENTIALS.sub(lambda m: m.group("prefix") + REDACTED, text)
    return _INLINE_SECRET.sub(lambda m: m.group("prefix") + REDACTED, text)


def redact_value(name: str, value: str) -> str:
    """What may be shown of an env value or ConfigMap entry called name."""
    if is_secret_name(name) and value:
        return REDACTED
    return redact_text(value)


def redact_strings(document: Any) -> Any:
    """A copy of a document with every string passed through redact_text (the re-check before a prompt)."""
    if isinstance(document, str):
        return redact_text(document)
    if isinstance(document, list):
        return [redact_strings(item) for item in document]
    if isinstance(document, dict):
        return {key: redact_strings(value) for key, value in document.items()}
    return document
