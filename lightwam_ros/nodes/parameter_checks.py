"""Checks shared by the nodes' parameter parsers: a bad parameter stops start-up with its name."""
from __future__ import annotations

import math
from typing import Any


def finite_number(name: str, value: Any) -> float:
    """``value`` as a float; ValueError naming the parameter when it is not a finite number
    (bools are refused: YAML's ``true`` must not become a rate of 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"parameter {name} must be finite, got {value}")
    return value
