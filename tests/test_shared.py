"""The shared chaosgen package: hardened document parsing, kind and schema checks, durations and redaction."""

from __future__ import annotations

import json

import pytest

from chaosgen.documents import dump_json, parse_documents
from chaosgen.errors import InputRejected
from chaosgen.schemas import all_errors, check_kind, validate
from chaosgen.secrets import REDACTED, is_secret_name, redact_text, redact_value
from chaosgen.units import format_duration, parse_duration

ALIAS_BOMB = "\n".join(
    [f'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
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
