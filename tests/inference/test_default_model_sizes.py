"""The bundled default model's nucleus size estimate on nuclei far larger than it was trained on."""

from __future__ import annotations

import pytest

from napari_cellseg.app import current_model
from napari_cellseg.inference.runtime import default_model_dir

torch = pytest.importorskip("torch")


def test_nuclei_three_times_larger_are_measured_whole_not_as_fragments():
    """c_histology_2 enlarged 3x: nuclei of about 124 px. At the image's own scale alone the
    network cuts them into fragments of about its own size (17 px measured, 0 good cells)."""
    if not current_model.is_model_dir(default_model_dir()):
        pytest.skip(f"no bundled default model at {default_model_dir()}")
    from napari_cellseg.data.size import resize_image
    from napari_cellseg.generators import run_to_end
    from napari_cellseg.inference.images import describe_layout
    from napari_cellseg.inference.runtime import load_default_model
    from napari_cellseg.inference.scale import median_diameter
    from napari_cellseg.inference.segment import iter_estimate_diameter
    from napari_cellseg.inference.tiled import make_runner
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(1)
    model, config = load_default_model(device="cpu")
    image, mask, _ = load_sample("c_histology_2")
    enlarged = resize_image(image, 3.0)
    true_diameter = 3.0 * median_diameter(mask)
    runner = make_runner(model, config, device="cpu")
    estimate = run_to_end(iter_estimate_diameter(runner, config, enlarged, describe_layout(enlarged)))
    assert estimate == pytest.approx(true_diameter, rel=0.2)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 50), (50, 1), (2, 300)])
def test_images_one_or_two_pixels_thin_segment_with_the_size_estimate(shape):
    """The shrunk pass of the size estimate rounded such sides to 0 px: cv2 raised an assertion."""
    import warnings

    import numpy as np

    if not current_model.is_model_dir(default_model_dir()):
        pytest.skip(f"no bundled default model at {default_model_dir()}")
    from napari_cellseg.inference.predict import segment_image
    from napari_cellseg.inference.runtime import load_default_model

    torch.set_num_threads(1)
    model, config = load_default_model(device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SmallImageWarning: expected here
        result = segment_image(model, config, np.full(shape, 100, np.uint8))
    assert result.labels.shape == shape
    assert result.n_instances == 0
