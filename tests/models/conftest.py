"""Fixtures for the model tests: a tiny random M2 and the bundled default M2, loaded once."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

TINY_ARCH = "mobilenetv3_small_050"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_m2_dir(tmp_path_factory):
    """An M2 directory of a tiny timm architecture with random weights (10 classes)."""
    from napari_cellseg.models.m2 import M2Config, build_classifier, save_m2

    torch.manual_seed(0)
    model = build_classifier(TINY_ARCH, num_classes=10).eval()
    config = M2Config(arch=TINY_ARCH, num_classes=10, name="tiny", source="random init (tests)")
    return save_m2(tmp_path_factory.mktemp("m2") / "tiny", model, config)


@pytest.fixture(scope="session")
def tiny_m2(tiny_m2_dir):
    """``(model, config)`` of the tiny M2."""
    from napari_cellseg.models.m2 import load_m2

    return load_m2(tiny_m2_dir)


@pytest.fixture(scope="session")
def default_m2():
    """``(model, config)`` of the bundled default M2 (EfficientNet-Lite0)."""
    from napari_cellseg.models.m2 import load_m2

    return load_m2()
