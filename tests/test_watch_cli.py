"""chaos-watch as a user runs it: the installed command in bash pipes, exit code, stdout and stderr
checked apart. The cluster-free cases live here; the sandbox ones in test_watch_e2e.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from chaos_watch.cli import Progress
from chaos_watch.journal import process_identity
from tests.sandbox import watch_app


def sh(command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **(env or {})})


def one_error_line(completed: subprocess.CompletedProcess[str], tool: str = "chaos-watch") -> str:
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), completed.stderr
    assert "Traceback" not in completed.stderr
    return lines[0]


@pytest.fixture
def engines_file(tmp_path: Path) -> Path:
    path = tmp_path / "engines.yaml"
    path.write_text(yaml.safe_dump_all([watch_app.chaos_experiment(), watch_app.engine("web-pod-delete", "web")]))
    return path


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


@pytest.mark.parametrize("content, message", [
    ("", "empty input"),
    ("{\"a\": ", "not valid JSON"),
    ("apiVersion: chaosgen.dev/v1\nkind: ExperimentPlan\n", "expects chaos-litmus output (ChaosEngines), got an ExperimentPlan"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no ChaosEngine in the input"),
    ("- 1\n- 2\n", "expected Kubernetes objects"),
])
def test_bad_input_is_exit_3_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    completed = sh(f"cat {path} | chaos-watch --prometheus-url http://127.0.0.1:1")
    assert completed.returncode == 3
    assert completed.stdout == ""
    assert message in one_error_line(completed)


def test_broken_annotation_names_file_and_path(tmp_path: Path) -> None:
    broken = watch_app.engine("web-pod-delete", "web")
    broken["metadata"]["annotations"]["chaosgen.dev/abort-thresholds"] = "[oops"
    path = tmp_path / "engines.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [broken]}))
    completed = sh(f"chaos-watch -f {path} --prometheus-url http://127.0.0.1:1")
    assert completed.returncode == 3 and completed.stdout == ""
    assert f"{path} at $[0].metadata.annotations: annotation chaosgen.dev/abort-thresholds is not JSON" in one_error_line(completed)


def test_a_tampered_experiment_annotation_is_exit_3_naming_the_engine(tmp_path: Path) -> None:
    """The annotated experiment is checked against the ExperimentPlan schema: an edit that breaks it (here a
    blast radius of 250% of the pods) is rejected before anything reaches the cluster."""
    tampered = watch_app.engine("web-pod-delete", "web")
    annotations = tampered["metadata"]["annotations"]
    experiment = json.loads(annotations["chaosgen.dev/experiment"])
    experiment["blast_radius"]["pods_affected_percent"] = 250
    annotations["chaosgen.dev/experiment"] = json.dumps(experiment)
    path = tmp_path / "engines.yaml"
    path.write_text(yaml.safe_dump_all([watch_app.chaos_experiment(), tampered]))
    completed = sh(f"chaos-watch -f {path} --prometheus-url http://127.0.0.1:1")
    assert completed.returncode == 3 and completed.stdout == ""
    line = one_error_line(completed)
    assert f"{path} at $[1].metadata.annotations: annotation chaosgen.dev/experiment is malformed at " \
           "$.blast_radius.pods_affected_percent: ExperimentPlan experiment schema: 250 is greater than the maximum of " \
           "100 (in ChaosEngine shop/web-pod-delete)" in line, line


@pytest.mark.parametrize("command, code, message", [
    ("cat {engines} | env -u PROMETHEUS_URL chaos-watch", 2, "--prometheus-url"),
    ("chaos-watch -f {engines} --prometheus-url http://127.0.0.1:1 --kubeconfig {tmp}/nope", 4, "cannot load kubeconfig"),
], ids=["thresholds-without-prometheus", "missing-kubeconfig"])
def test_refused_before_anything_runs(engines_file: Path, tmp_path: Path, command: str, code: int, message: str) -> None:
    completed = sh(command.format(engines=engines_file, tmp=tmp_path))
    assert completed.returncode == code and completed.stdout == ""
    assert message in one_error_line(completed)


def test_bad_duration_flag_is_a_usage_error(engines_file: Path) -> None:
    completed = sh(f"chaos-watch -f {engines_file} --interval soon")
    assert completed.returncode == 2 and completed.stdout == ""
    assert "not a duration" in completed.stderr


@pytest.mark.slow
def test_unreachable_cluster_is_exit_4_before_anything_runs(engines_file: Path, unreachable_kubeconfig: Path, tmp_path: Path) -> None:
    completed = sh(f"cat {engines_file} | PROMETHEUS_URL=http://127.0.0.1:1 chaos-watch --kubeconfig {unreachable_kubeconfig} "
                   f"--state-dir {tmp_path / 'state'}")
    assert completed.returncode == 4 and completed.stdout == ""
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in one_error_line(completed)
    assert "not-a-real-token" not in completed.stderr
    assert not (tmp_path / "state").exists(), "nothing is journaled before the cluster answers"


def test_cleanup_with_no_unfinished_run(tmp_path: Path) -> None:
    completed = sh(f"chaos-watch cleanup --state-dir {tmp_path}")
    assert completed.returncode == 0 and completed.stdout == ""
    assert "no unfinished run" in completed.stderr


@pytest.mark.slow
def test_cleanup_against_an_unreachable_cluster_is_exit_4(tmp_path: Path, unreachable_kubeconfig: Path) -> None:
    (tmp_path / "20260101T000000Z-1.jsonl").write_text(json.dumps({"op": "apply", "apiVersion": "litmuschaos.io/v1alpha1",
                                                                  "kind": "ChaosEngine", "namespace": "shop", "name": "x"}) + "\n")
    completed = sh(f"chaos-watch cleanup --force --state-dir {tmp_path} --kubeconfig {unreachable_kubeconfig}")
    assert completed.returncode == 4 and completed.stdout == ""
    assert completed.stderr.splitlines()[0].endswith("cannot tell whether its chaos-watch still runs (its journal "
                                                     "records no process); stopping it anyway (--force)")
    assert completed.stderr.splitlines()[-1].startswith("chaos-watch: error: ")


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def write_journal(directory: Path, process: dict) -> Path:
    path = directory / "20260101T000000Z-1.jsonl"
    path.write_text(json.dumps({"op": "run", "process": process}) + "\n" + json.dumps({
        "op": "apply", "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine", "namespace": "shop",
        "name": "x", "existed": False}) + "\n")
    return path


def test_cleanup_skips_a_run_whose_process_is_alive(tmp_path: Path, unreachable_kubeconfig: Path,
                                                    live_process: subprocess.Popen[bytes]) -> None:
    """Another shell's chaos-watch is still running: cleanup leaves it (and the cluster) alone and says so."""
    write_journal(tmp_path, process_identity(live_process.pid))
    completed = sh(f"chaos-watch cleanup --state-dir {tmp_path} --kubeconfig {unreachable_kubeconfig}")
    assert completed.returncode == 0 and completed.stdout == ""
    assert completed.stderr.splitlines() == [
        f"chaos-watch: 20260101T000000Z-1.jsonl: skipped: its chaos-watch (pid {live_process.pid}) is still running; "
        "--force stops it anyway",
        f"chaos-watch: no unfinished run to clean in {tmp_path}"]
    assert "cleaned" not in (tmp_path / "20260101T000000Z-1.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("reused_pid, force", [(True, False), (False, True)], ids=["pid-reused", "force"])
def test_cleanup_stops_a_dead_run_even_if_its_pid_was_reused_and_a_live_one_with_force(
        tmp_path: Path, unreachable_kubeconfig: Path, live_process: subprocess.Popen[bytes], reused_pid: bool,
        force: bool) -> None:
    """The pid alone would match the live sleep; its start time tells a reused pid apart. Either way cleanup goes
    to the cluster, here an unreachable one: exit 4."""
    identity = process_identity(live_process.pid)
    if reused_pid:
        identity["start_ticks"] -= 1
    write_journal(tmp_path, identity)
    completed = sh(f"chaos-watch cleanup {'--force ' if force else ''}--state-dir {tmp_path} "
                   f"--kubeconfig {unreachable_kubeconfig}")
    assert completed.returncode == 4 and completed.stdout == ""
    *said, error = completed.stderr.splitlines()
    assert error.startswith("chaos-watch: error: cannot reach the Kubernetes API at https://127.0.0.1:1")
    assert said == ([f"chaos-watch: 20260101T000000Z-1.jsonl: its chaos-watch (pid {live_process.pid}) is still "
                     "running; stopping it anyway (--force)"] if force else [])


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


EVENTS = [
    {"experiment": "web", "t": 0.0, "type": "apply", "message": "ChaosEngine shop/web"},
    {"experiment": "web", "t": 1.0, "type": "error", "message": "cluster gone"},
    {"experiment": "web", "t": 1.5, "type": "pod-lost", "message": "pod web-0"},
    {"experiment": "web", "t": 2.0, "type": "verdict", "message": "error: cluster gone"},
    {"experiment": "api", "t": 0.5, "type": "apply", "message": "ChaosEngine shop/api"},
]


def shown(tty: bool) -> str:
    """What stderr receives for EVENTS, the run then ending."""
    stream = Stream(tty)
    progress = Progress(events=False, stream=stream)
    for entry in EVENTS:
        progress(entry)
    progress.close()
    return stream.getvalue()


def test_without_a_terminal_stderr_gets_a_line_per_problem_and_per_finished_experiment() -> None:
    assert shown(tty=False) == "chaos-watch: web +1.0s error: cluster gone\nchaos-watch: web: error: cluster gone\n"


def test_on_a_terminal_the_status_line_is_overwritten_and_the_last_one_ends_with_a_newline() -> None:
    text = shown(tty=True)
    assert text.endswith("chaos-watch: api +0.5s apply: ChaosEngine shop/api\n")
    lines = [line.rsplit("\r\033[K", 1)[-1] for line in text.split("\n")[:-1]]
    assert lines == ["chaos-watch: web +1.0s error: cluster gone", "chaos-watch: web: error: cluster gone",
                     "chaos-watch: api +0.5s apply: ChaosEngine shop/api"]
