"""The LitmusChaos API every stage renders, applies or watches: one place for its group and version."""

from __future__ import annotations

LITMUS_GROUP = "litmuschaos.io"
LITMUS_API_VERSION = f"{LITMUS_GROUP}/v1alpha1"
