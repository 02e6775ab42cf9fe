"""The run journal: one JSON Lines file per run under --state-dir, written before each object is created.

A run killed with -9 leaves its journal behind without a `finished` record; `chaos-watch cleanup` reads it and
stops whatever the run started. Records are appended and fsynced one by one, so a crash loses nothing written.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from chaosgen.errors import EnvironmentFailure

RUN_SUFFIX = ".jsonl"


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/chaosgen/runs (XDG's default ~/.local/state when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "chaosgen" / "runs"


class Journal(Protocol):
    path: str | None

    def record(self, op: str, **fields: Any) -> None:
        """Append one record (op: run, apply, stop, finished, cleaned)."""
        ...


class FileJournal:
    def __init__(self, state_dir: Path, run_id: str) -> None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvironmentFailure(f"cannot create the state directory {state_dir}: {e.strerror}") from e
        self.path = str(state_dir / f"{run_id}{RUN_SUFFIX}")
        self._lock = threading.Lock()

    def record(self, op: str, **fields: Any) -> None:
        line = json.dumps({"op": op, **fields}, sort_keys=True) + "\n"
        with self._lock:
            try:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as e:
                raise EnvironmentFailure(f"cannot write the run journal {self.path}: {e.strerror}") from e


class NoJournal:
    """A dry run creates nothing, so it records nothing."""

    path = None

    def record(self, op: str, **fields: Any) -> None:
        return None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The records of one journal; a torn last line (the run died mid-write) is ignored."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def unfinished_runs(state_dir: Path) -> list[tuple[Path, list[dict[str, Any]]]]:
    """Journals of runs that neither finished nor were cleaned up, oldest first."""
    if not state_dir.is_dir():
        return []
    found = []
    for path in sorted(state_dir.glob(f"*{RUN_SUFFIX}")):
        records = read_journal(path)
        if not any(r.get("op") in ("finished", "cleaned") for r in records):
            found.append((path, records))
    return found


def applied_objects(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects a run applied, each once, in the order it applied them."""
    seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("op") == "apply":
            key = (record["apiVersion"], record["kind"], record.get("namespace") or "", record["name"])
            seen.setdefault(key, record)
    return list(seen.values())
