"""Shared by the benchmarks: median wall and CPU time of a function."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()``; CPU time is steadier on a shared machine."""
    if warmup:
        fn()  # imports, caches
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def ms(times: tuple[float, float]) -> str:
    return f"median {times[0] * 1000:.1f} ms wall ({times[1] * 1000:.1f} ms CPU)"
