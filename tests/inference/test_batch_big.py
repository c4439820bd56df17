"""segment's block-wise path: each large plane of a stack, channels-first planes, and metadata."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from tiny_models import save_fitted_model

from napari_cellseg.inference.batch import SegmentOptions, segment_file
from napari_cellseg.io import read_tiff_layer

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def grey():
    from napari_cellseg.sample_data import load_sample

    image = load_sample("c_histology_1")[0]
    return (image.mean(axis=-1) if image.ndim == 3 else image).astype(np.uint8)


def _segment(path, model_dir, out, **options):
    report = segment_file(path, model_dir, out, SegmentOptions(tile_size=128, **options))
    assert report.status == "done", report.message
    return report, *read_tiff_layer(out / f"{path.stem}.tif")[:2]


def test_each_large_plane_of_a_stack_goes_block_wise_with_ids_unique_across_planes(tmp_path, model_dir, grey):
    # Stacks never took the bounded-memory path: a (2, 11000, 11000) stack was killed at 6 GiB.
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([grey, grey[::-1]]))
    normal, expected, _ = _segment(path, model_dir, tmp_path / "a", diameter=0)
    big, labels, attributes = _segment(
        path, model_dir, tmp_path / "b", diameter=0, big_image_pixels=1000, save_probabilities=True
    )
    metadata = attributes["metadata"]
    assert metadata["block_wise"] is True and labels.shape == expected.shape == (2, *grey.shape)
    first, second = (np.unique(plane[plane > 0]) for plane in labels)
    assert len(first) and len(second) and first.max() < second.min()  # one id, one plane
    assert labels.max() == big.n_instances == len(first) + len(second)
    # The planes share the factor measured on the middle plane, as the in-memory path does.
    assert metadata["scale_factor"] == pytest.approx(read_tiff_layer(tmp_path / "a" / "stack.tif")[1]["metadata"]["scale_factor"])  # fmt: skip
    assert abs(big.n_instances - normal.n_instances) <= 0.1 * normal.n_instances
    probabilities = tifffile.imread(tmp_path / "b" / "stack_probabilities.tif")
    assert probabilities.size == 3 * labels.size  # (3, Z, H, W)


def test_a_channels_first_plane_is_sized_by_its_rows_and_columns(tmp_path, model_dir, grey):
    # (C, H, W) with --channel was sized C x H (512 px here), so it never went block-wise.
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, np.stack([255 - grey, grey]))
    threshold = 2 * grey.shape[0] + 1  # above C x H, below H x W
    _, labels, attributes = _segment(path, model_dir, tmp_path / "out", channel=1, big_image_pixels=threshold)
    assert attributes["metadata"]["block_wise"] is True and labels.shape == grey.shape


def test_block_wise_labels_record_the_diameter_and_watershed_like_the_others(tmp_path, model_dir, grey):
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, grey)
    _, _, normal = _segment(path, model_dir, tmp_path / "a", diameter=15)
    _, _, big = _segment(path, model_dir, tmp_path / "b", diameter=15, big_image_pixels=1000)
    assert big["metadata"]["block_wise"] is True
    assert big["metadata"]["diameter"] == normal["metadata"]["diameter"] == 15
    assert big["metadata"]["watershed"] == normal["metadata"]["watershed"] != {}
    assert big["metadata"]["scale_factor"] == pytest.approx(normal["metadata"]["scale_factor"])
