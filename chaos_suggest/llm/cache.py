"""The answer cache of chaos-suggest's LLM providers (--cache-dir, --offline).

Called by suggest.py around every provider call. The key is the sha256 of the provider, model, parameters and the
whole conversation (system part, turns, answer schema), so a rerun on the same input and flags reads the same
answer and writes the same bytes without a network call; --offline makes a miss an error instead of a call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from chaos_suggest.llm.providers import Conversation, LLMProvider, ProviderFailure

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
            self._store(path, {"provider": provider.name, "model": provider.model, "answer": answer})
        except OSError as e:
            log.warning("cannot write the LLM cache in %s (%s); the next run will ask again", self.directory, e.strerror)
        return answer, False

    @staticmethod
    def _store(path: Path, entry: dict[str, str]) -> None:
        """Write atomically, so that a concurrent run or an interrupt never leaves half an entry."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
