"""Typed errors that the CLI boundary maps to exit codes (see README, "Exit codes")."""

from __future__ import annotations


class ChaosGenError(Exception):
    """Base of every error a stage raises on purpose; exit_code is what the command exits with."""

    exit_code = 1


class UsageError(ChaosGenError):
    """The command line is wrong (exit 2)."""

    exit_code = 2


class InputRejected(ChaosGenError):
    """The input is not JSON/YAML, has the wrong kind or fails its schema (exit 3).

    source names the file (or <stdin>), path the JSON path inside the document.
    """

    exit_code = 3

    def __init__(self, message: str, source: str | None = None, path: str | None = None) -> None:
        self.message = message
        self.source = source
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source
        if self.path and self.path != "$":
            where = f"{where} at {self.path}" if where else f"at {self.path}"
        return f"{where}: {self.message}" if where else self.message


class PolicyViolation(InputRejected):
    """An experiment breaks a rule of the safety policy; rule names it (exit 3)."""

    def __init__(self, rule: str, message: str, source: str | None = None, path: str | None = None) -> None:
        self.rule = rule
        super().__init__(f"policy rule {rule}: {message}", source, path)


class EnvironmentFailure(ChaosGenError):
    """Something outside us failed: cluster, LLM or Prometheus unreachable, auth, timeout (exit 4)."""

    exit_code = 4


class KubeconfigError(EnvironmentFailure):
    """The kubeconfig (or the in-cluster service account) cannot give a usable cluster and context (exit 4)."""


# Overloaded or restarting: worth another try.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class ClusterError(EnvironmentFailure):
    """A request to the Kubernetes API failed (exit 4); raised by chaosgen.kube for every stage.

    str() is the one-line message the user sees: `template` of the subclass filled from the fields, plus the hint
    the calling stage added (which RBAC rule to grant, which CRD to install). action says what was being done,
    e.g. "list deployments.apps (cluster-wide)" or "apply ChaosEngine shop/web-pod-delete".
    """

    template = "the Kubernetes API at {server} failed to {action}: HTTP {status}: {detail}"

    def __init__(self, action: str, server: str, context: str = "", detail: str = "", status: int | None = None,
                 hint: str = "") -> None:
        self.action, self.server, self.context = action, server, context
        self.detail, self.status, self.hint = detail, status, hint
        super().__init__(str(self))

    @property
    def transient(self) -> bool:
        """Worth retrying: no connection or no answer yet, or the server is overloaded or restarting (429, 5xx)."""
        return self.status in TRANSIENT_STATUS or isinstance(self, (ClusterUnreachable, ClusterTimeout))

    def with_hint(self, hint: str) -> ClusterError:
        """The same error with what the user can do about it appended (the stage knows, the client does not)."""
        return type(self)(self.action, self.server, self.context, self.detail, self.status, hint)

    def __str__(self) -> str:
        identity = f"context {self.context!r}" if self.context else "the in-cluster service account"
        subject = self.action.partition(" ")[2] or self.action
        message = self.template.format(server=self.server, action=self.action, subject=subject, identity=identity,
                                       status=self.status, detail=self.detail or "no details")
        return " ".join(f"{message}; {self.hint}".split() if self.hint else message.split())


class ClusterUnreachable(ClusterError):
    """No connection to the API server (refused, DNS, TLS handshake); transient while it restarts."""

    template = "cannot reach the Kubernetes API at {server}: {detail}"


class ClusterTimeout(ClusterError):
    """The API server accepted the connection but did not answer in time."""

    template = "the Kubernetes API at {server} did not answer in time to {action}: {detail}"


class ClusterUnauthorized(ClusterError):
    """401 even after the credentials were reloaded: expired or invalid."""

    template = ("the Kubernetes API at {server} does not accept the credentials of {identity} "
                "(401 Unauthorized: expired or invalid)")


class ClusterForbidden(ClusterError):
    """403: RBAC does not allow the identity what the stage needs."""

    template = "forbidden: {identity} is not allowed to {action}: {detail}"


class ClusterNotFound(ClusterError):
    """404: the object, its namespace, or its kind (CRD not installed, API group not served) does not exist."""

    template = "cannot {action}: not found at {server}: {detail}"


class ClusterConflict(ClusterError):
    """409: the object changed meanwhile, or already exists."""

    template = "cannot {action}: conflict: {detail}"


class ClusterInvalid(ClusterError):
    """400/422: the API server rejects the object itself (schema, admission, strict field validation)."""

    template = "the API server rejects {subject}: {detail}"


class HypothesisDeviated(ChaosGenError):
    """An experiment deviated from its hypothesis or was aborted (exit 5)."""

    exit_code = 5


class Interrupted(ChaosGenError):
    """SIGINT/SIGTERM (exit 130)."""

    exit_code = 130


class PrometheusUnreachable(EnvironmentFailure):
    """Prometheus did not answer usefully: refused, timed out, 5xx/429 after the retries, or not its API (exit 4)."""


class PrometheusQueryRejected(InputRejected):
    """Prometheus refused a query as invalid (HTTP 400/422, bad_data or execution): the query's fault (exit 3)."""
