"""Fixtures shared by every test tier.

``shared_data`` is the real DSB 2018 pool beside the checkout (``../shared/data``);
tests that need it skip with a clear reason where it is absent (a user's clone).
The package's own sample data (``napari_cellseg.sample_data``) carries the core suite.
"""

from __future__ import annotations

import importlib.util
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


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every test has a settings file of its own and no current model chosen in this process."""
    from napari_cellseg.app import current_model

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setattr(current_model, "_current", None)
    monkeypatch.setattr(current_model, "_listeners", [])


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


def build_tiny_dataset(root, crops_per_c_image: int = 4):
    """The six package samples plus quadrant crops of the two C images, saved as a dataset.

    3 A, 1 B and ``2 + 2 * crops_per_c_image`` C images: enough C images for
    the default 90/5/5 split (dev and test get one C image each). Crops of one
    field are near-duplicates: split with ``grouping=False`` for exact counts.
    """
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import list_samples, load_sample

    for key in list_samples():
        image, mask, sample = load_sample(key)
        add_to_dataset(root, sample.id, image, mask, sample.microscope)
        if sample.microscope != "C":
            continue
        h, w = mask.shape
        corners = [(0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)][:crops_per_c_image]
        for index, (y, x) in enumerate(corners):
            crop = (slice(y, y + h // 2), slice(x, x + w // 2))
            add_to_dataset(root, f"{key}_crop{index}", image[crop], mask[crop], "C")
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A dataset folder of 14 images (3 A, 1 B, 10 C) from the package samples (see build_tiny_dataset)."""
    return build_tiny_dataset(tmp_path / "tiny-dataset")


@pytest.fixture(scope="session")
def load_script():
    """A function that imports ``scripts/<name>.py`` (scripts are not a package) as a module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
