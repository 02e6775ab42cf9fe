"""The run journal: one JSON Lines file per run under --state-dir, written before each object is created.

A run killed with -9 leaves its journal behind without a `finished` record; `chaos-watch cleanup` reads it and
stops whatever the run started. Records are appended and fsynced one by one, so a crash loses nothing written.
"""

from __future__ import annotations

import json
import os
import socket
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
    @property
    def path(self) -> str | None:
        """The journal's file, None for a journal that records nothing."""
        ...

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


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """What identifies a process beyond its pid, which the kernel reuses: host, boot id and the process's start time
    (clock ticks after boot, /proc/<pid>/stat field 22). The runner journals its own in the `run` record."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _start_ticks(pid)}


def run_is_alive(records: list[dict[str, Any]]) -> bool | None:
    """Whether the process that wrote a journal still runs: True, False, or None when this host cannot tell (the
    run was on another host, or its journal records no process). Called by `chaos-watch cleanup`."""
    journaled = next((r.get("process") for r in records if r.get("op") == "run"), None)
    if not isinstance(journaled, dict) or journaled.get("host") != socket.gethostname():
        return None
    if journaled.get("boot_id") != _boot_id():
        return False
    start = _start_ticks(journaled["pid"])
    return start is not None and start == journaled.get("start_ticks")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time after boot in clock ticks, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it start at the last ')'.
    return int(stat[stat.rindex(")") + 2:].split()[19])


def applied_objects(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects a run applied, each once, in the order it applied them."""
    seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("op") == "apply":
            key = (record["apiVersion"], record["kind"], record.get("namespace") or "", record["name"])
            seen.setdefault(key, record)
    return list(seen.values())
