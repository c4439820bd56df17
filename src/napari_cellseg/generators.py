"""Long work is a generator of small reports; this drives one to its end."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


def run_to_end(generator: Generator[Any, None, R], callback: Callable[[Any], None] | None = None) -> R:
    """Exhaust a report generator, passing each report to ``callback``; return its value.

    This is the synchronous wrapper behind every ``iter_*``/``run_*`` pair (CLI, tests).
    """
    while True:
        try:
            report = next(generator)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(report)
