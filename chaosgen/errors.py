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
