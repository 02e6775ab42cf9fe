"""`make demo-live` as a user runs it (issue 14.8): from nothing to a report, exiting with the pipeline's status and
leaving no process behind; and the sandbox's `env` output is only `export` lines, so that eval works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from chaos_watch.core import exit_code
from chaosgen.schemas import validate
from conftest import REPO
from tests.sandbox.demo_live import POLICY
from tests.sandbox.litmus_runner import SUPPORTED
from tests.sandbox.sandbox import COMPONENTS, Sandbox, _is_ours


def test_the_demo_policy_allows_exactly_the_faults_the_sandbox_injects() -> None:
    assert set(yaml.safe_load(POLICY.read_text())["allowed_faults"]) == set(SUPPORTED)


def test_sandbox_env_prints_only_export_lines(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    Sandbox(bin_dir=tmp_path / "bin", data_dir=tmp_path, server="https://127.0.0.1:1",
            admin_kubeconfig=tmp_path / "admin.kubeconfig", readonly_kubeconfig=tmp_path / "readonly.kubeconfig",
            prometheus_url="http://127.0.0.1:2").save(state)
    completed = subprocess.run([sys.executable, "-m", "tests.sandbox.sandbox", "env", "--state", str(state)],
                               cwd=REPO, capture_output=True, text=True, check=True)
    lines = completed.stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines), completed.stdout
    evaluated = subprocess.run(["bash", "-c", 'eval "$(cat)"; echo "$KUBECONFIG $PROMETHEUS_URL"'],
                               input=completed.stdout, capture_output=True, text=True, check=True)
    assert evaluated.stdout.split() == [str(tmp_path / "admin.kubeconfig"), "http://127.0.0.1:2"]


class PidWatcher:
    """Records every process the state file ever lists (control plane and daemons), polling while make runs."""

    def __init__(self, state: Path) -> None:
        self.state, self.seen, self.done = state, set[tuple[int, str]](), threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.done.wait(0.5):
            try:
                sandbox = Sandbox.load(self.state)
            except (OSError, ValueError, KeyError):
                continue
            self.seen |= {(pid, str(sandbox.bin_dir / COMPONENTS[c])) for c, pid in sandbox.pids.items()}
            self.seen |= {(pid, program) for pid, program in sandbox.daemons.values()}


@pytest.mark.sandbox
@pytest.mark.prometheus
@pytest.mark.slow
def test_make_demo_live_runs_to_the_report_and_leaves_nothing_running(tmp_path: Path) -> None:
    state, out = tmp_path / "sandbox.json", tmp_path / "out"
    watcher = PidWatcher(state)
    watcher.thread.start()
    env = {**os.environ, "CHAOSGEN_SANDBOX_STATE": str(state)}
    env.pop("KEEP", None)
    try:
        completed = subprocess.run(["make", "-s", "demo-live", f"DEMO_OUT={out}"], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    finally:
        watcher.done.set()
        watcher.thread.join()
    print(completed.stderr[-3000:])

    document = json.loads((out / "run.json").read_text())
    validate(document, "RunResult", "run.json")
    status = exit_code(document)
    assert status in (0, 5), "the sandbox plan holds only faults the sandbox can inject"
    # make exits 2 whenever a recipe fails, naming the recipe's status; the Python entry exits with it as is.
    if status:
        assert completed.returncode == 2 and f"] Error {status}" in completed.stderr, completed.stderr[-3000:]
    else:
        assert completed.returncode == 0, completed.stderr[-3000:]
    assert {e["fault"] for e in document["experiments"]} <= set(SUPPORTED)
    assert all(e["verdict"] in ("passed", "failed", "aborted") for e in document["experiments"]), \
        [(e["id"], e["verdict"], e["reason"]) for e in document["experiments"]]
    report = out / "report.md"
    assert completed.stdout.splitlines()[-1] == f"report: {report}"
    text = report.read_text()
    for result in document["experiments"]:
        assert f"## {result['id']}: {result['verdict']}" in text
    recovered = [e["time_to_recovery_seconds"] for e in document["experiments"] if e.get("recovered")]
    assert all(seconds >= 1 for seconds in recovered), "pods take the world's ready delay to come back"

    assert {program.rsplit("/", 1)[-1] for _, program in watcher.seen} >= {*COMPONENTS.values(), "prometheus"}
    assert not [(pid, program) for pid, program in watcher.seen if _is_ours(pid, Path(program))]
    assert not state.exists()
