"""Fixtures shared by every test tier.

``shared_data`` is the real DSB 2018 pool beside the checkout (``../shared/data``);
tests that need it skip with a clear reason where it is absent (a user's clone).
The package's own sample data (``napari_cellseg.sample_data``) carries the core suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Writable config/cache for napari and friends, and no model hub.
for _var, _sub in (
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_CACHE_HOME", "cache"),
    ("MPLCONFIGDIR", "matplotlib"),
):
    os.environ.setdefault(_var, str(REPO_ROOT / ".xdg" / _sub))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyqt6")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``, or skip."""
    if not (SHARED_DATA / "dsb2018-dev" / "manifest.csv").is_file():
        pytest.skip(f"needs the shared DSB 2018 data at {SHARED_DATA} (absent in this clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dataset_dir() -> Path:
    """The package's sample data folder: a valid dataset (images/, masks/, manifest.csv)."""
    from napari_cellseg.sample_data import SAMPLE_DIR

    return SAMPLE_DIR


# Under Xvfb, napari's OpenGL is Mesa's llvmpipe, which maps its own libLLVM; loading
# triton's LLVM after it (``import torch._dynamo``, done by timm and torchvision) segfaults
# the test process. Loading triton first, before any viewer exists, is safe (0.2 s). The
# plugin's widgets guard themselves (napari_cellseg._qt._workers.avoid_llvm_clash).
try:
    import triton  # noqa: F401
except ImportError:  # no triton (CPU-only or non-Linux torch builds)
    pass
