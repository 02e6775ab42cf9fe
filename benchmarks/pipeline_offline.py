"""The offline pipeline against a bare C-loader yaml.load of the same file, measured side by side in one run.

    python benchmarks/pipeline_offline.py                 # 5,000 workloads, best of 3
    python benchmarks/pipeline_offline.py -n 500 --repeat 5
    python benchmarks/pipeline_offline.py --profile       # also: import times and a cProfile of each stage

Generates the manifest (benchmarks/gen_manifest.py) into a temporary directory, then times, in rounds that run
each command once, each in a fresh process so that peak RSS is its own:
- baseline: python3 -c "import yaml; list(yaml.load_all(open(F), Loader=yaml.CSafeLoader))"
- pipeline: chaos-inventory -f F | chaos-suggest -n 3 | chaos-litmus  (a real bash pipe, -o pipefail)
- each stage alone on the previous stage's saved output, and a bare `python3 -c pass` for the interpreter floor.
Prints best and median wall times, the CPU time of all the measurement's processes (steadier than wall time on a
busy machine), the largest peak RSS of any of them, and the ratios pipeline / baseline against the target (under
1.5x). Exits 1 if a command fails, 0 otherwise: the ratio is a figure to read, not a test.
"""

from __future__ import annotations

import argparse
import json
import pstats
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_manifest import DEFAULT_SEED, DEFAULT_WORKLOADS, generate

TARGET_RATIO = 1.5
STAGES = ("chaos-inventory", "chaos-suggest", "chaos-litmus")

# Runs one shell command and reports its wall time, the CPU time of all its processes, and the peak RSS of the
# largest one. A fresh interpreter per measurement, so RUSAGE_CHILDREN holds that command alone.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(["bash", "-o", "pipefail", "-c", sys.argv[1]], stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_kib": usage.ru_maxrss,
                  "returncode": done.returncode, "stderr": done.stderr[-2000:]}))
"""

# Profiles a console script in-process: the entry point is looked up, not hard-coded, so no stage is imported here.
_PROFILE = """
import cProfile, sys
from importlib.metadata import entry_points
tool, stats_file, *args = sys.argv[1:]
(entry_point,) = entry_points(group="console_scripts", name=tool)
main = entry_point.load()
sys.argv = [tool, *args]
profiler = cProfile.Profile()
profiler.enable()
try:
    main()
except SystemExit:
    pass
finally:
    profiler.disable()
    profiler.dump_stats(stats_file)
"""


@dataclass
class Measurement:
    label: str
    command: str
    seconds: list[float]
    cpu_seconds: list[float]
    peak_kib: int

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu_seconds)


class CommandFailed(RuntimeError):
    pass


def run_once(label: str, command: str) -> dict:
    result = json.loads(subprocess.run([sys.executable, "-c", _MEASURE, command], check=True, capture_output=True,
                                       text=True).stdout)
    if result["returncode"] != 0:
        raise CommandFailed(f"{label} exited {result['returncode']}: {command}\n{result['stderr']}")
    return result


def measure_rounds(commands: dict[str, str], repeat: int) -> list[Measurement]:
    """Every command once per round, rounds repeated, so a load change on the machine hits all of them alike."""
    runs: dict[str, list[dict]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, command in commands.items():
            runs[label].append(run_once(label, command))
    return [Measurement(label, commands[label], [r["seconds"] for r in results], [r["cpu_seconds"] for r in results],
                        max(r["peak_kib"] for r in results)) for label, results in runs.items()]


def stage_commands(manifest: Path, work: Path) -> dict[str, str]:
    """label -> command; the stage-alone commands read the files that the `save` commands write."""
    m, topology, plan = (shlex.quote(str(p)) for p in (manifest, work / "topology.json", work / "plan.json"))
    bare_load = f"import yaml; list(yaml.load_all(open({str(manifest)!r}), Loader=yaml.CSafeLoader))"
    return {
        "save": f"chaos-inventory -f {m} > {topology} && chaos-suggest -n 3 < {topology} > {plan}",
        "baseline": f"python3 -c {shlex.quote(bare_load)}",
        "pipeline": f"chaos-inventory -f {m} | chaos-suggest -n 3 | chaos-litmus",
        "python3 -c pass": "python3 -c pass",
        "chaos-inventory": f"chaos-inventory -f {m}",
        "chaos-suggest": f"chaos-suggest -n 3 < {topology}",
        "chaos-litmus": f"chaos-litmus < {plan}",
    }


def print_table(measurements: list[Measurement]) -> None:
    print(f"{'measurement':<18} {'best s':>8} {'median s':>9} {'best CPU s':>11} {'peak RSS MiB':>13}  wall runs")
    for m in measurements:
        runs = " ".join(f"{s:.2f}" for s in m.seconds)
        print(f"{m.label:<18} {m.best:>8.3f} {m.median:>9.3f} {m.best_cpu:>11.3f} {m.peak_kib / 1024:>13.1f}  {runs}")


def profile(manifest: Path, work: Path, top: int) -> None:
    """Import time of each stage's CLI and where its run spends time (cProfile); inputs as in the timed runs."""
    runs = {"chaos-inventory": (["-f", str(manifest)], None),
            "chaos-suggest": (["-n", "3"], work / "topology.json"),
            "chaos-litmus": ([], work / "plan.json")}
    for tool, (args, stdin_path) in runs.items():
        print(f"\n--- {tool}: slowest imports (python -X importtime, cumulative)")
        print(slowest_imports(tool, top))
        stats_file = work / f"{tool}.prof"
        with open(stdin_path or "/dev/null", "rb") as stdin:
            subprocess.run([sys.executable, "-c", _PROFILE, tool, str(stats_file), *args], check=True, stdin=stdin,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stats = pstats.Stats(str(stats_file), stream=sys.stdout).strip_dirs()
        for order in ("cumulative", "tottime"):
            print(f"--- {tool}: cProfile, top {top} by {order}")
            stats.sort_stats(order).print_stats(top)


def slowest_imports(tool: str, top: int) -> str:
    """The modules that take longest to import when the tool's entry point loads."""
    load = ("from importlib.metadata import entry_points; "
            f"[entry_point.load() for entry_point in entry_points(group='console_scripts', name={tool!r})]")
    report = subprocess.run([sys.executable, "-X", "importtime", "-c", load], capture_output=True, text=True,
                            check=True).stderr
    rows = []  # (cumulative us, own us, depth, module)
    for line in report.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        depth = len(fields[2]) - len(fields[2].lstrip())
        rows.append((int(fields[1]), int(fields[0]), depth, fields[2].strip()))
    top_level = min(depth for _, _, depth, _ in rows)
    total = sum(cumulative for cumulative, _, depth, _ in rows if depth == top_level)
    lines = [f"all imports: {total / 1e6:.3f} s"]
    lines += [f"{cumulative / 1e6:8.3f} s cumulative {own / 1e6:8.3f} s own  {name}"
              for cumulative, own, _, name in sorted(rows, reverse=True)[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--workloads", type=int, default=DEFAULT_WORKLOADS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best and median are shown)")
    parser.add_argument("--profile", action="store_true", help="also show import times and cProfile per stage")
    parser.add_argument("--top", type=int, default=15, help="rows per profile listing")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="chaosgen-bench-") as tmp:
        work = Path(tmp)
        manifest = work / "manifest.yaml"
        manifest.write_text(generate(args.workloads, args.seed), encoding="utf-8")
        print(f"manifest: {args.workloads} workloads, seed {args.seed}, {manifest.stat().st_size / 1e6:.1f} MB")
        commands = stage_commands(manifest, work)
        try:
            run_once("save", commands.pop("save"))
            measurements = measure_rounds(commands, args.repeat)
        except CommandFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for name, path in (("topology", work / "topology.json"), ("plan", work / "plan.json")):
            print(f"{name}: {path.stat().st_size / 1e6:.1f} MB")
        print_table(measurements)
        by_label = {m.label: m for m in measurements}
        pipeline, baseline = by_label["pipeline"], by_label["baseline"]
        for what, ratio in (("wall", pipeline.best / baseline.best), ("CPU", pipeline.best_cpu / baseline.best_cpu)):
            verdict = "within" if ratio < TARGET_RATIO else "OVER"
            print(f"ratio pipeline/baseline, {what} time (best of {args.repeat}): {ratio:.2f}x "
                  f"({verdict} the {TARGET_RATIO}x target)")
        if args.profile:
            profile(manifest, work, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
