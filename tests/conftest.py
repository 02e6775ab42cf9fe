"""Shared test helpers: where the repository and the fixtures are, running a command as a user does, and golden
files. Import them in a test module with `from conftest import FIXTURES, REPO, assert_golden, fixture_files, run`.
"""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Third-party manifests and CRDs, vendored in the repository (tests/fixtures/README.md names their sources).
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = REPO / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("CHAOSGEN_UPDATE_GOLDEN") == "1"
_FIXTURE_FILES = ("apps/sock-shop.yaml", "apps/bookinfo.yaml", "crds/litmus-crds.yaml", "truth/sock-shop.json",
                  "truth/bookinfo.json")
_missing = [name for name in _FIXTURE_FILES if not (FIXTURES / name).is_file()]
if _missing:
    # Fail the whole run at collection: a missing fixture must never turn into an empty parametrisation.
    raise RuntimeError(f"test fixtures missing from {FIXTURES}: {', '.join(_missing)}")


def fixture_files(pattern: str) -> list[Path]:
    """The fixture files matching a glob, sorted, for parametrising a test; never empty."""
    found = sorted(FIXTURES.glob(pattern))
    if not found:
        raise RuntimeError(f"no test fixture matches {FIXTURES / pattern}")
    return found


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
