"""The live demo (`make demo-live`): the README pipeline against the 3-tier app (k8s/3tier-app.yaml) on the sandbox,
from nothing to a report, then everything it started is stopped again.

    python -m tests.sandbox.demo_live [--out build/demo-live] [--keep]

It starts the sandbox with the demo world (`sandbox up --world`: control plane, a PersistentVolume for postgres,
the Litmus CRDs, the app, and a world process running the traffic simulator, Debian's Prometheus and the
Litmus-compatible runner), runs

    chaos-inventory -n shop | chaos-suggest -n 3 --policy tests/sandbox/demo-policy.yaml
      | chaos-litmus --with-experiments --with-rbac | chaos-watch > run.json
    chaos-report run.json > report.md

and exits with the pipeline's status (0 all passed, 5 an experiment deviated or was aborted, ...). The policy keeps
the plan to the faults the sandbox can inject (its pods run no code, so runtime faults cannot run there).
--keep (KEEP=1) leaves the sandbox running; `python -m tests.sandbox.sandbox down` stops it.

The world process is `python -m tests.sandbox.demo_live serve`; tests/test_e2e_pipeline.py opens the same world
in-process with open_shop().
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.sandbox import prometheus as prom
from tests.sandbox.sandbox import (
    DEFAULT_STATE,
    WORLD_READY_DELAY,
    Sandbox,
    SandboxError,
    is_running,
    print_env,
    up,
)
from tests.sandbox.watch_world import Services, apply_apps, install_litmus_crds, start_services

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "shop"
APP = REPO / "k8s" / "3tier-app.yaml"
POLICY = Path(__file__).resolve().parent / "demo-policy.yaml"
DEFAULT_OUT = REPO / "build" / "demo-live"
WORLD_TIMEOUT = 240.0
PIPELINE = ("chaos-inventory -n {namespace} | chaos-suggest -n 3 --policy {policy}"
            " | chaos-litmus --with-experiments --with-rbac"
            " | chaos-watch --recovery-timeout 2m --state-dir {state} > {run}")


def open_shop(sandbox: Sandbox) -> Services:
    """The 3-tier app applied and rolled out with the Litmus CRDs, played by the simulator from its live Topology
    (chaos-inventory's), Prometheus and the runner started; returns once metrics of every kind flow."""
    install_litmus_crds(sandbox)
    apply_apps(sandbox, [NAMESPACE], APP)
    inventory = subprocess.run(["chaos-inventory", "-n", NAMESPACE], env=tool_env(sandbox), capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
    if inventory.returncode != 0:
        raise SandboxError(f"chaos-inventory -n {NAMESPACE} failed (exit {inventory.returncode}): {inventory.stderr}")
    return start_services(sandbox.admin_kubeconfig, json.loads(inventory.stdout),
                          f'http_requests_total{{namespace="{NAMESPACE}",service="api",code="200"}}',
                          f'kube_statefulset_status_replicas_ready{{namespace="{NAMESPACE}"}}')


def tool_env(sandbox: Sandbox) -> dict[str, str]:
    """The sandbox's environment with this Python's scripts (the chaos-* commands of the venv) on PATH first."""
    env = sandbox.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if sandbox.prometheus_url:
        env["PROMETHEUS_URL"] = sandbox.prometheus_url
    return env


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(state: Path, ready_file: Path) -> int:
    """The world process: open the shop, say where Prometheus is (ready_file), run until SIGTERM, close it all."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    services = open_shop(Sandbox.load(state))
    try:
        ready_file.write_text(json.dumps({"prometheus_url": services.prometheus.url,
                                          "prometheus_pid": services.prometheus.process.pid,
                                          "prometheus_binary": prom.binary()}))
        while True:
            signal.pause()
    finally:
        services.close()


def start_world(sandbox: Sandbox, state: Path) -> None:
    """Start the world process for a running sandbox (recorded in `state`) and wait until it is ready; its PID and
    Prometheus's go into sandbox.daemons, so that Sandbox.stop() ends them first."""
    ready_file = sandbox.data_dir / "world.json"
    log_path = sandbox.data_dir / "logs" / "world.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.sandbox.demo_live", "serve", "--state", str(state),
             "--ready-file", str(ready_file)],
            cwd=REPO, env=tool_env(sandbox), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sandbox.daemons["world"] = [process.pid, sys.executable]
    sandbox.save(state)
    deadline = time.monotonic() + WORLD_TIMEOUT
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            how = f"exited with {process.returncode}" if process.returncode is not None else "timed out"
            raise SandboxError(f"the demo world {how} while starting ({log_path}):\n{tail}")
        time.sleep(0.5)
    ready = json.loads(ready_file.read_text())
    sandbox.daemons["prometheus"] = [ready["prometheus_pid"], ready["prometheus_binary"]]
    sandbox.prometheus_url = ready["prometheus_url"]
    sandbox.save(state)


def run_demo(sandbox: Sandbox, out: Path) -> int:
    """The README pipeline and chaos-report against the running world; the pipeline's exit status."""
    out.mkdir(parents=True, exist_ok=True)
    run_json, report = out / "run.json", out / "report.md"
    command = PIPELINE.format(namespace=NAMESPACE, policy=POLICY, state=out / "state", run=run_json)
    print(f"demo-live: {command}", file=sys.stderr)
    env = tool_env(sandbox)
    status = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, cwd=REPO,
                            stdin=subprocess.DEVNULL).returncode
    if not run_json.exists() or run_json.stat().st_size == 0:
        print(f"demo-live: the pipeline exited {status} without a RunResult; no report", file=sys.stderr)
        return status
    with open(report, "wb") as written:
        reported = subprocess.run(["chaos-report", str(run_json)], env=env, stdout=written,
                                  stdin=subprocess.DEVNULL).returncode
    if reported != 0:
        print(f"demo-live: chaos-report exited {reported}", file=sys.stderr)
        return status or reported
    print(f"demo-live: pipeline exit {status}; RunResult {run_json}", file=sys.stderr)
    print(f"report: {report}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.demo_live", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=("run", "serve"), default="run")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where the sandbox records what it started")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where run.json and report.md go")
    parser.add_argument("--keep", action="store_true", default=os.environ.get("KEEP") == "1",
                        help="leave the sandbox running afterwards (KEEP=1)")
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.action == "serve":
        return serve(args.state, args.ready_file)

    if is_running(args.state):
        print(f"demo-live: a sandbox is already running ({args.state}); stop it with "
              "`make sandbox-down` first", file=sys.stderr)
        return 4
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sandbox: Sandbox | None = None
    try:
        sandbox = up(args.state, ready_delay=WORLD_READY_DELAY, world=True)
        return run_demo(sandbox, args.out.resolve())
    except SandboxError as e:
        print(f"demo-live: {e}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        print("demo-live: interrupted", file=sys.stderr)
        return 130
    finally:
        if sandbox is not None and args.keep:
            print("demo-live: the sandbox keeps running (KEEP=1); use it with", file=sys.stderr)
            print_env(sandbox, file=sys.stderr)
            print("demo-live: stop it with `make sandbox-down`", file=sys.stderr)
        elif sandbox is not None:
            sandbox.stop()
            args.state.unlink(missing_ok=True)
            print("demo-live: sandbox stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
