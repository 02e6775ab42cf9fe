"""chaos-inventory with telemetry at scale: 2,000 workloads and ~20,000 observed edges in a real Prometheus.

    python benchmarks/telemetry_inventory.py [-n 2000] [--edges 20000] [--family istio] [--repeat 3]

Writes gen_manifest.py's N-workload manifest, an hour of mesh history for `--edges` caller -> target edges (most
of the configured edges plus calls no manifest shows) as OpenMetrics, backfills it into Debian's Prometheus with
`promtool tsdb create-blocks-from openmetrics`, then times `chaos-inventory -f` with and without
`--prometheus-url` (alternating runs, /usr/bin/time for wall time and peak RSS) and prints the figures, their
ratios and the number of requests sent to Prometheus.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gen_manifest import generate  # noqa: E402

from tests.sandbox import prometheus as prom  # noqa: E402
from tests.sandbox.mesh_history import Call, openmetrics  # noqa: E402


def calls(manifest: str, edges: int, seed: int) -> list[Call]:
    """The configured edges chaos-inventory finds (a tenth left idle) plus random same-namespace calls up to edges."""
    workloads = sorted({(d["metadata"]["namespace"], d["metadata"]["name"]) for d in yaml.safe_load_all(manifest)
                        if d and d["kind"] in ("Deployment", "StatefulSet")})
    rng = random.Random(seed)
    topology = json.loads(subprocess.run(["chaos-inventory", "-f", "-"], input=manifest, capture_output=True,
                                         text=True, check=True).stdout)
    pairs = {tuple(tuple(d[end].split("/")[::2]) for end in ("from", "to"))
             for d in topology["dependencies"] if not d["external"]}
    chosen = {pair for pair in sorted(pairs) if rng.random() > 0.1}
    by_namespace: dict[str, list[tuple[str, str]]] = {}
    for workload in workloads:
        by_namespace.setdefault(workload[0], []).append(workload)
    while len(chosen) < edges:
        source = rng.choice(workloads)
        target = rng.choice(by_namespace[source[0]])
        if target != source:
            chosen.add((source, target))
    return [Call(s, t, rng.randint(10, 5000), errors=rng.choice((0, 0, 0, 3))) for s, t in sorted(chosen)]


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one run."""
    completed = subprocess.run(["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, check=True)
    wall, rss = completed.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024, completed.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--workloads", type=int, default=2000)
    parser.add_argument("--edges", type=int, default=20000)
    parser.add_argument("--family", choices=["istio", "linkerd", "servicegraph"], default="istio")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chaosgen-telemetry-bench-"))
    manifest = generate(args.workloads, args.seed)
    (tmp / "app.yaml").write_text(manifest)
    history = calls(manifest, args.edges, args.seed)
    (tmp / "history.om").write_text(openmetrics(history, args.family, time.time()))
    started = time.monotonic()
    server = prom.start([], backfill=tmp / "history.om")
    print(f"backfilled {len(history)} edges ({args.family}) in {time.monotonic() - started:.1f}s", file=sys.stderr)
    try:
        plain = ["chaos-inventory", "-f", str(tmp / "app.yaml")]
        runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
        topology: dict = {}
        for _ in range(args.repeat):
            wall, rss, _ = timed(plain)
            runs["without"].append((wall, rss))
            wall, rss, out = timed([*plain, "--prometheus-url", server.url])
            runs["with"].append((wall, rss))
            topology = json.loads(out)
    finally:
        server.stop()
    figures = {key: (statistics.median(w for w, _ in values), max(r for _, r in values)) for key, values in runs.items()}
    info = topology["telemetry"]
    print(f"workloads {topology['summary']['workloads']}, edges backfilled {len(history)}, observed "
          f"{info['observed_dependencies']}, added {info['added_dependencies']}, idle {info['idle_dependencies']}, "
          f"queries sent {info['queries']}")
    for key, (wall, rss) in figures.items():
        print(f"{key:>7} telemetry: median wall {wall:.2f}s, peak RSS {rss:.0f} MiB")
    print(f"ratio: time {figures['with'][0] / figures['without'][0]:.2f}x, memory {figures['with'][1] / figures['without'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
