"""The bundled default model on a stain it never saw: scikit-image's IHC image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app import current_model
from napari_cellseg.inference.runtime import default_model_dir

torch = pytest.importorskip("torch")

# The model bundled before restaining (experiments.md step 13) found 14 nuclei here.
IHC_NUCLEI_FLOOR = 80


def test_default_model_finds_nuclei_on_an_immunohistochemistry_slide():
    if not current_model.is_model_dir(default_model_dir()):
        pytest.skip(f"no bundled default model at {default_model_dir()}")
    from skimage import data

    from napari_cellseg.inference.runtime import load_default_model
    from napari_cellseg.inference.segment import segment_image

    torch.set_num_threads(1)
    model, config = load_default_model(device="cpu")
    image = data.immunohistochemistry()  # haematoxylin and DAB, colonic glands (CMMI)
    result = segment_image(model, config, image, device="cpu")
    assert result.n_instances >= IHC_NUCLEI_FLOOR, f"{result.n_instances} nuclei found"
    sizes = np.bincount(result.labels.ravel())[1:]
    assert np.median(sizes) < 400, "nuclei, not tissue regions"
