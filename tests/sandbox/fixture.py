"""pytest fixtures for tests marked `sandbox`: one real control plane per test session.

Wired into tests/conftest.py. The build (tests/sandbox/build.sh, cached) and the start happen on first use; a
failure there errors every sandbox test instead of skipping it, so CI cannot pass without a working sandbox.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from .sandbox import Sandbox, build, start

# Seconds before a new pod becomes Ready: long enough that recovery after a kill is measurable, short enough
# that waiting for rollouts stays cheap.
READY_DELAY = 1.0
_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The running sandbox: kubeconfigs (admin, read-only), bin_dir (kubectl), apply(), run_kubectl(), env()."""
    running = start(build(), nodes=3, ready_delay=READY_DELAY)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def sandbox_namespace(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards (without waiting, so the next test is not slowed)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"t{next(_namespaces)}-{request.node.name.lower()}")[:63].strip("-")
    sandbox.run_kubectl("create", "namespace", name)
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    sandbox.run_kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    yield name
    sandbox.run_kubectl("delete", "namespace", name, "--wait=false", check=False)
