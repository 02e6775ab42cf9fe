"""Shared test helpers: where the repository and the shared fixtures are, running a command as a user does, and
golden files. Import them in a test module with `from conftest import FIXTURES, REPO, assert_golden, run`.
"""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# In CI the shared fixtures sit beside the clone, read-only; never locate them any other way.
FIXTURES = REPO.parent / "shared" / "fixtures"
GOLDEN = REPO / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("CHAOSGEN_UPDATE_GOLDEN") == "1"


def run(cmd: str, input: bytes | None = None, cwd: Path = REPO, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """Run a shell pipeline with `bash -o pipefail -c` from the repository root; stdout and stderr stay bytes.

    Without input, stdin is /dev/null (as in CI), so a command that waits for stdin fails instead of hanging.
    """
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], input=input, stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, cwd=cwd, env=env, timeout=timeout, check=False,
    )


def assert_golden(actual: str | bytes, path: Path) -> None:
    """Compare output with a golden file byte for byte; CHAOSGEN_UPDATE_GOLDEN=1 rewrites the file instead."""
    data = actual.encode() if isinstance(actual, str) else actual
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"no golden file {path}; create it with CHAOSGEN_UPDATE_GOLDEN=1 pytest"
    expected = path.read_bytes()
    if data != expected:
        diff = difflib.unified_diff(
            expected.decode(errors="replace").splitlines(), data.decode(errors="replace").splitlines(),
            str(path), "actual", lineterm="", n=2,
        )
        raise AssertionError("output differs from the golden file (CHAOSGEN_UPDATE_GOLDEN=1 to accept):\n"
                             + "\n".join(list(diff)[:60]))


# The sandbox control plane (tests/sandbox): session fixture `sandbox` and per-test `sandbox_namespace`.
from tests.sandbox.fixture import sandbox, sandbox_namespace  # noqa: E402,F401
