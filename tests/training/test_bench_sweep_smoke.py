"""benchmarks/bench_sweep.py still runs: its stand-in training must leave what a sweep checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sweep.py"


@pytest.mark.skipif(not SCRIPT.is_file(), reason=f"{SCRIPT} is not in this checkout")
def test_the_sweep_benchmark_prints_its_figures():
    done = subprocess.run([sys.executable, str(SCRIPT), "--points", "2", "--runs", "1"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resume over finished sweep:" in done.stdout
    assert "as a one-run sweep:" in done.stdout
