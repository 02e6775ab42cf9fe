"""chaos-watch's pure core on plain dicts: input parsing, policy re-check, thresholds with `for`, outages and
time-to-recovery, verdicts, the RunResult and exit codes; plus the sandbox runner's and simulator's pure parts."""

from __future__ import annotations

import json

import pytest

from chaos_watch import core
from chaosgen.errors import InputRejected
from chaosgen.policy import DEFAULT_POLICY
from chaosgen.schemas import validate
from tests.sandbox import watch_app
from tests.sandbox.litmus_runner import pods_to_kill, result_status
from tests.sandbox.traffic_sim import Application, Metrics


def engine(**overrides: object) -> core.Engine:
    return core.parse_engines([watch_app.engine("web-pod-delete", "web", **overrides)], "in.yaml")[0]


def test_parse_engine_reads_the_chaosgen_annotations() -> None:
    parsed = engine(duration=20, percent=34)
    assert (parsed.name, parsed.namespace, parsed.fault, parsed.target) == ("web-pod-delete", "shop", "pod-delete", "shop/Deployment/web")
    assert parsed.result_name == "web-pod-delete-pod-delete"
    assert parsed.chaos_seconds == 20 and parsed.expected_recovery_seconds == 30
    assert [t.name for t in parsed.thresholds] == ["web-error-rate"]
    assert parsed.target_kind_name == ("Deployment", "web")


def test_split_documents_flattens_a_v1_list_and_rejects_chaosgen_documents() -> None:
    items = [watch_app.chaos_experiment(), watch_app.engine("a", "web")]
    assert len(core.split_documents([{"apiVersion": "v1", "kind": "List", "items": items}], "in.json")) == 2
    with pytest.raises(InputRejected, match="expects chaos-litmus output.*got an ExperimentPlan"):
        core.split_documents([{"apiVersion": "chaosgen.dev/v1", "kind": "ExperimentPlan"}], "in.json")
    with pytest.raises(InputRejected, match=r"\$\[1\]\.metadata\.name"):
        core.split_documents([items[0], {"apiVersion": "v1", "kind": "Pod", "metadata": {}}], "in.yaml")


@pytest.mark.parametrize("breakage, message", [
    (lambda e: e["metadata"]["annotations"].update({"chaosgen.dev/abort-thresholds": "[{"}), "abort-thresholds is not JSON"),
    (lambda e: e["metadata"]["annotations"].update({"chaosgen.dev/abort-thresholds": '[{"name":"x"}]'}), "malformed"),
    (lambda e: e["metadata"]["annotations"].update({"chaosgen.dev/expected-recovery-seconds": "soon"}), "not an integer"),
    (lambda e: e["spec"].update({"experiments": []}), "exactly one experiment"),
    (lambda e: e["metadata"]["annotations"].update({"chaosgen.dev/experiment": '{"id": "a"}'}),
     r"experiment is malformed at \$: ExperimentPlan experiment schema: 'title' is a required property.*"
     r"\(in ChaosEngine shop/a\)"),
])
def test_malformed_engines_are_rejected_with_a_path(breakage, message) -> None:
    broken = watch_app.engine("a", "web")
    breakage(broken)
    with pytest.raises(InputRejected, match=message) as caught:
        core.parse_engines([broken], "in.yaml")
    assert str(caught.value).startswith("in.yaml at $[0]")


def test_no_engine_and_duplicate_engines_are_rejected() -> None:
    with pytest.raises(InputRejected, match="no ChaosEngine"):
        core.parse_engines([watch_app.chaos_experiment()], "in.yaml")
    with pytest.raises(InputRejected, match="appears twice"):
        core.parse_engines([watch_app.engine("a", "web"), watch_app.engine("a", "web")], "in.yaml")


def test_policy_is_rechecked_on_the_engines_own_fields() -> None:
    assert core.engine_violations(engine(), DEFAULT_POLICY) == []
    tampered = watch_app.engine("web-pod-delete", "web")
    env = tampered["spec"]["experiments"][0]["spec"]["components"]["env"]
    next(item for item in env if item["name"] == "PODS_AFFECTED_PERC")["value"] = "100"
    next(item for item in env if item["name"] == "TOTAL_CHAOS_DURATION")["value"] = "3600"
    tampered["spec"]["appinfo"]["appns"] = "kube-system"
    rules = {rule for rule, _ in core.engine_violations(core.parse_engines([tampered], "x")[0], DEFAULT_POLICY)}
    assert {"max-pods-affected", "max-duration", "denied-namespace", "engine-mismatch"} <= rules


def test_total_loss_needs_the_policy_to_allow_it() -> None:
    db = core.parse_engines([watch_app.engine("db-kill", "db", percent=100, total_loss=True)], "x")[0]
    strict = {**DEFAULT_POLICY, "allow_total_loss": False}
    assert "max-pods-affected" in {r for r, _ in core.engine_violations(db, strict)}
    assert core.engine_violations(db, {**DEFAULT_POLICY, "allow_total_loss": True}) == []


def threshold(operator: str = ">", value: float = 0.05, for_text: str = "0s") -> core.Threshold:
    return core.Threshold.from_dict({"name": "err", "query": "q", "operator": operator, "value": value, "for": for_text})


def test_threshold_breaches_at_once_without_a_for_duration() -> None:
    state = core.ThresholdState(threshold())
    assert state.observe(0.0, 0.01) is False
    assert state.observe(1.0, 0.2) is True
    assert state.first_breach_at == 1.0 and state.worst == 0.2


def test_threshold_with_for_needs_the_condition_to_hold_throughout() -> None:
    state = core.ThresholdState(threshold(for_text="3s"))
    assert [state.observe(t, v) for t, v in [(0, 0.1), (2, 0.1), (2.5, 0.0), (3, 0.1), (5, 0.1), (6, 0.1)]] == [
        False, False, False, False, False, True]
    assert state.first_breach_at == 6


def test_missing_or_nan_values_do_not_breach_and_reset_pending() -> None:
    state = core.ThresholdState(threshold("<", 1, "1s"))
    assert state.observe(0, 0.0) is False
    assert state.observe(0.5, None) is False and state.pending_since is None
    assert state.observe(1, float("nan")) is False


@pytest.mark.parametrize("operator, worst", [(">", 9.0), ("<=", 1.0), ("==", 3.0)])
def test_worst_sample_is_the_one_nearest_the_breaching_side(operator: str, worst: float) -> None:
    state = core.ThresholdState(threshold(operator, 100))
    for value in (5.0, 9.0, 1.0, 3.0):
        state.observe(0, value)
    assert state.worst == worst


def test_event_time_refines_whole_second_stamps_with_the_watch_receipt() -> None:
    assert core.event_time(100.0, 100.4) == 100.4
    assert core.event_time(100.0, 104.0) == 100.0, "a lagging watch falls back to the API's stamp"
    assert core.event_time(None, 7.0) == 7.0


def test_outages_follow_the_ready_count_against_the_desired_replicas() -> None:
    changes = [core.PodChange(10.0, "a", False), core.PodChange(11.5, "d", True),
               core.PodChange(20.0, "b", False), core.PodChange(20.5, "c", False),
               core.PodChange(22.0, "e", True), core.PodChange(24.0, "f", True)]
    found = core.outages({"a", "b", "c"}, changes, desired=3, since=5.0)
    assert found == [{"down_at": 5.0, "up_at": 6.5, "seconds": 1.5}, {"down_at": 15.0, "up_at": 19.0, "seconds": 4.0}]
    assert core.time_to_recovery(found) == 4.0
    assert core.time_to_recovery([]) == 0.0
    assert core.time_to_recovery(core.outages({"a"}, [core.PodChange(6, "a", False)], 1, 5.0)) is None


PASS = {"name": "web-pod-delete-pod-delete", "phase": "Completed", "verdict": "Pass", "probe_success_percentage": 100.0,
        "failed_step": None, "error_code": None, "probes": []}


def observation(**fields: object) -> core.Observation:
    """An experiment whose engine concluded Pass unless fields say otherwise."""
    obs = core.Observation(engine(), thresholds=[core.ThresholdState(t) for t in engine().thresholds], chaos_result=PASS)
    obs.started_at = 1_000.0
    for key, value in fields.items():
        setattr(obs, key, value)
    return obs


@pytest.mark.parametrize("fields, verdict, reason", [
    ({"skipped_reason": "preflight target failed"}, "skipped", "preflight target failed"),
    ({"error_reason": "cluster gone"}, "error", "cluster gone"),
    ({"abort": {"by": "threshold", "reason": "threshold web-error-rate breached"}, "chaos_ended": True}, "aborted", "breached"),
    ({"chaos_ended": True, "chaos_result": {"verdict": "Fail", "failed_step": "probe x failed"}}, "failed", "probe x failed"),
    ({"chaos_ended": True, "chaos_result": {"verdict": "Fail", "failed_step": "probe x failed", "error_code": "PROM_PROBE_FAILURE"}},
     "failed", "probe x failed"),
    ({"chaos_ended": True, "chaos_result": {"verdict": "Fail", "failed_step": "needs a container runtime",
                                            "error_code": "CONTAINER_RUNTIME_ERROR"}},
     "error", "the fault was not injected (CONTAINER_RUNTIME_ERROR): needs a container runtime"),
    ({"chaos_ended": True, "recovered": False}, "failed", "did not recover"),
    ({"chaos_ended": True, "recovered": True, "outages": [{"down_at": 0, "up_at": 40, "seconds": 40.0}]},
     "failed", "more than the expected 30s"),
    ({"chaos_ended": True, "recovered": True, "outages": [{"down_at": 0, "up_at": 2, "seconds": 2.0}]}, "passed", "recovered in 2s"),
    ({"chaos_result": None}, "error", "did not finish"),
    # The engine's own result must agree before anything passes: a run cut short or never concluded is not a pass.
    ({"chaos_ended": True, "recovered": True, "chaos_result": {**PASS, "phase": "Stopped", "verdict": "Stopped"}},
     "error", "the engine's own result says Stopped, not Pass"),
    ({"chaos_ended": True, "recovered": True, "chaos_result": {**PASS, "phase": "Running", "verdict": "Awaited"}},
     "error", "the engine's own result says Awaited, not Pass"),
    ({"chaos_ended": True, "recovered": True, "chaos_result": None}, "error", "the engine wrote no result"),
    ({"chaos_ended": True, "recovered": True, "abort": {"by": "external", "reason": "the engine was stopped by kubectl-patch, "
                                                        "not by chaos-watch"}}, "aborted", "stopped by kubectl-patch"),
])
def test_verdicts(fields: dict, verdict: str, reason: str) -> None:
    decided, why = core.decide(observation(**fields))
    assert decided == verdict and reason in why


def test_a_fault_that_never_ran_reports_no_recovery_time() -> None:
    not_injected = {"verdict": "Fail", "failed_step": "needs a container runtime", "error_code": "CONTAINER_RUNTIME_ERROR"}
    result = core.experiment_result(observation(chaos_ended=True, recovered=True, chaos_result=not_injected), core.iso_utc)
    assert result["verdict"] == "error" and result["time_to_recovery_seconds"] is None
    assert result["injected"] is False
    ran = core.experiment_result(observation(chaos_ended=True, recovered=True), core.iso_utc)
    assert ran["verdict"] == "passed" and ran["time_to_recovery_seconds"] == 0.0 and ran["injected"] is True
    never = core.experiment_result(observation(skipped_reason="preflight target failed", started_at=None), core.iso_utc)
    assert never["injected"] is None


def test_a_target_that_did_not_recover_has_no_time_to_recovery() -> None:
    """Its pods came back in 0.11s, but the thresholds never held again: 0.11s is not its recovery."""
    brief = [{"down_at": 1.0, "up_at": 1.11, "seconds": 0.11}]
    result = core.experiment_result(observation(chaos_ended=True, recovered=False, outages=brief), core.iso_utc)
    assert result["recovered"] is False and result["time_to_recovery_seconds"] is None
    assert result["outages"] == brief


def test_run_result_is_valid_and_exit_codes_follow_the_verdicts() -> None:
    passed = core.experiment_result(observation(chaos_ended=True, recovered=True, ended_at=1_010.0), core.iso_utc)
    aborted = core.experiment_result(observation(chaos_ended=True, abort={
        "by": "threshold", "reason": "threshold breached", "threshold": "web-error-rate", "breach_at": 1.5,
        "requested_at": 1.6, "stopped_at": 1.9, "confirmed": True}), core.iso_utc)
    errored = core.experiment_result(observation(error_reason="Prometheus unreachable"), core.iso_utc)
    for results, code in (([passed], 0), ([passed, aborted], 5), ([passed, errored], 4), ([errored, aborted], 5)):
        document = core.run_result(results, "chaos-watch test", {"type": "stdin"}, "/tmp/j.jsonl", dry_run=False)
        validate(document, "RunResult", "test")
        assert core.exit_code(document) == code
    assert passed["started_at"] == "1970-01-01T00:16:40.000Z"
    summary = core.run_result([passed, aborted], "g", {"type": "stdin"}, None, False)["summary"]
    assert summary == {"total": 2, "passed": 1, "failed": 0, "aborted": 1, "skipped": 0, "error": 0}


def test_chaos_result_summary_reads_litmus_fields() -> None:
    litmus = {"metadata": {"name": "e-pod-delete"}, "status": result_status(
        "Completed", "Fail", [{"name": "p", "type": "promProbe", "mode": "Continuous",
                               "status": {"verdict": "Failed", "description": "value 1"}}], "probe p failed")}
    summary = core.summarize_chaos_result(litmus)
    assert summary == {"name": "e-pod-delete", "phase": "Completed", "verdict": "Fail", "probe_success_percentage": 0.0,
                       "failed_step": "probe p failed", "error_code": "GENERIC_ERROR",
                       "probes": [{"name": "p", "type": "promProbe", "mode": "Continuous", "verdict": "Failed", "description": "value 1"}]}
    running = core.summarize_chaos_result({"metadata": {"name": "x"}, "status": result_status("Running", "Awaited", [])})
    assert running["probe_success_percentage"] is None


def test_litmus_runner_kills_the_share_litmus_would() -> None:
    assert [pods_to_kill(3, p) for p in ("", "34", "50", "100")] == [1, 1, 1, 3]
    assert pods_to_kill(0, "50") == 0


def test_traffic_sim_answers_only_with_endpoints_and_hard_dependencies() -> None:
    app = Application(watch_app.topology())
    everything = {f"shop/Service/{n}" for n in watch_app.WORKLOADS}
    assert all(app.answering(everything).values())
    down_db = app.answering(everything - {"shop/Service/db"})
    assert down_db == {"shop/Deployment/web": False, "shop/Deployment/api": False, "shop/StatefulSet/db": False}
    assert app.answering(everything - {"shop/Service/web"})["shop/Deployment/api"] is True
    assert app.depth("shop/Deployment/web") == 3


def test_traffic_sim_exposition_has_the_convention_names() -> None:
    metrics = Metrics()
    metrics.observe("shop", "api", "503", 0.03, 2)
    text = metrics.render()
    assert 'http_requests_total{namespace="shop",service="api",code="503"} 2' in text
    assert 'http_request_duration_seconds_bucket{namespace="shop",service="api",le="0.025"} 0' in text
    assert 'http_request_duration_seconds_bucket{namespace="shop",service="api",le="0.05"} 2' in text
    assert 'http_request_duration_seconds_count{namespace="shop",service="api"} 2' in text


def test_error_rate_query_matches_chaos_suggest_convention() -> None:
    query = watch_app.error_rate_query("api")
    assert 'http_requests_total{namespace="shop",service="api",code=~"5.."}' in query
    assert json.dumps(query)  # plain text, no escapes


@pytest.mark.parametrize("golden", ["all.yaml", "all.json"])
def test_chaos_litmus_output_is_read_as_is(golden: str) -> None:
    """The contract with chaos-litmus: its golden output (YAML stream or v1 List) parses into annotated engines."""
    from pathlib import Path

    from chaosgen.documents import parse_documents

    path = Path(__file__).parent / "golden" / "litmus" / golden
    objects = core.split_documents(parse_documents(path.read_bytes(), str(path)), str(path))
    engines = core.parse_engines(objects, str(path))
    assert [e.experiment_id for e in engines] == [e.name for e in engines] and len(engines) >= 1
    for parsed in engines:
        assert parsed.thresholds and parsed.experiment and parsed.target == parsed.experiment["target"]["workload"]
        assert parsed.result_name == f"{parsed.name}-{parsed.fault}"
