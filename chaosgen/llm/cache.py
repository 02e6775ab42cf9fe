"""The answer cache of the LLM providers (--cache-dir, --offline), and what each OpenAI-compatible server accepts.

Called by chaos-suggest's and chaos-report's LLM paths around every provider call (open_llm builds both). The key
is the sha256 of the provider, model, parameters and the whole conversation (system part, turns, answer schema), so
a rerun on the same input and flags reads the same answer and writes the same bytes without a network call;
--offline makes a miss an error instead of a call. Which structured-output format an OpenAI-compatible server took
is not part of the key (the answer is the model's either way); ServerFormats keeps it in capabilities.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from chaosgen.llm.options import LLMOptions
from chaosgen.llm.providers import RESPONSE_FORMATS, Conversation, LLMProvider, ProviderFailure, make_provider

log = logging.getLogger(__name__)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CACHE_HOME/chaosgen/llm, ~/.cache/chaosgen/llm when XDG_CACHE_HOME is unset (XDG base directories)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chaosgen" / "llm"


def cache_key(provider: LLMProvider, conversation: Conversation) -> str:
    material = {
        "provider": provider.name,
        "model": provider.model,
        "parameters": provider.parameters(),
        "conversation": dataclasses.asdict(conversation),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    """Answers on disk, one JSON file per key under directory/<first two hex digits>/."""

    def __init__(self, directory: Path, offline: bool = False) -> None:
        self.directory = directory
        self.offline = offline

    def ask(self, provider: LLMProvider, conversation: Conversation) -> tuple[str, bool]:
        """The provider's answer and whether it came from the cache; a miss calls the provider unless offline."""
        key = cache_key(provider, conversation)
        path = self.directory / key[:2] / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))["answer"], True
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged entry is a miss; the answer below replaces it
        if self.offline:
            raise ProviderFailure(
                f"--offline: no cached answer of {provider.name} model {provider.model} for this prompt in {self.directory}",
                fatal=True,
            )
        answer = provider.complete(conversation)
        try:
            _write_atomically(path, {"provider": provider.name, "model": provider.model, "answer": answer})
        except OSError as e:
            log.warning("cannot write the LLM cache in %s (%s); the next run will ask again", self.directory, e.strerror)
        return answer, False


class ServerFormats:
    """The FormatMemory of OpenAIProvider: directory/capabilities.json, {base URL: {model: response format}}."""

    FILE = "capabilities.json"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.FILE

    def recall(self, base_url: str, model: str) -> str | None:
        known = self._read().get(base_url, {}).get(model)
        return known if known in RESPONSE_FORMATS else None

    def remember(self, base_url: str, model: str, response_format: str) -> None:
        known = self._read()
        known.setdefault(base_url, {})[model] = response_format
        try:
            _write_atomically(self.path, known)
        except OSError as e:
            log.warning("cannot write %s (%s); the next run will negotiate again", self.path, e.strerror)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            known = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or damaged: negotiating again costs one request
        if not isinstance(known, dict):
            return {}
        return {url: models for url, models in known.items() if isinstance(models, dict)}


def open_llm(options: LLMOptions, provider: LLMProvider | None = None) -> tuple[LLMProvider, AnswerCache]:
    """The provider the options name (unless one is injected) and the answer cache in front of it."""
    directory = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    if provider is None:
        provider = make_provider(
            options.provider, options.model, options.base_url, options.timeout, options.max_retries,
            formats=ServerFormats(directory),
        )
    return provider, AnswerCache(directory, options.offline)


def _write_atomically(path: Path, document: object) -> None:
    """So that a concurrent run or an interrupt never leaves half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
