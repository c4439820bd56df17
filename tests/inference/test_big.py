"""Big images: block-wise prediction and watershed into zarr, seam-consistent stitching."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.big import instances_big, predict_probabilities_big, segment_big
from napari_cellseg.inference.predict import predict_probabilities, segment_image
from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
from napari_cellseg.instance_matching import label_overlap, match_instances
from napari_cellseg.sample_data import load_sample

zarr = pytest.importorskip("zarr")
torch = pytest.importorskip("torch")


class WindowRecorder:
    """An array that records the largest contiguous window read from it."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.largest = 0

    def __getitem__(self, index):
        window = self.array[index]
        if all(not isinstance(i, slice) or i.step in (None, 1) for i in index):
            self.largest = max(self.largest, window.shape[0] * window.shape[1])
        return window


def matched(a: np.ndarray, b: np.ndarray, iou: float) -> int:
    return match_instances(label_overlap(a, b), iou).n_matched


def consecutive(labels: np.ndarray) -> bool:
    ids = np.unique(labels)
    return np.array_equal(ids, np.arange(ids.size))


@pytest.fixture(scope="module")
def brightfield_probabilities():
    _, labels, _ = load_sample("b_brightfield")  # 1024 x 1024, 57 nuclei
    return probabilities_from_instances(labels, seed=1), labels


def test_blockwise_watershed_matches_the_whole_image(tmp_path, brightfield_probabilities):
    probabilities, _ = brightfield_probabilities
    params = WatershedParams()
    whole = instances_from_probabilities(probabilities, params)
    result = instances_big(probabilities, tmp_path / "labels.zarr", params, block_size=192, context=96)
    labels = np.asarray(result.labels[...])
    assert result.labels.dtype == np.uint32 and labels.shape == whole.shape
    assert result.n_instances == int(whole.max()) > 40
    assert consecutive(labels)
    assert matched(whole, labels, 0.9) == result.n_instances
    assert result.truncated == 0


def test_blockwise_watershed_reads_zarr_probabilities(tmp_path, brightfield_probabilities):
    probabilities, _ = brightfield_probabilities
    stored = zarr.open_array(str(tmp_path / "p.zarr"), mode="w", shape=probabilities.shape, chunks=(3, 256, 256), dtype="float16")  # fmt: skip
    stored[...] = probabilities.astype(np.float16)
    result = instances_big(stored, tmp_path / "labels.zarr", block_size=256, context=64)
    whole = instances_from_probabilities(probabilities)
    assert matched(whole, np.asarray(result.labels[...]), 0.9) >= whole.max() - 1


def test_a_too_small_context_is_reported_as_truncated(tmp_path, brightfield_probabilities):
    probabilities, _ = brightfield_probabilities
    result = instances_big(probabilities, tmp_path / "labels.zarr", block_size=128, context=4)
    assert result.truncated > 0


def test_an_existing_output_is_never_overwritten(tmp_path, brightfield_probabilities):
    probabilities, _ = brightfield_probabilities
    (tmp_path / "labels.zarr").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        instances_big(probabilities[:, :64, :64], tmp_path / "labels.zarr")


@pytest.fixture(scope="module")
def model_and_config():
    torch.set_num_threads(1)
    return fitted_model()


def test_segment_big_matches_segment_image_and_reads_only_windows(tmp_path, model_and_config):
    import dataclasses

    model, config = model_and_config
    # A small percentile sample, so that only a strided grid of the image is read whole.
    config = dataclasses.replace(
        config, normalization=dataclasses.replace(config.normalization, max_samples=4096)
    )
    image, _, _ = load_sample("c_histology_1")
    source = WindowRecorder(image)
    whole = segment_image(model, config, image, tile_size=128, overlap=64)
    result = segment_big(
        model, config, source, tmp_path / "labels.zarr", probabilities_out=tmp_path / "p.zarr",
        block_size=64, context=64, tile_size=128, overlap=64,
    )  # fmt: skip
    labels = np.asarray(result.labels[...])
    assert matched(whole.labels, labels, 0.9) >= 0.95 * whole.n_instances
    assert abs(result.n_instances - whole.n_instances) <= 2
    probabilities = np.asarray(result.probabilities[...], np.float32)
    np.testing.assert_allclose(probabilities, whole.probabilities, atol=5e-3)
    # Memory is bounded by the block: no read beyond a block and its context margins.
    margin = 64 + 16
    assert 0 < source.largest <= (64 + 2 * margin) ** 2 < image.shape[0] * image.shape[1]


def test_big_prediction_from_a_zarr_image(tmp_path, model_and_config):
    model, config = model_and_config
    image = load_sample("c_histology_2")[0]
    stored = zarr.open_array(str(tmp_path / "image.zarr"), mode="w", shape=image.shape, chunks=(64, 64, 3), dtype=image.dtype)  # fmt: skip
    stored[...] = image
    expected = predict_probabilities(model, config, image, tile_size=128, overlap=64)
    got = predict_probabilities_big(
        model, config, stored, tmp_path / "p.zarr", block_size=128, tile_size=128, overlap=64, dtype="float32"
    )
    assert got.shape == (3, *image.shape[:2])
    np.testing.assert_allclose(np.asarray(got[...]), expected, atol=2e-3)


def test_big_mode_refuses_stacks(tmp_path, model_and_config):
    model, config = model_and_config
    with pytest.raises(ValueError, match="one plane at a time"):
        predict_probabilities_big(model, config, np.zeros((2, 32, 32), np.uint8), tmp_path / "p.zarr")


@pytest.fixture(scope="module")
def small_probabilities():
    labels = np.zeros((128, 128), np.uint16)
    for k, (y, x) in enumerate(np.ndindex(8, 8), start=1):
        labels[16 * y + 3 : 16 * y + 13, 16 * x + 3 : 16 * x + 13] = k
    return probabilities_from_instances(labels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": 0}, "block_size must be >= 64, got 0"),
        ({"block_size": -64}, "block_size must be >= 64, got -64"),
        ({"context": -10}, "context must be >= 0, got -10"),
    ],
)
def test_bad_blocks_are_refused_before_the_output_is_created(tmp_path, small_probabilities, kwargs, message):
    probabilities = small_probabilities
    with pytest.raises(ValueError, match=message):
        instances_big(probabilities, tmp_path / "labels.zarr", **kwargs)
    assert not (tmp_path / "labels.zarr").exists()  # so that a corrected retry is not refused
    assert instances_big(probabilities, tmp_path / "labels.zarr").n_instances > 0


def test_integer_probabilities_are_refused(tmp_path, small_probabilities):
    scaled = (small_probabilities * 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"expected float probabilities.*uint8"):
        instances_big(scaled, tmp_path / "labels.zarr")
    assert not (tmp_path / "labels.zarr").exists()


def test_a_narrow_caller_array_is_refused_rather_than_wrapping_ids(small_probabilities):
    probabilities = small_probabilities
    with pytest.raises(ValueError, match=r"32 bits or more.*uint8"):
        instances_big(probabilities, np.zeros((128, 128), np.uint8))
    out = np.zeros((128, 128), np.int64)
    assert instances_big(probabilities, out).n_instances == int(out.max()) == 64


def test_segment_bigs_scratch_survives_a_batch_sweeping_its_folder(tmp_path, model_and_config, monkeypatch):
    """segment writes into the same folder and removes abandoned scratch: never a running job's."""
    import os
    import time

    from napari_cellseg.inference import batch_outputs
    from napari_cellseg.inference import big as big_module

    model, config = model_and_config
    image, _, _ = load_sample("c_histology_1")
    real = big_module.iter_instances_big
    swept = []

    def sweep_first(probabilities, *args, **kwargs):  # a batch starting mid-run, the scratch an hour old
        (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith(".cellseg-probabilities-")]
        old = time.time() - 7200
        os.utime(folder, (old, old))
        batch_outputs._cleaned.discard(str(tmp_path.resolve()))
        batch_outputs.remove_abandoned_scratch(tmp_path)
        swept.append(folder.exists())
        return (yield from real(probabilities, *args, **kwargs))

    monkeypatch.setattr(big_module, "iter_instances_big", sweep_first)
    whole = segment_image(model, config, image, tile_size=128, overlap=64)
    result = segment_big(model, config, image, tmp_path / "labels.zarr", block_size=64, context=64,
                         tile_size=128, overlap=64)  # fmt: skip
    assert swept == [True] and abs(result.n_instances - whole.n_instances) <= 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cellseg-")]  # removed when done
