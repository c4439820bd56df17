"""Long work is a generator of small reports; this drives one to its end."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")

# Frames in files under this folder are the package's own (the driver below, the wrappers).
_PACKAGE_PREFIX = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first line outside napari_cellseg: the user's call.

    A fixed ``stacklevel`` cannot do it from inside a generator: its caller is
    whatever called ``next()``, :func:`run_to_end` for ``segment_image`` but the
    user's own loop for ``iter_segment_image``. Python 3.12's
    ``warnings.warn(skip_file_prefixes=...)`` does the same walk; 3.11 has none.
    """
    frame, level = sys._getframe(1), 2  # level 1 is this function, 2 the one that warns
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_PREFIX):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
