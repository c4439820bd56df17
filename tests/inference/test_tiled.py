"""Tile size, overlap and batch size are checked, never silently clamped."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.batch import SegmentOptions
from napari_cellseg.inference.predict import predict_probabilities, segment_image
from napari_cellseg.inference.tiling import tile_grid

torch = pytest.importorskip("torch")

BAD_TILING = [
    # tile_size 0 or negative was turned into 8-px tiles at a 1-px step (minutes of work).
    ({"tile_size": 0}, ValueError, r"tile_size must be >= 32, got 0"),
    ({"tile_size": -512}, ValueError, r"tile_size must be >= 32, got -512"),
    # overlap >= tile_size was clamped to tile_size - 1: one tile per pixel.
    ({"tile_size": 64, "overlap": 64}, ValueError, r"overlap must be in \[0, 32\].*got 64"),
    ({"overlap": -64}, ValueError, r"overlap must be >= 0, got -64"),
    # batch_size -1 gave no tile at all, then all-NaN probabilities.
    ({"batch_size": -1}, ValueError, r"batch_size must be >= 1, got -1"),
    ({"batch_size": 0}, ValueError, r"batch_size must be >= 1, got 0"),
    ({"tile_size": 64.5}, TypeError, r"tile_size must be an integer, got 64.5"),
]


@pytest.fixture(scope="module")
def model_and_config():
    torch.set_num_threads(1)
    return fitted_model()


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_TILING)
def test_bad_tiling_is_refused_by_name(model_and_config, kwargs, error, message):
    model, config = model_and_config
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(error, match=message):
        predict_probabilities(model, config, image, **kwargs)
    with pytest.raises(error, match=message):
        segment_image(model, config, image, **kwargs)
    with pytest.raises(error, match=message):
        SegmentOptions(**kwargs)


def test_half_tile_overlap_is_accepted(model_and_config):
    model, config = model_and_config
    image = np.zeros((64, 64), np.uint8)
    assert predict_probabilities(model, config, image, tile_size=32, overlap=16, batch_size=1).shape == (
        3,
        64,
        64,
    )


@pytest.mark.parametrize(
    ("tile", "overlap", "message"),
    [
        (0, 8, "tile_size must be >= 1"),
        (64, 64, r"overlap must be in \[0, 32\]"),
        (64, -1, "overlap must be >= 0"),
    ],
)
def test_tile_grid_refuses_what_it_used_to_clamp(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        tile_grid((256, 256), tile, overlap)


def test_cli_overlap_limit_matches_the_api(tmp_path, capsys):
    from napari_cellseg.cli import main

    assert main(["segment", str(tmp_path / "x.png"), "--tile", "64", "--overlap", "40"]) == 2
    assert "--overlap must be in [0, 32]" in capsys.readouterr().err


def test_an_image_too_small_for_the_network_says_so(model_and_config, tmp_path):
    # A 20 x 20 crop of stroma came out as one cell covering it, without a word.
    from napari_cellseg.inference.batch import segment_file
    from napari_cellseg.inference.segment import SmallImageWarning
    from napari_cellseg.io import write_tiff_layer
    from napari_cellseg.sample_data import load_sample

    model, config = model_and_config
    image = np.asarray(load_sample("c_histology_1")[0])[:20, :30]
    with pytest.warns(SmallImageWarning, match=r"only 20 x 30 px: under 64 px a side"):
        segment_image(model, config, image)
    with pytest.warns(SmallImageWarning, match=r"only 100 x 100 px \(50 x 50 at the model's scale\)"):
        segment_image(model, config, np.zeros((100, 100), np.uint8), diameter=config.object_diameter * 2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallImageWarning)
        segment_image(model, config, np.zeros((64, 80), np.uint8))
    # a file's report carries it as its note, which the command line prints once per image
    from tiny_models import save_fitted_model

    model_dir = save_fitted_model(tmp_path / "model")
    write_tiff_layer(tmp_path / "corner.tif", image, "image", {"rgb": True})
    with pytest.warns(SmallImageWarning):
        report = segment_file(
            tmp_path / "corner.tif", model_dir, tmp_path / "out", SegmentOptions(tile_size=128)
        )
    assert report.status == "done" and "only 20 x 30 px" in report.note
