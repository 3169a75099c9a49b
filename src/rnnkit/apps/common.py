"""Small helpers the applications and their command-line verbs share (the lifecycle itself is
:mod:`rnnkit.apps.lifecycle`; reading the user's files is :mod:`rnnkit.data.tables`)."""

from __future__ import annotations

import math
from typing import Any


def format_metrics(values: dict[str, Any]) -> str:
    def show(v):
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    return "  ".join(f"{k} {show(v)}" for k, v in values.items())
