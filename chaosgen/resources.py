"""Where the top-level schemas/ and prompts/ directories are, from a checkout or from an installed package."""

from __future__ import annotations

from pathlib import Path


def resource_dir(name: str) -> Path:
    """schemas/ or prompts/: installed as the chaosgen.data.schemas / chaosgen.data.prompts packages by setup.cfg."""
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "data" / name
