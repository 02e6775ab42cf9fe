"""The upstream LitmusChaos ChaosExperiment definitions vendored in chaos_litmus/experiments/ (package data).

Read by the CLI for --with-experiments and --with-rbac (a fault's RBAC comes from its definition's permissions);
never from ../shared, so an installed chaos-litmus works anywhere.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from chaosgen.faults import FAULTS

# Our own vendored files, so libyaml's safe loader (several times faster than the pure-Python one) is enough.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=1)
def definitions() -> dict[str, dict[str, Any]]:
    """Fault type -> its ChaosExperiment (the catalogue's litmus_experiment), one file per fault."""
    found: dict[str, dict[str, Any]] = {}
    folder = resources.files("chaos_litmus").joinpath("experiments")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            for document in yaml.load_all(entry.read_text(encoding="utf-8"), Loader=_SAFE_LOADER):
                if document and document.get("kind") == "ChaosExperiment":
                    found[document["metadata"]["name"]] = document
    return {fault.name: found[fault.litmus_experiment] for fault in FAULTS}
