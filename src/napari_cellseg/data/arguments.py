"""Checks of scalar arguments shared by the public functions of :mod:`.data` and :mod:`..inference`.

Each returns the value as a plain Python ``int`` or ``float``, or raises a
``TypeError`` (wrong kind of value) or ``ValueError`` (out of range) that names
the argument and quotes the value. Nothing is clamped: an out-of-range value
is the caller's mistake, not something to fix silently.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_integer(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f">= {minimum}"
        high = "" if maximum is None else f"<= {maximum}"
        raise ValueError(f"{name} must be {' and '.join(filter(None, (low, high)))}, got {value}")
    return value


def check_number(
    value: Any,
    name: str,
    minimum: float | None = None,
    *,
    positive: bool = False,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite ``float``, ``>= minimum`` (``> 0`` with ``positive``) and ``<= maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value:g}")
    return value
