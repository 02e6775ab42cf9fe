"""chaos-inventory as a user runs it: the installed command in a real shell pipe, exit code, stdout and stderr apart."""

from __future__ import annotations

import base64
import json
import shlex

import pytest

from chaosgen.schemas import validate
from conftest import FIXTURES, GOLDEN, REPO, assert_golden, run

GOLDEN_DIR = GOLDEN / "inventory"
SHOP = "tests/golden/inventory/inputs/shop.yaml"
APPS = {"sock-shop": "tests/fixtures/apps/sock-shop.yaml", "bookinfo": "tests/fixtures/apps/bookinfo.yaml",
        "shop": SHOP}
PLANTED_SECRETS = ("hunter2-env", "dsn-s3cret", "amqp-s3cret", "cm-s3cret-value", "secret-data-value",
                   "secret-string-value", base64.b64encode(b"secret-data-value").decode())


def inventory(args: str, input: bytes | None = None):
    return run(f"chaos-inventory {args}", input=input)


@pytest.mark.parametrize("app", sorted(APPS))
def test_golden_topology(app):
    result = inventory(f"-f {APPS[app]}")
    assert result.returncode == 0, result.stderr.decode()
    topology = json.loads(result.stdout)
    validate(topology, "Topology", app)
    assert topology["metadata"]["source"] == {"type": "files", "files": [APPS[app]]}
    assert_golden(result.stdout, GOLDEN_DIR / f"{app}.json")


@pytest.mark.parametrize("output_format", ["dot", "mermaid"])
def test_golden_graphs(output_format):
    result = inventory(f"-f {SHOP} --format {output_format}")
    assert result.returncode == 0, result.stderr.decode()
    assert_golden(result.stdout, GOLDEN_DIR / f"shop.{output_format}")


def test_graphs_draw_external_hosts_apart():
    dot = inventory(f"-f {APPS['sock-shop']} --format dot").stdout.decode()
    assert '"zipkin.jaeger.svc.cluster.local" [label="zipkin.jaeger.svc.cluster.local\\nexternal", shape=ellipse, style=dashed];' in dot
    mermaid = inventory(f"-f {APPS['sock-shop']} --format mermaid").stdout.decode()
    assert 'x0(["zipkin.jaeger.svc.cluster.local"]):::external' in mermaid


def test_output_is_byte_identical_across_runs():
    first, second = (inventory(f"-f {SHOP} -f {APPS['sock-shop']}") for _ in range(2))
    assert first.returncode == 0 and first.stdout == second.stdout


def test_stdin_directory_and_pipe():
    piped = run(f"cat {SHOP} | chaos-inventory -f - | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"kind\"])'")
    assert piped.returncode == 0 and piped.stdout == b"Topology\n"
    from_dir = inventory("-f tests/fixtures/apps")
    topology = json.loads(from_dir.stdout)
    assert from_dir.returncode == 0 and topology["summary"]["workloads"] == 20
    assert topology["metadata"]["source"]["files"] == ["tests/fixtures/apps"]


def test_default_namespace_flag_applies_to_namespaceless_objects_only():
    topology = json.loads(inventory(f"-n reviews -f {APPS['bookinfo']} -f {APPS['sock-shop']}").stdout)
    assert {w["namespace"] for w in topology["workloads"]} == {"reviews", "sock-shop"}
    assert inventory(f"-n Not_Valid -f {APPS['bookinfo']}").returncode == 2


def test_warnings_and_notes_go_to_stderr(tmp_path):
    manifest = tmp_path / "with-unknown.yaml"
    manifest.write_text((REPO / SHOP).read_text() + "\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    result = inventory(f"-v -f {manifest}")
    stderr = result.stderr.decode()
    assert result.returncode == 0
    assert "WARNING: ignored objects of unknown kinds: Widget (1)" in stderr
    assert "INFO: skipped Secret db-credentials without reading it" in stderr
    assert "Namespace is not part of the topology" in stderr and "WARNING: ignored objects of unknown kinds: Namespace" not in stderr
    assert json.loads(result.stdout)["metadata"]["warnings"] == ["ignored objects of unknown kinds: Widget (1)"]


def test_a_plain_manifest_runs_without_warnings():
    result = inventory(f"-f {SHOP}")
    assert result.returncode == 0 and result.stderr == b""


def test_no_planted_secret_reaches_any_output():
    outputs = [inventory(f"-vv --debug -f {SHOP} --format {fmt}") for fmt in ("json", "dot", "mermaid")]
    outputs.append(inventory("-vv -f -", input=(REPO / SHOP).read_bytes()))
    for result in outputs:
        assert result.returncode == 0, result.stderr.decode()
        for secret in PLANTED_SECRETS:
            assert secret.encode() not in result.stdout + result.stderr, secret


BAD_INPUTS = {
    "not-yaml.yaml": b"a: [1, 2\n",
    "truncated.json": b'{"apiVersion": "v1", "kind": "Serv',
    "empty.yaml": b"",
    "comments-only.yaml": b"# nothing here\n---\n",
    "binary.yaml": bytes(range(256)) * 4,
    "latin1.yaml": "kind: Caf\xe9\n".encode("latin-1"),
    "alias-bomb.yaml": (b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True))),
    "recursive-alias.yaml": b"--- &a\n- *a\n",
    "recursive-alias-in-object.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: x, loop: *m}\n",
    "deep.json": b"[" * 50000 + b"]" * 50000,
    "deep.yaml": b"a:\n" + b"".join(b" " * i + b"- \n" for i in range(1, 3000)),
    "strings.yaml": b"- one\n- two\n",
    "scalar.yaml": b"just a sentence\n",
    "no-name.yaml": b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\nspec: {template: {spec: {containers: [{name: a}]}}}\n",
    "bad-containers.yaml": b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: oops}\n",
    "bad-list-item.yaml": b"apiVersion: v1\nkind: List\nitems:\n"
                          b"- {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 0}]}}\n",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_3_with_one_line_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_INPUTS[name])
    result = inventory(f"-f {shlex.quote(str(path))}")
    assert result.returncode == 3
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chaos-inventory: error: {path}"), lines
    assert "Traceback" not in lines[0]


def test_bad_object_names_document_and_json_path(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\n"
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
                    "spec: {template: {spec: {containers: [{name: c, ports: [{containerPort: x}]}]}}}\n")
    result = inventory(f"-f {path}")
    assert result.returncode == 3
    assert result.stderr.decode() == (f"chaos-inventory: error: {path} document 2 at "
                                      "$.spec.template.spec.containers[0].ports[0].containerPort: "
                                      "must be an integer, got a string\n")


def test_non_objects_beside_objects_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("- a list\n---\n" + (FIXTURES / "apps" / "bookinfo.yaml").read_text())
    result = inventory(f"-f {path}")
    assert result.returncode == 0
    assert f"{path} document 1 at $: skipped a list, not a Kubernetes object" in result.stderr.decode()


@pytest.mark.parametrize("args, code", [("--format svg -f x", 2), ("-f /no/such/file.yaml", 3), ("-f /tmp/ -f -", 3)])
def test_usage_and_missing_files(args, code, tmp_path):
    result = inventory(args.replace("/tmp/", f"{tmp_path}/"))
    assert result.returncode == code and result.stdout == b""


def test_reader_going_away_is_not_an_error():
    result = run(f"chaos-inventory -f {APPS['sock-shop']} | head -c 10")
    assert result.returncode == 0 and result.stderr.count(b"error") == 0


def test_a_topology_given_back_to_f_is_the_wrong_kind():
    """`chaos-inventory | chaos-inventory -f -` is a mistake to stop at, not an unknown Kubernetes kind to skip."""
    result = run(f"chaos-inventory -f {SHOP} | chaos-inventory -f -")
    assert result.returncode == 3 and result.stdout == b""
    assert result.stderr.decode() == ("chaos-inventory: error: <stdin> at $.kind: chaos-inventory expects Kubernetes "
                                      "manifests, got a Topology (chaosgen.dev/v1 document)\n")


def test_strict_is_only_for_a_live_cluster():
    result = inventory(f"-f {SHOP} --strict")
    assert result.returncode == 2 and b"--strict is only for a live cluster" in result.stderr
