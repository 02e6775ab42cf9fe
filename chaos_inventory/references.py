"""Finding the hosts that a string names: URLs, DSNs, `host:port`, cluster DNS names and bare words.

Pure text work for core.py, which knows the Services and decides what a host resolves to. Only host names and
ports come out of here, never the rest of a value: credentials inside a DSN are dropped while parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPLIT = re.compile(r"[\s,;|&]+")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*(?::[A-Za-z][A-Za-z0-9+.-]*)?)://(?P<authority>[^/?#]*)")
_HOST_PORT = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"
    r"\.?(?::(?P<port>[0-9]{1,5}))?$"
)
# Go's MySQL DSN wraps the address: user:pass@tcp(db:3306)/name.
_WRAPPED = re.compile(r"^[a-z]+\((?P<inner>[^()]*)\)")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$")
_HOST_KEY = re.compile(
    r"(^|_)(HOST|HOSTNAME|HOSTS|URL|URLS|URI|ADDR|ADDRESS|ADDRESSES|SERVICE|SERVER|SERVERS|ENDPOINT|ENDPOINTS|DSN"
    r"|BROKER|BROKERS|UPSTREAM|BACKEND|CONNECTION|CONN|NODES|PEERS|SEEDS)$"
)
# Keys whose values name something that is not a host even when the word equals a Service name
# (POSTGRES_DB=orders, OTEL_SERVICE_NAME=cart, QUEUE=shipping).
_NOT_HOST_KEY = re.compile(
    r"(^|_)(NAME|DB|DATABASE|USER|USERNAME|SCHEMA|TABLE|QUEUE|TOPIC|EXCHANGE|BUCKET|INDEX|LEVEL|MODE|PATH|DIR|FILE"
    r"|ID|PREFIX|PROFILE|PROFILES|ENV|ENVIRONMENT|REGION|VERSION|TAG|LABEL|NAMESPACE|ROLE|GROUP|CHANNEL|LISTEN|BIND"
    r"|PORT)$"
)
# Programs and flags whose next word is a host: `nc -z db 5432`, `pg_isready -h db`, `redis-cli -h cache ping`.
HOST_TAKING_WORDS = frozenset({
    "nc", "ncat", "netcat", "nslookup", "host", "dig", "ping", "curl", "wget", "telnet", "pg_isready", "redis-cli",
    "mysql", "mysqladmin", "mongo", "mongosh", "psql", "-h", "--host", "--hostname", "--server", "--addr",
    "--address", "--endpoint", "--url", "--upstream", "--broker", "--db-host", "--redis-host",
})
SHELL_SEPARATORS = frozenset({";", "&&", "||", "|", "do", "then", "done", "fi", "else"})
LOCAL_HOSTS = frozenset({"localhost", "0.0.0.0", "::", "::1", "127.0.0.1"})
# Words that a host-like key may hold without naming a host (SESSION_REDIS=true, METRICS_BACKEND=none).
NOT_HOSTS = frozenset({
    "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "enabled", "disabled", "default", "auto",
    "local", "memory", "inmemory", "disk", "debug", "info", "warn", "warning", "error",
})
# The last label of a dotted word that is a public or cluster host name; keeps `app.py` or `index.html` out.
_HOST_SUFFIXES = frozenset({
    "com", "net", "org", "io", "dev", "cloud", "app", "co", "info", "biz", "us", "uk", "de", "eu", "local", "internal",
    "svc", "lan", "corp", "home", "cluster", "amazonaws", "azure", "gcp", "aws",
})


@dataclass(frozen=True, slots=True)
class HostRef:
    """A host named in a value: lower-case, no credentials; scheme set when it came from a URL or DSN."""

    host: str
    port: int | None
    scheme: str | None
    key: str | None

    @property
    def hinted(self) -> bool:
        """The key it was found under says it holds a host (DB_HOST, API_URL, --redis-addr...)."""
        return self.key is not None and _HOST_KEY.search(self.key) is not None

    @property
    def excluded_key(self) -> bool:
        return self.key is not None and _NOT_HOST_KEY.search(self.key) is not None and not self.hinted

    @property
    def host_shaped(self) -> bool:
        """Looks like an address by itself: from a URL/DSN, with a port, or a dotted name with a host's suffix."""
        if self.scheme or self.port:
            return True
        labels = self.host.split(".")
        if len(labels) >= 3 and (labels[-1] in _HOST_SUFFIXES or "svc" in labels):
            return True
        return _IPV4.match(self.host) is not None


def normalise_key(key: str) -> str:
    """Flag or key names in the env-var style the key patterns use: --redis-addr -> REDIS_ADDR."""
    return key.lstrip("-").replace("-", "_").replace(".", "_").upper()


def hosts_in_value(value: str, key: str | None = None) -> list[HostRef]:
    """Every host a value names; key is the env var, ConfigMap key or flag it was found under."""
    refs: list[HostRef] = []
    for token in _SPLIT.split(value):
        if token:
            refs.extend(hosts_in_token(token, key))
    return refs


def hosts_in_token(token: str, key: str | None) -> list[HostRef]:
    """The hosts in one word of a value: a URL, key=value, user:pass@host:port/path, host:port or a bare word."""
    token = token.strip("\"'`<>[]{}()")
    url = _URL.match(token)
    if url:
        authority = url.group("authority").rpartition("@")[2]
        scheme = url.group("scheme").lower()
        return [ref for part in authority.split(",") if (ref := _host_port(part, key, scheme, loose=True))]
    if "=" in token:
        name, _, rest = token.partition("=")
        return hosts_in_value(rest, normalise_key(name)) if name and rest else []
    if token.startswith("-"):
        return []
    address = token.rpartition("@")[2]
    wrapped = _WRAPPED.match(address)
    if wrapped:
        address = wrapped.group("inner")
    ref = _host_port(address.partition("/")[0], key, None, loose=False)
    return [ref] if ref else []


def _host_port(text: str, key: str | None, scheme: str | None, loose: bool) -> HostRef | None:
    match = _HOST_PORT.match(text)
    if not match:
        return None
    host = match.group("host")
    # Outside URLs, upper case means prose or a Java class (Error:1, com.example.Main), not a host name.
    if not loose and host != host.lower():
        return None
    host = host.lower()
    last_label = host.rpartition(".")[2]
    if not any(c.isalpha() for c in last_label) and not _IPV4.match(host):
        return None
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        return None
    return HostRef(host, port, scheme, key)


def is_local(host: str) -> bool:
    """The pod itself or a sidecar, never a dependency on another workload."""
    return host in LOCAL_HOSTS or host.startswith("127.")
