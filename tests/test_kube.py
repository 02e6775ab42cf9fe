"""chaosgen.kube against a tiny local HTTPS "API server" (no control plane needed).

Credentials reloaded once on a 401 (token file, exec plugin), the KUBECONFIG path named when it does not exist, no
temporary certificate file left behind, paginated LIST, streamed watches that resume and relist, and the one
formatter of ClusterErrors.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from chaosgen import kube
from chaosgen.errors import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterInvalid,
    ClusterNotFound,
    ClusterTimeout,
    ClusterUnauthorized,
    ClusterUnreachable,
    KubeconfigError,
)
from tests.sandbox import pki


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """Answers by route: route(request) -> (status, body) or an iterator of lines sent chunk by chunk (a watch)."""

    url: str
    ca: pki.KeyPair
    client: pki.KeyPair
    route: Callable[[Request], Any] = lambda request: (404, {"kind": "Status", "message": "no route"})
    requests: list[Request] = field(default_factory=list)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApi]:
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    ca = pki.new_ca(pki_dir)
    server_pair = pki.issue(ca, pki_dir, "server", "fake-apiserver", hosts=("127.0.0.1",))
    client_pair = pki.issue(ca, pki_dir, "client", "tester")
    fake: FakeApi

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def handle_any(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, split.path, {k: v[0] for k, v in parse_qs(split.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            fake.requests.append(request)
            answer = fake.route(request)
            if isinstance(answer, tuple):
                status, body = answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in answer:
                data = (json.dumps(line) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = handle_any  # noqa: N815 - the names http.server dispatches to

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pair.cert, server_pair.key)
    context.load_verify_locations(ca.cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake = FakeApi(f"https://127.0.0.1:{server.server_address[1]}", ca, client_pair)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "fake", "user": user}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    return path


def bearer_only(token: str) -> Callable[[Request], Any]:
    def route(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {token}":
            return 401, {"kind": "Status", "code": 401, "message": "Unauthorized"}
        return 200, {"kind": "PodList", "metadata": {}, "items": [{"metadata": {"name": "a"}}]}
    return route


# --- credentials ----------------------------------------------------------------------------------------------


def test_a_rotated_token_file_is_read_again_after_a_401(api: FakeApi, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"tokenFile": str(token)},
                              {"certificate-authority-data": b64(api.ca.cert)})
    client = kube.connect(str(config), None, "test")
    token.write_text("new")
    api.route = bearer_only("new")

    assert client.request("GET", "/api/v1/pods", "list pods")["items"] == [{"metadata": {"name": "a"}}]
    assert [r.headers["authorization"] for r in api.requests] == ["Bearer old", "Bearer new"]


def test_an_exec_plugin_runs_again_after_a_401_and_a_second_401_is_unauthorized(api: FakeApi, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, pathlib, sys\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "runs = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(runs))\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        "                  'status': {'token': f'token-{runs}'}}))\n")
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(plugin)],
        "interactiveMode": "Never"}}, {"certificate-authority-data": b64(api.ca.cert)})
    client = kube.connect(str(config), None, "test")
    api.route = bearer_only("token-2")
    assert client.request("GET", "/api/v1/pods", "list pods")["kind"] == "PodList"

    api.route = bearer_only("never")
    with pytest.raises(ClusterUnauthorized) as raised:
        client.request("GET", "/api/v1/pods", "list pods")
    assert [r.headers["authorization"] for r in api.requests] == [
        "Bearer token-1", "Bearer token-2", "Bearer token-2", "Bearer token-3"]
    assert str(raised.value) == (f"the Kubernetes API at {api.url} does not accept the credentials of context 'fake' "
                                 "(401 Unauthorized: expired or invalid)")


@pytest.mark.parametrize("how", ["argument", "environment", "several"])
def test_a_kubeconfig_that_does_not_exist_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    missing = str(tmp_path / "nope")
    if how == "argument":
        given, named = missing, missing
        monkeypatch.delenv("KUBECONFIG", raising=False)
    else:
        named = missing if how == "environment" else f"{missing}{os.pathsep}{tmp_path / 'neither'}"
        given = None
        monkeypatch.setenv("KUBECONFIG", named)
    with pytest.raises(KubeconfigError) as raised:
        kube.connect(given, None, "test")
    assert str(raised.value) == f"cannot load kubeconfig {named}: no such file"


def test_an_unknown_context_names_the_ones_there_are(api: FakeApi, tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": "t"})
    with pytest.raises(KubeconfigError) as raised:
        kube.connect(str(config), "elsewhere", "test")
    assert str(raised.value) == f"cannot load kubeconfig {config}: context 'elsewhere' is not in it (contexts: fake)"


def test_without_any_kubeconfig_a_pod_uses_its_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # Not in a pod here, so the service account's files are missing: the error says which source was tried.
    with pytest.raises(KubeconfigError, match="^cannot load the in-cluster service account: Service token file"):
        kube.connect(None, None, "test")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(KubeconfigError, match="^cannot load kubeconfig ~/.kube/config: no such file$"):
        kube.connect(None, None, "test")


def test_no_temporary_certificate_file_is_left_behind(api: FakeApi, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url,
                              {"client-certificate-data": b64(api.client.cert), "client-key-data": b64(api.client.key)},
                              {"certificate-authority-data": b64(api.ca.cert)})
    seen: list[list[str]] = []

    def route(request: Request) -> Any:
        seen.append(sorted(p.name for p in temp.rglob("*")))
        return 200, {"kind": "Status", "major": "1"}

    api.route = route
    client = kube.connect(str(config), None, "test")
    assert client.version() == {"kind": "Status", "major": "1"}
    assert seen == [[]] and list(temp.iterdir()) == []


def test_the_client_certificate_is_presented_and_the_server_certificate_verified(api: FakeApi, tmp_path: Path) -> None:
    wrong_ca = pki.new_ca(tmp_path)
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": "t"},
                              {"certificate-authority-data": b64(wrong_ca.cert)})
    api.route = lambda request: (200, {})
    with pytest.raises(ClusterUnreachable, match="TLS failed: .*CERTIFICATE_VERIFY_FAILED"):
        kube.connect(str(config), None, "test").version()


# --- requests -------------------------------------------------------------------------------------------------


@pytest.fixture
def client(api: FakeApi, tmp_path: Path) -> kube.Kube:
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": "secret-token"},
                              {"certificate-authority-data": b64(api.ca.cert)})
    return kube.connect(str(config), None, "test-agent")


def test_list_pages_follow_continue(api: FakeApi, client: kube.Kube) -> None:
    def route(request: Request) -> Any:
        if "continue" not in request.query:
            return 200, {"metadata": {"continue": "page2"}, "items": [{"n": 1}]}
        return 200, {"metadata": {}, "items": [{"n": 2}]}

    api.route = route
    pages = list(client.list_pages("/api/v1/pods", "list pods", {"labelSelector": "app=x"}, page_size=1))
    assert [item["n"] for page in pages for item in page["items"]] == [1, 2]
    assert [r.query for r in api.requests] == [{"labelSelector": "app=x", "limit": "1"},
                                               {"labelSelector": "app=x", "limit": "1", "continue": "page2"}]
    assert {r.headers["user-agent"] for r in api.requests} == {"test-agent"}


def test_apply_is_a_server_side_apply_as_chaosgen(api: FakeApi, client: kube.Kube) -> None:
    api.route = lambda request: (200, json.loads(request.body))
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    assert client.apply(kube.api_path("v1", "configmaps", "n", "c"), obj, "apply ConfigMap n/c",
                        dry_run=True, strict=True) == obj
    (request,) = api.requests
    assert (request.method, request.path) == ("PATCH", "/api/v1/namespaces/n/configmaps/c")
    assert request.query == {"fieldManager": "chaosgen", "force": "true", "dryRun": "All", "fieldValidation": "Strict"}
    assert request.headers["content-type"] == "application/apply-patch+yaml"


def test_create_posts_the_object_as_chaosgen(api: FakeApi, client: kube.Kube) -> None:
    api.route = lambda request: (201, json.loads(request.body))
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    assert client.create(kube.api_path("v1", "namespaces"), obj, "create Namespace n", dry_run=True) == obj
    (request,) = api.requests
    assert (request.method, request.path, request.query) == (
        "POST", "/api/v1/namespaces", {"fieldManager": "chaosgen", "dryRun": "All"})
    api.route = lambda request: (409, {"kind": "Status", "code": 409, "message": "namespaces \"n\" already exists"})
    with pytest.raises(ClusterConflict, match='^cannot create Namespace n: conflict: namespaces "n" already exists$'):
        client.create(kube.api_path("v1", "namespaces"), obj, "create Namespace n")


def test_get_and_delete_of_a_missing_object_are_none(api: FakeApi, client: kube.Kube) -> None:
    api.route = lambda request: (404, {"kind": "Status", "code": 404, "message": "configmaps \"c\" not found"})
    assert client.get("/api/v1/namespaces/n/configmaps/c", "get ConfigMap n/c") is None
    assert client.delete("/api/v1/namespaces/n/configmaps/c", "delete ConfigMap n/c") is None
    with pytest.raises(ClusterNotFound):
        client.apply("/api/v1/namespaces/n/configmaps/c", {}, "apply ConfigMap n/c")


def test_discovery_finds_plural_and_scope_and_looks_again_for_a_new_kind(api: FakeApi, client: kube.Kube) -> None:
    resources = [{"name": "chaosengines", "kind": "ChaosEngine", "namespaced": True},
                 {"name": "chaosengines/status", "kind": "ChaosEngine", "namespaced": True}]
    api.route = lambda request: (200, {"kind": "APIResourceList", "resources": resources})
    engine = client.resource("litmuschaos.io/v1alpha1", "ChaosEngine")
    assert engine.path("shop", "e") == "/apis/litmuschaos.io/v1alpha1/namespaces/shop/chaosengines/e"
    with pytest.raises(ClusterNotFound, match="litmuschaos.io/v1alpha1 has no kind ChaosResult"):
        client.resource("litmuschaos.io/v1alpha1", "ChaosResult")
    assert len(api.requests) == 2


def test_transient_failures_are_retried_for_retry_for_seconds(api: FakeApi, client: kube.Kube) -> None:
    answers = iter([(503, {"message": "restarting"}), (429, {"message": "slow down"}), (200, {"ok": True})])
    api.route = lambda request: next(answers)
    client.retry_for = 10
    assert client.request("GET", "/version", "read the server version") == {"ok": True}
    api.route = lambda request: (503, {"message": "still restarting"})
    client.retry_for = 0
    with pytest.raises(ClusterError, match="HTTP 503: still restarting") as raised:
        client.version()
    assert raised.value.transient


def test_watch_streams_events_resumes_and_lists_again_after_410(api: FakeApi, client: kube.Kube) -> None:
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    watches: list[str | None] = []

    def route(request: Request) -> Any:
        if request.query.get("watch") != "true":
            lists = sum(1 for r in api.requests if r.query.get("watch") != "true")
            return 200, {"metadata": {"resourceVersion": str(lists * 10)},
                         "items": [{"metadata": {"name": f"listed-{lists}", "resourceVersion": str(lists * 10)}}]}
        watches.append(request.query.get("resourceVersion"))
        if len(watches) == 1:
            return iter([{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "11"}}},
                         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}])
        if len(watches) == 2:
            return iter([{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}])
        stop.set()
        return iter([{"type": "DELETED", "object": {"metadata": {"name": "b", "resourceVersion": "21"}}}])

    api.route = route
    client.list_and_watch("/api/v1/namespaces/n/pods", "watch Pod in n",
                          lambda kind, obj, at: seen.append((kind, obj.get("metadata", {}).get("name", ""))), stop,
                          {"labelSelector": "app=x"})
    assert seen == [("SYNC", "listed-1"), ("SYNCED", ""), ("ADDED", "a"), ("SYNC", "listed-2"), ("SYNCED", "")]
    assert watches == ["10", "12", "20"]
    assert all(r.query["labelSelector"] == "app=x" for r in api.requests)


def test_setting_stop_ends_a_quiet_watch_at_once(api: FakeApi, client: kube.Kube) -> None:
    release = threading.Event()

    def quiet() -> Iterator[dict[str, Any]]:
        yield {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "1"}}}
        release.wait(30)

    api.route = lambda request: quiet()
    stop = threading.Event()
    events = client.watch("/api/v1/pods", "watch Pod", stop)
    assert next(events)["type"] == "ADDED"
    threading.Timer(0.3, stop.set).start()
    assert list(events) == []
    release.set()


# --- the one formatter ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls", "message"), [
    (400, ClusterInvalid, "the API server rejects ChaosEngine shop/e: spec.x: Invalid value"),
    (422, ClusterInvalid, "the API server rejects ChaosEngine shop/e: spec.x: Invalid value"),
    (401, ClusterUnauthorized, ("the Kubernetes API at https://k does not accept the credentials of context 'c' "
                                "(401 Unauthorized: expired or invalid)")),
    (403, ClusterForbidden, "forbidden: context 'c' is not allowed to apply ChaosEngine shop/e: spec.x: Invalid value"),
    (404, ClusterNotFound, "cannot apply ChaosEngine shop/e: not found at https://k: spec.x: Invalid value"),
    (409, ClusterConflict, "cannot apply ChaosEngine shop/e: conflict: spec.x: Invalid value"),
    (503, ClusterError, ("the Kubernetes API at https://k failed to apply ChaosEngine shop/e: HTTP 503: "
                         "spec.x: Invalid value")),
])
def test_each_status_is_a_typed_error_with_a_one_line_message(status: int, cls: type, message: str) -> None:
    body = json.dumps({"kind": "Status", "message": "spec.x:\n  Invalid value"})
    error = kube.status_error(status, body, "apply ChaosEngine shop/e", "https://k", "c")
    assert type(error) is cls and error.exit_code == 4
    assert str(error) == message
    assert str(error.with_hint("do this")) == f"{message}; do this"


def test_transport_failures_are_unreachable_or_timeout(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", {"token": "secret-token"})
    with pytest.raises(ClusterUnreachable) as raised:
        kube.connect(str(config), None, "test").version()
    assert str(raised.value).startswith(f"cannot reach the Kubernetes API at http://127.0.0.1:{port}: ")
    assert "Connection refused" in str(raised.value) and "secret-token" not in str(raised.value)
    assert raised.value.transient and ClusterTimeout("get x", "https://k").transient
    assert str(ClusterError("list pods", "https://k", "", "boom", 500)) == \
        "the Kubernetes API at https://k failed to list pods: HTTP 500: boom"


# --- chaos-watch's Cluster on top of it -----------------------------------------------------------------------


def test_the_chaos_watch_cluster_resolves_kinds_and_stops_engines_through_kube(api: FakeApi, tmp_path: Path) -> None:
    from chaos_watch.cluster import KubernetesCluster

    discovery = {
        "/apis/litmuschaos.io/v1alpha1": [{"name": "chaosengines", "kind": "ChaosEngine", "namespaced": True}],
        "/apis/apiextensions.k8s.io/v1": [{"name": "customresourcedefinitions", "kind": "CustomResourceDefinition",
                                           "namespaced": False}],
    }

    def route(request: Request) -> Any:
        if request.path in discovery:
            return 200, {"kind": "APIResourceList", "resources": discovery[request.path]}
        if request.path.endswith("/missing"):
            return 404, {"kind": "Status", "code": 404, "message": "not found"}
        return 200, {"kind": "Echo", "method": request.method}

    api.route = route
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": "t"},
                              {"certificate-authority-data": b64(api.ca.cert)})
    cluster = KubernetesCluster(str(config), None)
    cluster.stop_engine("shop", "e")
    assert cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "ignored", "missing") is None
    cluster.delete("litmuschaos.io/v1alpha1", "ChaosEngine", "shop", "e")
    calls = [(r.method, r.path, r.query, r.headers.get("content-type"), r.body) for r in api.requests
             if r.path not in discovery]
    assert calls == [
        ("PATCH", "/apis/litmuschaos.io/v1alpha1/namespaces/shop/chaosengines/e", {"fieldManager": "chaosgen"},
         "application/merge-patch+json", b'{"spec":{"engineState":"stop"}}'),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/missing", {}, None, b""),
        ("DELETE", "/apis/litmuschaos.io/v1alpha1/namespaces/shop/chaosengines/e", {"propagationPolicy": "Background"},
         None, b""),
    ]
    assert [r.path for r in api.requests if r.path in discovery] == list(discovery)
