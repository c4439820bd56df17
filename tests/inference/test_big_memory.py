"""Big images: the heap's free pages go back to the system after each block."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.inference import big


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _has_malloc_trim() -> bool:
    try:
        ctypes.CDLL(None).malloc_trim  # noqa: B018
    except (OSError, TypeError, AttributeError):
        return False
    return Path("/proc/self/status").exists()


@pytest.mark.skipif(not _has_malloc_trim(), reason="glibc's malloc_trim and /proc only")
def test_freed_heap_pages_are_handed_back():
    # 64 KiB arrays come from the heap (under glibc's mmap threshold); the last one kept
    # pins the heap's top, so glibc keeps the 150 MB freed below it resident by itself.
    arrays = [np.ones(64 * 1024, np.uint8) for _ in range(2400)]
    last = arrays[-1]
    del arrays
    before = _resident_mb()
    big.release_free_memory()
    assert _resident_mb() < before - 100
    assert last.all()


def test_each_block_releases_what_it_freed(tmp_path, monkeypatch):
    from napari_cellseg.inference.runtime import TileRunner, resolve_model

    class ConstantRunner(TileRunner):  # a stand-in network, passed through as the runner
        def __init__(self):
            self.align, self.optimize = 16, False

        def default_batch_size(self) -> int:
            return 2

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return np.full((batch.shape[0], 3, *batch.shape[2:]), 1 / 3, np.float32)

    _, config = resolve_model(None, device="cpu")
    calls = []
    monkeypatch.setattr(big, "release_free_memory", lambda: calls.append(1))
    image = np.random.default_rng(0).integers(0, 255, (130, 200), np.uint8)
    big.segment_big(
        ConstantRunner(), config, image, tmp_path / "labels.zarr", block_size=64, scale_factor=1.0
    )
    assert len(calls) == 2 * 3 * 4  # after each of the 3 x 4 blocks, predicted then segmented
