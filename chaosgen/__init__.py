"""Shared pieces of the ChaosGen stages: document I/O, schemas, errors, the safety policy and the CLI boundary."""

from __future__ import annotations

__version__ = "0.1.0"
API_VERSION = "chaosgen.dev/v1"
