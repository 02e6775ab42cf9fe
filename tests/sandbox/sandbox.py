"""A real local Kubernetes control plane for tests, benchmarks and demos: etcd, kube-apiserver (RBAC and
admission on), kube-controller-manager, kube-scheduler and kwok (fake nodes and pods), all on 127.0.0.1.

Used by the pytest fixture (tests/sandbox/fixture.py), benchmarks/inventory_scale.py, `make sandbox` and
`make demo-live`:

    python -m tests.sandbox.sandbox up [--nodes 3] [--ready-delay 2]   # prints `export KUBECONFIG=...` lines only
    python -m tests.sandbox.sandbox up --world    # plus the 3-tier app, Litmus CRDs, runner, simulator, Prometheus
    python -m tests.sandbox.sandbox env                                # the same lines again
    python -m tests.sandbox.sandbox down                               # stops exactly what `up` started

`eval "$(python -m tests.sandbox.sandbox env)"` sets KUBECONFIG, PATH (kubectl) and, with --world, PROMETHEUS_URL.

The binaries come from tests/sandbox/build.sh (built once from the Go module proxy, then cached).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import requests
import urllib3
import yaml

from . import pki

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_SCRIPT = HERE / "build.sh"
KWOK_STAGES = HERE / "kwok-stages.yaml"
RBAC_INVENTORY = REPO / "k8s" / "rbac-inventory.yaml"
DEFAULT_STATE = Path(
    os.environ.get("CHAOSGEN_SANDBOX_STATE", Path.home() / ".cache" / "chaosgen" / "sandbox-current.json")
)
ADMIN_USER = "chaosgen-admin"
READONLY_USER = "chaosgen-readonly"
ZONES = ("zone-a", "zone-b", "zone-c")
# Requests of the read-only identity are audited, so tests can check what inventory asks the API for.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": [READONLY_USER]}, {"level": "None"}],
}
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# The controller-manager and the scheduler exit when they cannot renew their lease within the renew deadline
# (10 s by default); a long deadline lets them ride out an apiserver restart, as the chaos-watch tests do.
LEADER_ELECTION_FLAGS = ("--leader-elect-lease-duration=120s", "--leader-elect-renew-deadline=110s",
                         "--leader-elect-retry-period=2s")
START_TIMEOUT = 60.0
# The ready delay of the demo world: a new pod becomes Ready this many seconds after it is scheduled (a small
# service's start-up and first readiness probe), so that a recovery takes a measurable, plausible time.
WORLD_READY_DELAY = 3.0
STOP_GRACE = 10.0
# Component name -> binary, in start order; stop() goes in reverse.
COMPONENTS = {
    "etcd": "etcd",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kwok": "kwok",
}


class SandboxError(RuntimeError):
    """The sandbox could not be built, started or stopped; the message says which component and why."""


def build() -> Path:
    """Build (or find cached) binaries with build.sh and return the bin directory; raise if the build fails."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise SandboxError(f"tests/sandbox/build.sh failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def free_ports(count: int) -> list[int]:
    """count distinct TCP ports on 127.0.0.1 that nothing listens on right now (all held open while choosing,
    so the kernel cannot hand out the same one twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


@dataclass
class Sandbox:
    """A running control plane: where its binaries, files and endpoints are, and the PIDs it started."""

    bin_dir: Path
    data_dir: Path
    server: str
    admin_kubeconfig: Path
    readonly_kubeconfig: Path
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Processes started for the sandbox besides the control plane (the demo world, its Prometheus):
    # name -> [pid, the program it runs], stopped first, in the order they were started.
    daemons: dict[str, list] = field(default_factory=dict)
    prometheus_url: str | None = None

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def audit_log(self) -> Path:
        """JSON Lines of every request by the read-only identity (audit.k8s.io/v1 Events, level Metadata)."""
        return self.data_dir / "audit.log"

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """The process environment for commands run against the sandbox: its kubeconfig and kubectl on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.admin_kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run_kubectl(
        self, *args: str, kubeconfig: Path | None = None, input: str | None = None, check: bool = True,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl against the sandbox (admin unless kubeconfig says otherwise); raises with stderr if check fails."""
        result = subprocess.run(
            [str(self.kubectl), *args], env=self.env(kubeconfig), input=input, capture_output=True, text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args)} failed (exit {result.returncode}): {result.stderr.strip()}")
        return result

    def apply(self, *manifests: Path | str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """kubectl apply of files (Path) or inline YAML/JSON text (str)."""
        args: list[str] = ["apply", *extra]
        text = None
        for manifest in manifests:
            if isinstance(manifest, Path):
                args += ["-f", str(manifest)]
            else:
                text = (text + "\n---\n" if text else "") + manifest
        if text is not None:
            args += ["-f", "-"]
        return self.run_kubectl(*args, input=text)

    def session(self) -> requests.Session:
        """An HTTP session authenticated as the admin, for fast bulk calls (the benchmark creates objects with it)."""
        http = requests.Session()
        # REQUESTS_CA_BUNDLE (set on these machines) would otherwise replace the sandbox CA given below.
        http.trust_env = False
        http.cert = (str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        http.verify = str(self.pki_dir / "ca.crt")
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        http.mount("https://", adapter)
        return http

    def new_kubeconfig(
        self, name: str, user: str, groups: tuple[str, ...] = (), not_after: dt.datetime | None = None,
        server: str | None = None,
    ) -> Path:
        """A kubeconfig for a new client-cert identity (tests use it for forbidden, expired or unreachable cases)."""
        ca = pki.KeyPair(self.pki_dir / "ca.crt", self.pki_dir / "ca.key")
        pair = pki.issue(ca, self.pki_dir, name, user, groups, not_after=not_after)
        path = self.data_dir / f"{name}.kubeconfig"
        write_kubeconfig(path, server or self.server, ca.cert, pair, context=f"chaosgen-sandbox-{name}")
        return path

    def stop(self) -> None:
        """Stop exactly the processes this sandbox started (daemons, then the control plane newest first), then
        remove its data directory."""
        started = time.monotonic()
        for pid, program in self.daemons.values():
            _terminate(pid, Path(program))
        self.daemons.clear()
        for component in reversed(list(self.pids)):
            _terminate(self.pids[component], self.bin_dir / COMPONENTS[component])
        self.pids.clear()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.timings["stop"] = round(time.monotonic() - started, 2)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Sandbox:
        state = json.loads(path.read_text())
        for key in ("bin_dir", "data_dir", "admin_kubeconfig", "readonly_kubeconfig"):
            state[key] = Path(state[key])
        return cls(**state)


def _is_ours(pid: int, binary: Path) -> bool:
    """True while pid still runs binary: a PID the kernel has since reused for another program is left alone."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return argv0 == bytes(binary)


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM a child the tests started, SIGKILL it after grace seconds, and reap it either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _terminate(pid: int, binary: Path) -> None:
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
        if not _is_ours(pid, binary):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap(pid)
            if not _is_ours(pid, binary):
                return
            time.sleep(0.05)
    raise SandboxError(f"{binary.name} (pid {pid}) survived SIGKILL")


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours so it does not linger as a zombie (no-op for others)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def write_kubeconfig(path: Path, server: str, ca_cert: Path, client: pki.KeyPair, context: str) -> None:
    """A self-contained kubeconfig (certificates embedded) with one context, which is current."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chaosgen-sandbox", "cluster": {"server": server, "certificate-authority-data": b64(ca_cert)}}],
        "users": [{"name": context, "user": {
            "client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}],
        "contexts": [{"name": context, "context": {"cluster": "chaosgen-sandbox", "user": context}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _fake_node(index: int, zones: tuple[str, ...]) -> dict:
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "kwok",
                "topology.kubernetes.io/region": "sandbox",
                "topology.kubernetes.io/zone": zones[index % len(zones)],
                "type": "kwok",
            },
        },
    }


class _Launcher:
    """Starts the components one by one, each logging to <data_dir>/logs/<name>.log, and waits for readiness."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.logs = sandbox.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}

    def spawn(self, component: str, *args: str) -> None:
        binary = self.sandbox.bin_dir / COMPONENTS[component]
        with open(self.logs / f"{component}.log", "wb") as log:
            # A session of their own: Ctrl-C in the terminal that ran `up` does not reach them; stop() does.
            process = subprocess.Popen(
                [str(binary), *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.sandbox.data_dir,
            )
        self.sandbox.pids[component] = process.pid
        self.processes[component] = process

    def wait(self, what: str, ready, timeout: float = START_TIMEOUT) -> None:
        """Poll ready() until it is true; fail early, with the log's tail, if a component we started has died."""
        deadline = time.monotonic() + timeout
        last_error = "not ready"
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (requests.RequestException, KeyError, ValueError) as e:
                last_error = f"{type(e).__name__}: {e}"
            for component, process in self.processes.items():
                if process.poll() is not None:
                    code = process.returncode
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    raise SandboxError(f"{component} {how} while waiting for {what}:\n{self.tail(component)}")
            time.sleep(0.1)
        logs = "\n".join(f"--- {c}.log\n{self.tail(c, 10)}" for c in self.sandbox.pids)
        raise SandboxError(f"timed out after {timeout:.0f} s waiting for {what} ({last_error[:300]})\n{logs}")

    def tail(self, component: str, lines: int = 30) -> str:
        path = self.logs / f"{component}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def start(
    bin_dir: Path, nodes: int = 3, zones: tuple[str, ...] = ZONES, ready_delay: float = 0.0,
    data_dir: Path | None = None,
) -> Sandbox:
    """Start a sandbox and return once nodes are Ready and the controllers and scheduler lead.

    ready_delay (seconds) is how long kwok waits before a new pod becomes Running and Ready, so that recovery
    after a pod is killed takes measurable time; a pod annotation chaosgen.dev/ready-delay overrides it.
    If anything fails, whatever was started is stopped again before the error propagates.
    """
    t0 = time.monotonic()
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="chaosgen-sandbox-"))
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    api_port, etcd_port, peer_port = free_ports(3)
    server = f"https://127.0.0.1:{api_port}"
    sandbox = Sandbox(
        bin_dir=Path(bin_dir), data_dir=data_dir, server=server,
        admin_kubeconfig=data_dir / "admin.kubeconfig", readonly_kubeconfig=data_dir / "readonly.kubeconfig",
    )
    try:
        _start(sandbox, nodes, zones, ready_delay, api_port, etcd_port, peer_port, t0)
    except BaseException:
        sandbox.stop()
        raise
    sandbox.timings["total"] = round(time.monotonic() - t0, 2)
    return sandbox


def _start(
    sandbox: Sandbox, nodes: int, zones: tuple[str, ...], ready_delay: float,
    api_port: int, etcd_port: int, peer_port: int, t0: float,
) -> None:
    def mark(step: str) -> None:
        sandbox.timings[step] = round(time.monotonic() - t0, 2)

    launch = _Launcher(sandbox)
    data_dir, pki_dir = sandbox.data_dir, sandbox.pki_dir
    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    launch.spawn(
        "etcd", "--name=sandbox", f"--data-dir={data_dir / 'etcd'}", f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster=sandbox={peer_url}",
        "--unsafe-no-fsync=true", "--quota-backend-bytes=8589934592", "--log-level=warn",
    )

    ca = pki.new_ca(pki_dir)
    serving = pki.issue(
        ca, pki_dir, "apiserver", "kube-apiserver",
        hosts=("127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default",
               "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
    )
    admin = pki.issue(ca, pki_dir, "admin", ADMIN_USER, ("system:masters",))
    readonly = pki.issue(ca, pki_dir, "readonly", READONLY_USER)
    signing_key = pki.new_signing_key(pki_dir / "service-account.key")
    write_kubeconfig(sandbox.admin_kubeconfig, sandbox.server, ca.cert, admin, "chaosgen-sandbox")
    write_kubeconfig(sandbox.readonly_kubeconfig, sandbox.server, ca.cert, readonly, "chaosgen-sandbox-readonly")
    mark("pki")

    launch.wait("etcd", lambda: requests.get(f"{etcd_url}/health", timeout=1).json()["health"] == "true")
    mark("etcd")

    audit_policy = data_dir / "audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    launch.spawn(
        "kube-apiserver", f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        # The `kubernetes` Service cannot point at a loopback address; nothing in the sandbox needs it to.
        "--endpoint-reconciler-type=none",
        f"--secure-port={api_port}", f"--cert-dir={pki_dir}", f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}", f"--client-ca-file={ca.cert}",
        f"--service-account-key-file={signing_key}", f"--service-account-signing-key-file={signing_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction", "--profiling=false",
        f"--audit-policy-file={audit_policy}", f"--audit-log-path={sandbox.audit_log}", "--audit-log-mode=blocking",
        # The scale benchmark creates tens of thousands of objects quickly; the defaults (400/200) throttle it.
        "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
    )
    http = sandbox.session()
    launch.wait("kube-apiserver /readyz", lambda: http.get(f"{sandbox.server}/readyz", timeout=2).status_code == 200)
    mark("kube-apiserver")

    launch.spawn(
        "kube-controller-manager", f"--kubeconfig={sandbox.admin_kubeconfig}", "--bind-address=127.0.0.1",
        "--secure-port=0", f"--root-ca-file={ca.cert}", f"--service-account-private-key-file={signing_key}",
        f"--cluster-signing-cert-file={ca.cert}", f"--cluster-signing-key-file={ca.key}",
        "--kube-api-qps=1000", "--kube-api-burst=2000", "--concurrent-deployment-syncs=20",
        "--concurrent-replicaset-syncs=20", "--concurrent-service-endpoint-syncs=20",
        "--concurrent-statefulset-syncs=10", *LEADER_ELECTION_FLAGS,
    )
    launch.spawn(
        "kube-scheduler", f"--kubeconfig={sandbox.admin_kubeconfig}", "--bind-address=127.0.0.1",
        "--secure-port=0", "--kube-api-qps=1000", "--kube-api-burst=2000", *LEADER_ELECTION_FLAGS,
    )
    stages = data_dir / "kwok-stages.yaml"
    stages.write_text(KWOK_STAGES.read_text().replace("__READY_DELAY_MS__", str(int(ready_delay * 1000))))
    launch.spawn(
        "kwok", f"--kubeconfig={sandbox.admin_kubeconfig}", f"--config={stages}",
        "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        "--cidr=10.0.0.0/8", "--node-ip=10.255.255.254", "--node-lease-duration-seconds=40",
    )

    api = f"{sandbox.server}/api/v1/nodes"
    with ThreadPoolExecutor(max_workers=8) as pool:
        for response in pool.map(lambda node: http.post(api, json=node, timeout=30),
                                 [_fake_node(i, zones) for i in range(nodes)]):
            if response.status_code != 201:
                raise SandboxError(f"creating a fake node failed: {response.status_code} {response.text[:300]}")
    sandbox.apply(RBAC_INVENTORY)
    mark("nodes+rbac")

    def nodes_ready() -> bool:
        items = http.get(api, timeout=5).json()["items"]
        return len(items) == nodes and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
            for node in items
        )

    def leading(component: str) -> bool:
        url = f"{sandbox.server}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}"
        return http.get(url, timeout=5).status_code == 200

    launch.wait("kwok to make the nodes Ready", nodes_ready)
    launch.wait("kube-scheduler to lead", lambda: leading("kube-scheduler"))
    launch.wait("kube-controller-manager to lead", lambda: leading("kube-controller-manager"))
    # Pods are rejected by admission until the controller-manager has created the namespace's default account.
    launch.wait("the default service account", lambda: http.get(
        f"{sandbox.server}/api/v1/namespaces/default/serviceaccounts/default", timeout=5).status_code == 200)
    mark("ready")


def print_env(sandbox: Sandbox, file: TextIO = sys.stdout) -> None:
    """`export` lines for eval, nothing else: kubeconfig, kubectl on PATH and, with the world, Prometheus."""
    print(f"export KUBECONFIG={sandbox.admin_kubeconfig}", file=file)
    print(f"export PATH={sandbox.bin_dir}:$PATH", file=file)
    if sandbox.prometheus_url:
        print(f"export PROMETHEUS_URL={sandbox.prometheus_url}", file=file)


def is_running(state: Path) -> bool:
    """True when `state` records a sandbox of which some process still runs."""
    if not state.exists():
        return False
    running = Sandbox.load(state)
    programs = [(pid, running.bin_dir / COMPONENTS[c]) for c, pid in running.pids.items()]
    programs += [(pid, Path(program)) for pid, program in running.daemons.values()]
    return any(_is_ours(pid, program) for pid, program in programs)


def up(state: Path, nodes: int = 3, ready_delay: float = 0.0, world: bool = False) -> Sandbox:
    """Start a sandbox recorded in `state` (for `env` and `down`); with world, the demo world too
    (tests/sandbox/demo_live.py). On any failure everything started is stopped and the record removed."""
    sandbox = start(build(), nodes=nodes, ready_delay=ready_delay)
    try:
        sandbox.save(state)
        if world:
            from tests.sandbox.demo_live import start_world  # it builds on this module

            started = time.monotonic()
            start_world(sandbox, state)
            sandbox.timings["world"] = round(time.monotonic() - started, 2)
            sandbox.save(state)
    except BaseException:
        sandbox.stop()
        state.unlink(missing_ok=True)
        raise
    return sandbox


def main(argv: list[str] | None = None) -> int:
    """`up`, `down` and `env` for people who want a cluster to try ChaosGen on (`make sandbox`)."""
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "env"))
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where `up` records what it started")
    parser.add_argument("--nodes", type=int, default=3, help="fake nodes, spread over zone-a/b/c")
    parser.add_argument("--ready-delay", type=float, help="seconds before a new pod becomes Ready "
                        f"(default 0, with --world {WORLD_READY_DELAY:g})")
    parser.add_argument("--world", action="store_true", help="also the 3-tier app, the Litmus CRDs and runner, the "
                        "traffic simulator and Prometheus (what `make demo-live` runs against)")
    args = parser.parse_args(argv)
    urllib3.disable_warnings()

    if args.action == "up":
        if is_running(args.state):
            print(f"a sandbox is already running ({args.state}); run `down` first", file=sys.stderr)
            return 1
        ready_delay = args.ready_delay if args.ready_delay is not None else WORLD_READY_DELAY if args.world else 0.0
        try:
            sandbox = up(args.state, nodes=args.nodes, ready_delay=ready_delay, world=args.world)
        except SandboxError as e:
            print(f"sandbox: {e}", file=sys.stderr)
            return 4
        timings = " ".join(f"{step}={seconds}s" for step, seconds in sandbox.timings.items())
        print(f"sandbox up at {sandbox.server} ({timings}); pids {sandbox.pids} {sandbox.daemons}", file=sys.stderr)
        print(f"read-only identity: KUBECONFIG={sandbox.readonly_kubeconfig}", file=sys.stderr)
        print_env(sandbox)
        return 0
    if not args.state.exists():
        print(f"no sandbox recorded in {args.state}", file=sys.stderr)
        return 1
    sandbox = Sandbox.load(args.state)
    if args.action == "env":
        print_env(sandbox)
        return 0
    sandbox.stop()
    args.state.unlink()
    print(f"sandbox stopped in {sandbox.timings['stop']} s; removed {sandbox.data_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
