"""The shared chaosgen package: hardened document parsing, kind and schema checks, durations and redaction."""

from __future__ import annotations

import json
from itertools import accumulate
from pathlib import Path

import pytest
import yaml

from chaosgen import documents, schemas
from chaosgen.documents import dump_json, parse_documents
from chaosgen.errors import InputRejected
from chaosgen.schemas import all_errors, check_kind, validate
from chaosgen.secrets import REDACTED, is_secret_name, redact_text, redact_value
from chaosgen.units import format_duration, parse_duration
from conftest import REPO, fixture_files

ALIAS_BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)

BAD_INPUTS = {
    "empty": (b"", "empty input"),
    "blank": (b"  \n\n", "empty input"),
    "binary": (bytes(range(256)), "not text"),
    "latin1": ("café: 1".encode("latin-1"), "not UTF-8"),
    "truncated-json": (b'{"apiVersion": "chaosgen.dev/v1", "kind": "Top', "not valid JSON"),
    "bad-yaml": (b"a: b: c\n", "not valid YAML"),
    "alias-bomb": (ALIAS_BOMB.encode(), "alias bomb"),
    "deep-flow": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep-block": (b"- " * 50_000 + b"x", "nested too deeply"),
    "deep-json": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_rejection(name: str) -> None:
    data, expected = BAD_INPUTS[name]
    with pytest.raises(InputRejected) as caught:
        parse_documents(data, "in.yaml")
    message = str(caught.value)
    assert message.startswith("in.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_multi_document_yaml_drops_empty_documents() -> None:
    assert parse_documents(b"---\na: 1\n---\n---\nb: [1, 2]\n", "x") == [{"a": 1}, {"b": [1, 2]}]


def test_json_and_harmless_aliases_are_read() -> None:
    assert parse_documents(b'{"a": [1, {"b": null}]}', "x") == [{"a": [1, {"b": None}]}]
    assert parse_documents(b"base: &b {x: 1}\nother: *b\n", "x") == [{"base": {"x": 1}, "other": {"x": 1}}]


TRICKY_SCALARS = """\
plain: [yes, no, on, off, Yes, NO, true, False, y, n, ~, null, Null, '', "", -, ., x]
numbers: [0, -0, +1, 017, 0o17, 0x1F, 0b101, 1_000, 190:20:30, 1e3, 1.5e-3, 6.8523015e+5, 685.230_15e+03,
  .inf, -.Inf, +.INF, .nan, .NaN, 3., .5, 1e400, 12345678901234567890123]
times: [2024-01-01, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10, 2001-12-15 2:59:43.10, 2002-12-14]
quoted: ["yes", '0x1F', "2024-01-01", "~", 'multi
  line', "tab\\there", "\\u00e9"]
literal: |
  line one
    indented
folded: >-
  folded
  text
keep: |+
  kept

tags: [!!str 123, !!str yes, !!int "42", !!float "1", !!binary aGVsbG8=, !!null "", !!bool "true", !!timestamp 2020-01-01]
base: &base {cpu: 100m, memory: 128Mi, replicas: 2}
more: &more {memory: 1Gi, extra: [*base]}
merged: {<<: *base, cpu: 1}
merged_list: {<<: [*more, *base], name: merged}
merge_first:
  <<: *base
  memory: 256Mi
mixed_keys: {1: one, 1.5: float, true: bool, ~: none, 2024-01-01: date, =: value}
duplicate: {a: 1, b: 2, a: 3}
"""
# Documents the lean constructor hands to the standard one.
UNUSUAL_NODES = """\
set: !!set {a, b}
omap: !!omap [{a: 1}, {b: 2}]
"""


def _same_as_safe_loader(text: str) -> None:
    """parse_documents gives exactly yaml.SafeLoader's values: repr tells True from 1 from 1.0 and keeps key order."""
    expected = [doc for doc in yaml.load_all(text, Loader=yaml.SafeLoader) if doc is not None]
    assert repr(parse_documents(text.encode(), "x")) == repr(expected)


@pytest.mark.parametrize("path", sorted([*fixture_files("apps/*.yaml"), *(REPO / "k8s").glob("*.yaml")]),
                         ids=lambda path: path.name)
def test_fast_yaml_loading_gives_safe_loader_results_on_manifests(path: Path) -> None:
    _same_as_safe_loader(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_fast_yaml_loading_gives_safe_loader_results_on_the_benchmark_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from gen_manifest import generate

    _same_as_safe_loader(generate(300))


def test_fast_yaml_loading_gives_safe_loader_results_on_tricky_scalars() -> None:
    _same_as_safe_loader(TRICKY_SCALARS)
    _same_as_safe_loader(TRICKY_SCALARS + UNUSUAL_NODES)
    _same_as_safe_loader("---\na: 1\n---\nb: !!str 2\n---\n- &l [x]\n- *l\n")


@pytest.mark.parametrize("text, message", [
    ("a: !!int abc\n", "invalid literal"),
    ("a: !!map x\n", "expected a mapping node"),
    ("a: !custom x\n", "could not determine a constructor"),
    ("a: {<<: [1]}\n", "expected a mapping for merging"),
    ("? {a: 1}\n: 2\n", "found unhashable key"),
])
def test_fast_yaml_loading_fails_like_safe_loader(text: str, message: str) -> None:
    with pytest.raises(Exception) as standard:
        yaml.load(text, Loader=yaml.SafeLoader)
    assert message in str(standard.value)
    try:
        parse_documents(text.encode(), "x")
    except InputRejected as e:
        assert str(standard.value).splitlines()[0].split(" (line")[0] in str(e) or message in str(e)
    except Exception as e:  # noqa: BLE001 - not a YAMLError: the same exception SafeLoader raises
        assert (type(e), str(e)) == (type(standard.value), str(standard.value))


def test_deep_documents_still_load_without_recursion() -> None:
    depth = 900  # the standard constructor needs several frames per level: past ~250 it overflowed
    text = "a: " + "[" * depth + "]" * depth + "\n"
    document = parse_documents(text.encode(), "x")[0]["a"]
    for _ in range(depth - 1):
        (document,) = document
    assert document == []


@pytest.mark.parametrize("text", ["x" * 9_999, "x" * 10_000, "a\n" + "x" * 10_000, "\n" * 5 + "z" * 9_998 + "\n",
                                  "y\n" * 20_000, "[" * 10_001 + "]" * 10_001, "{a: " * 9_000 + "1" + "}" * 9_000])
def test_depth_routing_shortcuts_agree_with_the_exact_scans(text: str) -> None:
    assert documents._has_long_line(text) == bool(documents._LONG_LINE.search(text))
    exact_flow = max(accumulate(map(documents._BRACKET_DELTA.__getitem__, documents._NON_BRACKETS.sub("", text))),
                     default=0)
    bound = documents._nesting_bound(text)
    assert bound >= exact_flow
    assert (bound < documents.C_LOADER_DEPTH_BOUND) == (
        exact_flow + (documents.C_LOADER_DEPTH_BOUND if documents._LONG_LINE.search(text) else 0)
        < documents.C_LOADER_DEPTH_BOUND
    )


def test_schema_code_is_cached_and_a_tampered_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    schemas.fast_validator_of.cache_clear()
    try:
        assert schemas.fast_validator_of("safety-policy.schema.json") is not None
        (cached,) = (tmp_path / "chaosgen" / "schema-code").iterdir()
        written = cached.read_bytes()
        schemas.fast_validator_of.cache_clear()
        assert schemas.fast_validator_of("safety-policy.schema.json") is not None
        cached.write_bytes(written[:-1] + bytes([written[-1] ^ 1]))
        schemas.fast_validator_of.cache_clear()
        assert schemas.fast_validator_of("safety-policy.schema.json").__name__.startswith("validate")
        assert cached.read_bytes() == written
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
        (tmp_path / "file").write_text("not a directory")
        schemas.fast_validator_of.cache_clear()
        assert schemas.fast_validator_of("safety-policy.schema.json") is not None
    finally:
        schemas.fast_validator_of.cache_clear()


def test_check_kind_names_what_it_got() -> None:
    with pytest.raises(InputRejected, match="chaos-litmus expects an ExperimentPlan, got a Topology"):
        check_kind({"apiVersion": "chaosgen.dev/v1", "kind": "Topology"}, "ExperimentPlan", "chaos-litmus", "-")
    with pytest.raises(InputRejected, match=r"got apiVersion 'v1' kind 'Pod'"):
        check_kind({"apiVersion": "v1", "kind": "Pod"}, "Topology", "chaos-suggest", "-")
    with pytest.raises(InputRejected, match="got a JSON list"):
        check_kind([1, 2], "Topology", "chaos-suggest", "-")


def test_schema_error_names_the_json_path() -> None:
    topology = {
        "apiVersion": "chaosgen.dev/v1", "kind": "Topology",
        "metadata": {"generator": "test", "source": {"type": "files"}},
        "workloads": [{"id": "bad id"}], "services": [], "dependencies": [],
    }
    with pytest.raises(InputRejected) as caught:
        validate(topology, "Topology", "topo.json")
    assert caught.value.path.startswith("$.workloads[0]")
    assert str(caught.value).startswith("topo.json at $.workloads[0]")
    assert all(path.startswith("$.workloads[0]") for path, _ in all_errors(topology, "Topology"))


def test_dump_json_is_stable() -> None:
    assert dump_json({"b": 1, "a": "é"}) == dump_json(json.loads(dump_json({"b": 1, "a": "é"})))
    assert dump_json({"a": "é"}).endswith("\n") and "é" in dump_json({"a": "é"})


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_and_formatting() -> None:
    with pytest.raises(ValueError):
        parse_duration("10 minutes")
    assert format_duration(90) == "1m30s" and format_duration(0) == "0s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://app:hunter2@db:5432/app", f"postgres://app:{REDACTED}@db:5432/app"),
        ("amqp://guest:guest@rabbitmq:5672", f"amqp://guest:{REDACTED}@rabbitmq:5672"),
        ("host=db password=s3cret user=x", f"host=db password={REDACTED} user=x"),
        ("http://catalogue:80/items", "http://catalogue:80/items"),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_secret_names() -> None:
    assert all(map(is_secret_name, ["DB_PASSWORD", "API_TOKEN", "AWS_SECRET_ACCESS_KEY", "KEY", "api-key"]))
    assert not any(map(is_secret_name, ["DB_HOST", "monkey", "KEYCLOAK_URL", "CATALOGUE_URL"]))
    assert redact_value("DB_PASSWORD", "hunter2") == REDACTED
    assert redact_value("DB_HOST", "db") == "db"
