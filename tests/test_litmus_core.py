"""chaos-litmus core on plain dict plans: env tunables per fault, probes, RBAC, annotations, determinism, and every
rendered ChaosEngine/ChaosExperiment against the real Litmus CRD schemas."""

from __future__ import annotations

import copy
import json
import math
import operator
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator, Draft202012Validator

from chaos_litmus import catalogue, core, crd, validate
from chaosgen import kube
from chaosgen.errors import EnvironmentFailure, InputRejected, PolicyViolation
from chaosgen.faults import FAULT_TYPES, fault_named
from chaosgen.policy import abort_window_limit, load_policy, promql_problem
from conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]
PLAN = json.loads((REPO / "tests" / "golden" / "litmus" / "plan.json").read_text())
ALL_FLAGS = core.Options(with_experiments=True, with_rbac=True)
COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}
KIND_OF_TARGET = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}


def experiment(index: int = 0, **changes) -> dict:
    """An experiment of the golden plan, with top-level fields replaced."""
    found = copy.deepcopy(PLAN["experiments"][index])
    found.update(changes)
    return found


def plan_of(*experiments: dict) -> dict:
    return {**PLAN, "experiments": list(experiments)}


def render(plan: dict, options: core.Options = ALL_FLAGS) -> list[dict]:
    return core.render(plan, options, catalogue.definitions()).documents


def engines(plan: dict, options: core.Options = ALL_FLAGS) -> list[dict]:
    return [document for document in render(plan, options) if document["kind"] == "ChaosEngine"]


def env_of(engine: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in engine["spec"]["experiments"][0]["spec"]["components"]["env"]}


def probes_of(engine: dict) -> list[dict]:
    return engine["spec"]["experiments"][0]["spec"]["probe"]


def every_fault_plan() -> dict:
    """One experiment per fault type and workload kind it can target, every parameter set."""
    parameters = {
        "duration": "1m30s", "interval": "10s", "pods_affected_percent": 50, "force": True, "sequence": "parallel",
        "cpu_cores": 2, "memory_mb": 256, "latency_ms": 200, "jitter_ms": 20, "loss_percent": 30,
        "replica_count": 4, "container": "main",
    }
    found = []
    for fault in FAULT_TYPES:
        for kind in fault_named(fault).target_kinds:
            name = f"{fault}-{kind.lower()}"
            target = {"workload": f"shop/{kind}/app", "namespace": "shop", "kind": kind, "name": "app", "label_selector": "app=x"}
            if fault == "node-drain":
                target |= {"node": "worker-1", "litmus_node": "worker-2"}
            found.append(experiment(
                0, id=name, fault={"type": fault}, target=target, parameters=parameters,
                blast_radius={"namespaces": ["shop"], "workloads": [target["workload"]], "pods_affected_percent": 50, "max_pods": 1},
            ))
    return plan_of(*found)


# --- env tunables -------------------------------------------------------------------------------------------------


def test_the_catalogue_has_a_definition_for_every_fault_type():
    assert sorted(catalogue.definitions()) == sorted(FAULT_TYPES) == sorted(core.FAULT_ENV)


@pytest.mark.parametrize("fault", FAULT_TYPES)
def test_every_tunable_is_an_env_var_the_faults_experiment_declares(fault):
    declared = {item["name"] for item in catalogue.definitions()[fault]["spec"]["definition"]["env"]}
    assert core.FAULT_ENV[fault] <= declared


@pytest.mark.parametrize("fault", FAULT_TYPES)
def test_each_fault_gets_exactly_its_tunables_from_the_parameters(fault):
    engine = next(e for e in engines(every_fault_plan()) if e["spec"]["experiments"][0]["name"] == fault)
    env = env_of(engine)
    runtime = {"CONTAINER_RUNTIME", "SOCKET_PATH"} if fault_named(fault).container_runtime else set()
    assert set(env) == core.FAULT_ENV[fault] | runtime
    expected = {
        "TOTAL_CHAOS_DURATION": "90", "CHAOS_INTERVAL": "10", "PODS_AFFECTED_PERC": "50", "FORCE": "true",
        "SEQUENCE": "parallel", "CPU_CORES": "2", "MEMORY_CONSUMPTION": "256", "NETWORK_LATENCY": "200", "JITTER": "20",
        "NETWORK_PACKET_LOSS_PERCENTAGE": "30", "REPLICA_COUNT": "4", "TARGET_CONTAINER": "main",
        "TARGET_NODE": "worker-1", "CONTAINER_RUNTIME": "containerd", "SOCKET_PATH": "/run/containerd/containerd.sock",
    }
    assert env == {name: expected[name] for name in env}
    assert all(isinstance(value, str) for value in env.values())


def test_node_drain_drains_the_named_node_with_litmus_pinned_to_another_one():
    engine = engines(plan_of(experiment(2)))[0]
    assert env_of(engine) == {"TOTAL_CHAOS_DURATION": "90", "TARGET_NODE": "worker-1"}
    pinned = {"kubernetes.io/hostname": "worker-2"}
    assert engine["spec"]["components"]["runner"]["nodeSelector"] == pinned
    assert engine["spec"]["experiments"][0]["spec"]["components"]["nodeSelector"] == pinned
    # Litmus reads only the first label of a node-drain's target (getAppDetails indexes Labels[0]).
    assert engine["spec"]["appinfo"] == {"appns": "shop", "applabel": "app=web", "appkind": "deployment"}


@pytest.mark.parametrize("missing", ["node", "litmus_node"])
def test_a_node_drain_without_its_nodes_is_refused_naming_the_rule(missing):
    without = experiment(2)
    del without["target"][missing]
    with pytest.raises(PolicyViolation) as caught:
        core.check_plan(plan_of(without), load_policy(None), "plan.json")
    assert caught.value.rule == "node-drain-needs-nodes"
    assert "live inventory" in str(caught.value)


@pytest.mark.parametrize("kind", ["ReplicaSet", "Job", "CronJob", "Pod"])
def test_kinds_litmus_cannot_select_are_refused_naming_the_rule(kind):
    target = {"workload": f"shop/{kind}/x", "namespace": "shop", "kind": kind, "name": "x", "label_selector": "app=x"}
    blast = {**experiment(1)["blast_radius"], "workloads": [target["workload"]]}
    with pytest.raises(PolicyViolation) as caught:
        core.check_plan(plan_of(experiment(1, target=target, blast_radius=blast)), load_policy(None), "plan.json")
    assert caught.value.rule == "unsupported-target-kind"


def test_runtime_faults_carry_the_container_runtime_and_its_socket():
    plan = plan_of(experiment(1))
    assert {k: v for k, v in env_of(engines(plan)[0]).items() if k in ("CONTAINER_RUNTIME", "SOCKET_PATH")} == {
        "CONTAINER_RUNTIME": "containerd", "SOCKET_PATH": "/run/containerd/containerd.sock"}
    crio = env_of(engines(plan, core.Options(container_runtime="crio"))[0])
    assert (crio["CONTAINER_RUNTIME"], crio["SOCKET_PATH"]) == ("crio", "/var/run/crio/crio.sock")
    k3s = env_of(engines(plan, core.Options(socket_path="/run/k3s/containerd/containerd.sock"))[0])
    assert k3s["SOCKET_PATH"] == "/run/k3s/containerd/containerd.sock"
    assert "CONTAINER_RUNTIME" not in env_of(engines(plan_of(experiment(0)))[0])  # pod-delete needs no runtime
    assert core.socket_path_problem("/run/x.sock") is None
    assert core.socket_path_problem("/run/$(id).sock") and core.socket_path_problem("relative.sock")
    assert core.socket_path_problem("/run/../etc/shadow")


def test_durations_round_up_to_whole_seconds_and_percent_falls_back_to_the_blast_radius():
    short = experiment(1, parameters={"duration": "500ms"})
    env = env_of(engines(plan_of(short))[0])
    assert {k: env[k] for k in env if k not in ("CONTAINER_RUNTIME", "SOCKET_PATH")} == {
        "TOTAL_CHAOS_DURATION": "1", "PODS_AFFECTED_PERC": "50"}


def test_parameters_a_fault_cannot_use_are_warned_about():
    rendering = core.render(PLAN, core.Options(), catalogue.definitions())
    assert rendering.warnings == [
        "experiment r2-pod-network-latency-api: parameter cpu_cores does not apply to pod-network-latency; ignored"
    ]


# --- the engine -----------------------------------------------------------------------------------------------------


def test_engine_metadata_appinfo_and_annotations_follow_the_team_conventions():
    engine = engines(PLAN)[0]
    source = PLAN["experiments"][0]
    assert engine["apiVersion"] == "litmuschaos.io/v1alpha1"
    assert engine["metadata"]["name"] == source["id"]
    assert engine["metadata"]["namespace"] == "shop"
    assert engine["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "chaosgen"
    annotations = engine["metadata"]["annotations"]
    assert annotations["chaosgen.dev/experiment-id"] == source["id"]
    assert annotations["chaosgen.dev/target"] == "shop/StatefulSet/db"
    assert json.loads(annotations["chaosgen.dev/abort-thresholds"]) == source["abort_thresholds"]
    assert annotations["chaosgen.dev/expected-recovery-seconds"] == "90"
    assert json.loads(annotations["chaosgen.dev/experiment"]) == source
    assert " " not in annotations["chaosgen.dev/abort-thresholds"].split('"query"')[0]
    spec = engine["spec"]
    assert spec["engineState"] == "active"
    assert spec["selectors"] == {"workloads": [{"kind": "statefulset", "namespace": "shop", "names": "db"}]}
    assert "appinfo" not in spec
    assert spec["chaosServiceAccount"] == "pod-delete-sa"
    assert spec["jobCleanUpPolicy"] == "delete"
    assert spec["experiments"][0]["name"] == "pod-delete"
    assert "annotationCheck" not in spec


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_pod_faults_name_the_workload_by_kind_and_name_never_by_labels(kind):
    target = {"workload": f"shop/{kind}/x", "namespace": "shop", "kind": kind, "name": "x", "label_selector": "app=x,tier=a"}
    spec = engines(plan_of(experiment(1, target=target)))[0]["spec"]
    assert spec["selectors"] == {"workloads": [{"kind": KIND_OF_TARGET[kind], "namespace": "shop", "names": "x"}]}
    assert "appinfo" not in spec


# --- probes ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("abort_operator", sorted(COMPARE))
@pytest.mark.parametrize("actual", [0.0, 0.04, 0.05, 0.06, 1.0])
def test_an_abort_probe_passes_exactly_while_the_threshold_is_not_breached(abort_operator, actual):
    threshold = {"name": "t", "query": "q", "operator": abort_operator, "value": 0.05, "for": "30s"}
    probe = core.abort_probe(threshold, "http://p:9090", "1m")
    comparator = probe["promProbe/inputs"]["comparator"]
    passes = COMPARE[comparator["criteria"]](actual, float(comparator["value"]))
    assert passes is not COMPARE[abort_operator](actual, 0.05)


@pytest.mark.parametrize("abort_operator", sorted(COMPARE))
def test_an_abort_probe_reads_nan_or_no_sample_as_not_breached_like_chaos_watch(abort_operator):
    # Litmus's comparator fails on NaN (ParseFloat("NaN"), every criteria false): the query itself must not yield it.
    threshold = {"name": "t", "query": "vector(0)/0", "operator": abort_operator, "value": 0.05, "for": "30s"}
    inputs = core.abort_probe(threshold, "http://p:9090", "1m")["promProbe/inputs"]
    query = inputs["query"]
    assert query.startswith("((vector(0)/0) >= -Inf) or vector(")
    assert promql_problem(query) is None
    fallback = float(query.rsplit("vector(", 1)[1].rstrip(")"))
    assert COMPARE[inputs["comparator"]["criteria"]](fallback, float(inputs["comparator"]["value"]))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_no_comparator_can_hold_is_refused(value):
    broken = experiment(0)
    broken["abort_thresholds"][0]["value"] = value
    with pytest.raises(InputRejected, match="not a number a probe can compare with"):
        core.check_plan(plan_of(broken), load_policy(None), "plan.json")


def test_the_shell_litmus_runs_the_prom_probe_in_hands_promql_the_query_unchanged(tmp_path):
    # litmus-go promProbe.go: exec /bin/sh -c `promql --host <endpoint> "<query>" --output csv`.
    query = 'sum(rate(x{a="b",c=~"5.."}[1m])) or vector(0) # $HOME `id` \\ "'
    fake = tmp_path / "promql"
    fake.write_text('#!/bin/sh\nprintf %s "$3"\n')
    fake.chmod(0o755)
    command = f'promql --host http://p:9090 "{core.for_litmus_shell(query)}" --output csv'
    shown = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                           env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=True).stdout
    assert shown == query


def test_abort_probes_are_continuous_stop_on_failure_and_fail_only_after_the_for_duration():
    probe = core.abort_probe({"name": "errors", "query": "q", "operator": ">", "value": 5, "for": "1m"}, "http://p:9090", "2m")
    assert probe["name"] == "abort-errors" and probe["type"] == "promProbe" and probe["mode"] == "Continuous"
    assert probe["promProbe/inputs"] == {"endpoint": "http://p:9090", "query": "((q) >= -Inf) or vector(5)",
                                         "comparator": {"criteria": "<=", "value": "5"}}
    properties = probe["runProperties"]
    assert properties["stopOnFailure"] is True
    assert all(properties[key].endswith("s") for key in ("probeTimeout", "interval", "probePollingInterval"))
    interval = int(properties["interval"][:-1])
    assert (properties["retry"] - 1) * interval >= 60 > (properties["retry"] - 2) * interval


@pytest.mark.parametrize("duration", ["7s", "30s", "33s", "1m"])
def test_an_abort_probe_never_waits_longer_than_the_chaos_plus_one_interval(duration):
    # Litmus cancels continuous probes when the chaos ends; the policy allows `for` up to duration + one interval.
    window = f"{int(abort_window_limit(duration))}s"
    probe = core.abort_probe({"name": "e", "query": "q", "operator": ">", "value": 1, "for": window}, "http://p:9090", duration)
    properties = probe["runProperties"]
    assert (properties["retry"] - 1) * int(properties["interval"][:-1]) <= abort_window_limit(duration)


def test_steady_state_checks_become_sot_and_eot_probes_of_their_type_and_never_a_cmd_probe():
    probes = probes_of(engines(PLAN)[0])
    assert [(p["name"], p["type"], p["mode"]) for p in probes] == [
        ("abort-api-error-rate", "promProbe", "Continuous"),
        ("abort-api-up", "promProbe", "Continuous"),
        ("steady-db-ready-sot", "promProbe", "SOT"), ("steady-db-ready-eot", "promProbe", "EOT"),
        ("steady-db-pods-sot", "k8sProbe", "SOT"), ("steady-db-pods-eot", "k8sProbe", "EOT"),
        ("steady-web-home-sot", "httpProbe", "SOT"), ("steady-web-home-eot", "httpProbe", "EOT"),
    ]
    assert probes[4]["k8sProbe/inputs"] == {
        "group": "", "version": "v1", "resource": "pods", "namespace": "shop", "labelSelector": "app=db", "operation": "present",
    }
    assert probes[6]["httpProbe/inputs"]["method"] == {"get": {"criteria": "==", "responseCode": "200"}}
    # The after-chaos check keeps retrying for the expected recovery time.
    assert (probes[3]["runProperties"]["retry"] - 1) * 5 >= 90
    every_probe = [p for e in engines(every_fault_plan()) for p in probes_of(e)]
    assert all(p["type"] != "cmdProbe" for p in every_probe)


def test_probe_names_are_unique_within_an_engine_even_when_the_plan_repeats_a_name():
    source = experiment(0)
    source["abort_thresholds"].append(dict(source["abort_thresholds"][0]))
    source["steady_state"].append(dict(source["steady_state"][0]))
    names = [p["name"] for p in probes_of(engines(plan_of(source))[0])]
    assert len(names) == len(set(names))
    assert "abort-api-error-rate-2" in names and "steady-db-ready-sot-2" in names


@pytest.mark.parametrize("query", [
    'sum(rate(x{code=~"5.."}[1m]))', "up{job='a'}", 'x{a="$(touch /tmp/pwned)"}', "x{a=`b`}", r'x{a=~"\\d+"}',
])
def test_the_query_survives_the_litmus_runners_sh_double_quotes_unchanged(query):
    # litmus-go runs: /bin/sh -c 'promql --host E "<query>" --output csv'
    shell = subprocess.run(["sh", "-c", f'printf %s "{core.for_litmus_shell(query)}"'], capture_output=True, text=True, check=True)
    assert shell.stdout == query


@pytest.mark.parametrize(("value", "text"), [(0.05, "0.05"), (5.0, "5"), (3, "3"), (2.5, "2.5"), (1e-05, "1e-05")])
def test_threshold_values_become_the_strings_litmus_parses(value, text):
    assert core.format_number(value) == text
    assert float(text) == value


# --- RBAC and experiments ------------------------------------------------------------------------------------------


def test_rbac_comes_first_then_experiments_then_engines_deduplicated_per_namespace_and_fault():
    twice = experiment(1, id="again")
    documents = render(plan_of(*PLAN["experiments"], twice))
    kinds = [d["kind"] for d in documents]
    order = {"ClusterRole": 0, "ServiceAccount": 0, "Role": 0, "RoleBinding": 0, "ClusterRoleBinding": 0,
             "ChaosExperiment": 1, "ChaosEngine": 2}
    assert [order[k] for k in kinds] == sorted(order[k] for k in kinds)
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in documents]
    assert len(names) == len(set(names))
    assert kinds.count("ChaosEngine") == 5 and kinds.count("ChaosExperiment") == 4
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "chaosgen" for d in documents)


def test_a_namespaced_fault_gets_a_service_account_role_and_binding_from_its_permissions():
    documents = render(plan_of(experiment(0)), core.Options(with_rbac=True))
    account, role, binding = documents[:3]
    assert account == {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "pod-delete-sa", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "chaosgen"}}}
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "shop"
    assert role["rules"] == catalogue.definitions()["pod-delete"]["spec"]["definition"]["permissions"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-delete-sa"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pod-delete-sa", "namespace": "shop"}]


def test_node_drain_gets_a_cluster_role_for_nodes_and_evictions_bound_per_namespace():
    other = experiment(2, id="other")
    other["target"] = {**other["target"], "workload": "web/Deployment/web", "namespace": "web"}
    other["blast_radius"] = {**other["blast_radius"], "namespaces": ["web"], "workloads": ["web/Deployment/web"]}
    documents = render(plan_of(experiment(2), other), core.Options(with_rbac=True))
    cluster_roles = [d for d in documents if d["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in cluster_roles] == ["node-drain-sa"]
    granted = {(resource, verb) for rule in cluster_roles[0]["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("nodes", "patch"), ("pods/eviction", "create")} <= granted
    bindings = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
    assert [(b["metadata"]["name"], b["subjects"][0]["namespace"]) for b in bindings] == [
        ("node-drain-sa-shop", "shop"), ("node-drain-sa-web", "web"),
    ]
    assert not [d for d in documents if d["kind"] in ("Role", "RoleBinding")]


def test_experiments_are_the_vendored_definitions_in_the_engines_namespace():
    documents = render(plan_of(experiment(3)), core.Options(with_experiments=True))
    definition = catalogue.definitions()["pod-autoscaler"]
    assert documents[0]["metadata"]["namespace"] == "payments"
    assert documents[0]["spec"] == definition["spec"]
    assert documents[0]["metadata"]["labels"] == {**definition["metadata"]["labels"], "app.kubernetes.io/managed-by": "chaosgen"}


@pytest.mark.parametrize("fault", sorted(set(FAULT_TYPES) - {"pod-autoscaler"}))
def test_vendored_experiments_name_their_upstream_source(fault):
    # The only copy of each chaos-charts definition in the repository: its provenance block is all there is to check.
    text = (REPO / "chaos_litmus" / "experiments" / f"{fault}.yaml").read_text()
    assert yaml.safe_load(text)["metadata"]["name"] == fault
    assert "source-repository: https://github.com/litmuschaos/chaos-charts" in text
    assert f"source-path: faults/kubernetes/{fault}/fault.yaml" in text
    assert "commit: c14e99cf25c5b69f73f20af6fd737e8515d50f5e" in text


def test_rendering_is_deterministic_and_does_not_touch_the_plan():
    before = copy.deepcopy(PLAN)
    first = json.dumps(render(PLAN))
    assert json.dumps(render(PLAN)) == first
    assert PLAN == before


# --- plan checks ----------------------------------------------------------------------------------------------------


def test_a_policy_violation_names_the_rule_and_the_experiment():
    policy = {**load_policy(None), "denied_namespaces": ["payments"]}
    with pytest.raises(PolicyViolation) as caught:
        core.check_plan(PLAN, policy, "plan.json")
    assert caught.value.rule == "denied-namespace"
    assert str(caught.value).startswith("plan.json at $.experiments[3]: policy rule denied-namespace")


@pytest.mark.parametrize(("changed", "path", "message"), [
    (experiment(1, id="r1-pod-delete-db"), "$.experiments[1].id", "duplicate experiment id r1-pod-delete-db"),
    (experiment(3, target={"workload": "payments/DaemonSet/x", "namespace": "payments", "kind": "DaemonSet", "name": "x",
                           "label_selector": "app=x"},
                 blast_radius={**experiment(3)["blast_radius"], "workloads": ["payments/DaemonSet/x"]}),
     "$.experiments[1]", "unsupported-target-kind: Litmus cannot aim pod-autoscaler at a DaemonSet"),
    (experiment(0, id="other", steady_state=[{"name": "p", "type": "k8s", "resource": "pods", "namespace": "other",
                                              "label_selector": "app=x", "operation": "present"}]),
     "$.experiments[1].steady_state[0].namespace", "granted only in the target's namespace"),
    (experiment(0, id="other", steady_state=[{"name": "h", "type": "http", "url": "http://u:hunter2@web/", "expected_status": 200}]),
     "$.experiments[1].steady_state[0].url", "carries a credential"),
])
def test_plans_that_cannot_become_safe_engines_are_rejected_at_their_path(changed, path, message):
    with pytest.raises(InputRejected) as caught:
        core.check_plan(plan_of(experiment(0), changed), load_policy(None), "plan.json")
    assert caught.value.path == path
    assert message in caught.value.message
    assert "hunter2" not in str(caught.value)


# --- the Litmus CRD schemas -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd_documents() -> list:
    return [d for d in yaml.safe_load_all((FIXTURES / "crds" / "litmus-crds.yaml").read_text()) if d]


@pytest.mark.parametrize("plan", [PLAN, every_fault_plan(), plan_of(experiment(1))], ids=["golden", "every-fault", "one"])
@pytest.mark.parametrize("kind", ["ChaosEngine", "ChaosExperiment"])
def test_rendered_objects_validate_against_the_litmus_crd_schema(crd_documents, plan, kind):
    raw = crd.crd_schema(crd_documents, kind)
    # The CRD's schema as it is (x-kubernetes-* keywords are unknown to jsonschema and ignored), and the strict
    # form that also rejects fields the schema does not declare, as the API server's strict field validation does.
    validators = [Draft4Validator(raw), Draft202012Validator(crd.strict_json_schema(raw))]
    documents = [d for d in render(plan) if d["kind"] == kind]
    assert documents
    for document in documents:
        for validator in validators:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
            assert not errors, f"{document['metadata']['name']}: {errors}"


def test_the_vendored_engine_schema_is_generated_from_the_litmus_crd(crd_documents):
    vendored = json.loads((REPO / "schemas" / crd.SCHEMA_FILE).read_text())
    generated = crd.schema_document(crd_documents, vendored["$comment"])
    assert vendored == generated
    assert "af8244e53a0d2649ad9b78322470617b1f3fd69e" in vendored["$comment"]


def test_the_strict_schema_rejects_unknown_fields_and_bad_values():
    engine = engines(PLAN)[0]
    crd.check_engines([engine])
    broken = copy.deepcopy(engine)
    broken["spec"]["engineState"] = "running"
    with pytest.raises(AssertionError, match=r"breaks the Litmus CRD schema at \$\.spec\.engineState"):
        crd.check_engines([broken])
    # 2.x shapes: integer probeTimeout, and responseTimeout in httpProbe inputs (not declared in 3.x).
    broken = copy.deepcopy(engine)
    probes_of(broken)[0]["runProperties"]["probeTimeout"] = 10
    with pytest.raises(AssertionError, match="probeTimeout"):
        crd.check_engines([broken])
    broken = copy.deepcopy(engine)
    probes_of(broken)[6]["httpProbe/inputs"]["responseTimeout"] = 5000
    with pytest.raises(AssertionError, match="responseTimeout"):
        crd.check_engines([broken])


# --- --validate: paths and the mapping of server answers to exit codes (the live test runs in the sandbox) --------


def test_object_paths_follow_the_api_groups():
    documents = render(PLAN)
    paths = {validate.object_path(d) for d in documents}
    assert "/api/v1/namespaces/shop/serviceaccounts/pod-delete-sa" in paths
    assert "/apis/rbac.authorization.k8s.io/v1/clusterroles/node-drain-sa" in paths
    assert "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/node-drain-sa-shop" in paths
    assert "/apis/litmuschaos.io/v1alpha1/namespaces/payments/chaosexperiments/pod-autoscaler" in paths
    assert "/apis/litmuschaos.io/v1alpha1/namespaces/shop/chaosengines/r1-pod-delete-db" in paths


@pytest.mark.parametrize(("status", "error", "words"), [
    (422, InputRejected, "the API server rejects ChaosEngine shop/r1-pod-delete-db: spec.engineState: Unsupported value"),
    (400, InputRejected, "the API server rejects ChaosEngine shop/r1-pod-delete-db: spec.engineState: Unsupported value"),
    (401, EnvironmentFailure, "does not accept the credentials"),
    (403, EnvironmentFailure, "not allowed to apply ChaosEngine shop/r1-pod-delete-db: spec.engineState"),
    (404, EnvironmentFailure, "are the Litmus CRDs installed"),
    (503, EnvironmentFailure, "HTTP 503"),
])
def test_server_answers_map_to_rejection_or_environment_failure(status, error, words):
    body = json.dumps({"kind": "Status", "message": "spec.engineState: Unsupported value:\n \"running\""})
    engine = engines(PLAN)[0]
    failure = validate.failure_for(
        kube.status_error(status, body, f"apply {validate.object_name(engine)}", "https://127.0.0.1:6443", "sandbox"))
    assert isinstance(failure, error) and failure.exit_code == error.exit_code
    assert words in str(failure)
    assert "\n" not in str(failure)
