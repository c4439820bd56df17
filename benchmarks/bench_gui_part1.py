"""How long the Annotate / Dataset / Review panels keep napari busy.

The panels run core work in a thread worker; what still runs on the GUI thread
is applying a result to a layer (one undoable ``data_setitem``) and moving
reports through Qt signals. This prints, as medians of several runs:

- GUI-thread time of an undoable in-place edit of a Labels layer (every pixel
  changed: the worst case of "Cells -> boundary annotation" on an existing
  layer) at 1024x1024 and 2048x2048, and of undo;
- worker time of the conversions, "Add boundary between touching cells" and
  "Compare" on a 1024x1024 image with ~500 touching cells;
- thread-worker overhead: start-to-result latency of an empty job, and
  reports per second through ``run_task``.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui_part1.py
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_API", "pyqt6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _synthetic_cells import random_cells

REPEATS = 5


def median_time(function, repeats: int = REPEATS, setup=None) -> float:
    times = []
    for _ in range(repeats):
        state = setup() if setup is not None else None
        start = time.perf_counter()
        function(state) if setup is not None else function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layer_edits() -> None:
    from napari.layers import Labels

    from napari_cellseg._qt._layers import replace_labels

    for size in (1024, 2048):
        cells = random_cells((size, size), n_cells=500 * (size // 1024) ** 2)
        target = np.where(cells > 0, 2, 1).astype(np.uint8)  # every pixel changes

        def fresh(target=target, size=size):
            return Labels(np.zeros((size, size), np.uint8))

        edit = median_time(lambda layer, target=target: replace_labels(layer, target), setup=fresh)

        def edited(target=target, size=size):
            layer = Labels(np.zeros((size, size), np.uint8))
            replace_labels(layer, target)
            return layer

        undo = median_time(lambda layer: layer.undo(), setup=edited)
        changed = int(np.count_nonzero(target))
        print(
            f"GUI thread, undoable edit of a {size}x{size} Labels layer ({changed} px changed): "
            f"{edit * 1000:.0f} ms; undo {undo * 1000:.0f} ms"
        )


def core_steps() -> None:
    from napari_cellseg.app.annotation import (
        annotation_from_instances,
        instances_from_annotation,
        touching_boundary_pixels,
    )
    from napari_cellseg.app.review import compare_labels

    cells = random_cells((1024, 1024), n_cells=500)
    annotation = annotation_from_instances(cells)[0]
    blob = np.where(cells > 0, 2, 0).astype(np.uint8)
    pred = cells.copy()
    pred[pred % 7 == 0] = 0  # some misses
    steps = {
        "Cells -> boundary annotation": lambda: annotation_from_instances(cells),
        "Boundary annotation -> cells": lambda: instances_from_annotation(annotation),
        "Add boundary between touching cells (cells layer)": lambda: touching_boundary_pixels(blob, cells),
        "Add boundary between touching cells (annotation only)": lambda: touching_boundary_pixels(annotation),
        "Compare (metrics + error maps)": lambda: compare_labels(cells, pred),
    }
    n = int(cells.max())
    for name, step in steps.items():
        print(f"worker, {name}, 1024x1024 with {n} cells: {median_time(step) * 1000:.0f} ms")


def worker_overhead() -> None:
    from qtpy.QtWidgets import QApplication

    from napari_cellseg._qt._workers import run_task

    app = QApplication.instance() or QApplication([])

    def empty():
        return 1
        yield  # a generator with no report

    def reports(n):
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Step:
            done: int
            total: int

        for i in range(n):
            yield Step(i + 1, n)
        return n

    def run(function, *args) -> float:
        start = time.perf_counter()
        task = run_task(function, *args, title="bench", show_progress=True)
        while not task.finished:
            app.processEvents()
            time.sleep(0.0005)
        return time.perf_counter() - start

    with contextlib.redirect_stderr(io.StringIO()):  # no viewer: tqdm would print the bars
        latency = statistics.median(run(empty) for _ in range(REPEATS))
        n = 2000
        rate = n / statistics.median(run(reports, n) for _ in range(REPEATS))
    print(f"run_task: start-to-result latency of an empty job {latency * 1000:.1f} ms")
    print(f"run_task: {rate:,.0f} reports/s through the progress bar and Qt signals")


def main() -> None:
    print(f"napari-cellseg GUI panels (Annotate/Dataset/Review), median of {REPEATS} runs, one CPU thread")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    layer_edits()
    core_steps()
    worker_overhead()


if __name__ == "__main__":
    main()
