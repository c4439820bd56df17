"""Training crops: weights, determinism, shards, targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellseg.data.augment import Augmenter
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.normalize import NormalizationConfig
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.data import CropDataset, StepSampler, image_weights, make_loader, select_ids

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset():
    return CellDataset.open(SAMPLE_DIR)


def _crops(dataset, ids=None, preset="default", seed=0, **weights):
    ids = ids or dataset.ids
    probabilities = image_weights(dataset, ids, weights or None, patch_size=64, area_weighted=False)
    augmenter = Augmenter.preset(preset, patch_size=(64, 64))
    return CropDataset(dataset, ids, probabilities, augmenter, NormalizationConfig(), seed=seed)


def test_image_weights_oversample_a_microscope_and_follow_area(dataset):
    ids = dataset.ids
    microscopes = np.array([dataset[i].microscope for i in ids])
    plain = image_weights(dataset, ids, None, patch_size=64, area_weighted=False)
    assert np.allclose(plain, 1 / len(ids))
    boosted = image_weights(dataset, ids, {"C": 3}, patch_size=64, area_weighted=False)
    assert boosted[microscopes == "C"].sum() == pytest.approx(3 * 2 / (3 * 2 + 4))
    by_area = image_weights(dataset, ids, None, patch_size=256, area_weighted=True)
    b = ids.index(next(i for i in ids if dataset[i].microscope == "B"))  # 1024x1024 = 16 patches
    a = ids.index(next(i for i in ids if dataset[i].microscope == "A"))  # 256x256 = 1 patch
    assert by_area[b] == pytest.approx(16 * by_area[a])
    with pytest.raises(ValueError, match="no training images"):
        image_weights(dataset, [], None)


def test_crop_is_a_pure_function_of_seed_and_index(dataset):
    crops = _crops(dataset)
    first = [crops.sample(k) for k in (5, 1, 9)]
    again = _crops(dataset)  # a fresh dataset, another order, a cold cache
    second = [again.sample(k) for k in (9, 5, 1)]
    for (x1, y1), (x2, y2) in zip(first, [second[1], second[2], second[0]]):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    other_seed = _crops(dataset, seed=1).sample(5)
    assert not np.array_equal(other_seed[0], first[0][0])


def test_crops_have_network_shapes_and_valid_classes(dataset):
    crops = _crops(dataset)
    for k in range(6):
        image, target = crops[k]
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert target.shape == (64, 64) and target.dtype == torch.int64
        assert set(torch.unique(target).tolist()) <= {0, 1, 2}
    # Over a few crops every class shows up: boundaries come from the warped instances.
    classes = set()
    for k in range(6):
        classes |= set(np.unique(crops.sample(k)[1]).tolist())
    assert classes == {0, 1, 2}


def test_microscope_weights_change_what_is_drawn(dataset):
    c_ids = [i for i in dataset.ids if dataset[i].microscope == "C"]
    only_c = _crops(dataset, ids=c_ids)
    assert {only_c.image_for(k) for k in range(50)} == set(c_ids)
    mixed = _crops(dataset, C=50.0)
    drawn = [dataset[mixed.image_for(k)].microscope for k in range(200)]
    assert drawn.count("C") > 150  # 100 of 104 weight units are C


def test_step_sampler_shards_are_disjoint_and_cover_the_global_batch():
    ranks = [list(StepSampler(3, start_step=2, stop_step=4, rank=r, world_size=2)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == list(range(12, 24))  # steps 2 and 3 of batch 3 x 2 ranks
    single = list(StepSampler(6, start_step=2, stop_step=4))
    assert sorted(single) == sorted(ranks[0] + ranks[1])
    with pytest.raises(ValueError, match=r"rank 2 is not in 0\.\.1"):
        StepSampler(2, 0, 1, rank=2, world_size=2)


def test_loader_batches_are_one_step_each_and_worker_independent(dataset):
    crops = _crops(dataset, preset="none")
    serial = [b for b in make_loader(crops, StepSampler(2, 0, 2), num_workers=0)]
    assert len(serial) == 2 and serial[0][0].shape == (2, 3, 64, 64)
    direct = torch.stack([crops[k][0] for k in (2, 3)])
    assert torch.equal(serial[1][0], direct)


def test_select_ids_by_split_and_microscope(dataset, sample_split):
    from napari_cellseg.data.splitfile import read_split

    subsets = read_split(sample_split)
    train, dev = select_ids(dataset, subsets, ("A", "B", "C"))
    assert len(train) == 5 and len(dev) == 1
    train_c, _ = select_ids(dataset, subsets, ("C",))
    assert [dataset[i].microscope for i in train_c] == ["C"]
    assert select_ids(dataset, None, ("A",))[1] == []
    with pytest.raises(ValueError, match="not in the dataset"):
        select_ids(dataset, {**subsets, "nope": "train"}, ("A",))


def test_distance_profile_crops_are_soft_targets(dataset):
    probabilities = image_weights(dataset, dataset.ids, None, patch_size=64, area_weighted=False)
    augmenter = Augmenter.preset("default", patch_size=(64, 64))
    soft = CropDataset(dataset, dataset.ids, probabilities, augmenter, NormalizationConfig(),
                       target_profile="distance")  # fmt: skip
    hard = _crops(dataset)
    for k in range(4):
        image, target = soft[k]
        assert target.shape == (3, 64, 64) and target.dtype == torch.float32
        assert torch.allclose(target.sum(0), torch.ones(64, 64))
        # the same crop: input identical, background where the hard target has it
        hard_image, hard_target = hard.sample(k)
        assert np.array_equal(image.numpy(), hard_image)
        assert np.array_equal(target[0].numpy() == 1, hard_target == 0)


@pytest.mark.parametrize(
    ("asked", "device", "cores", "local_world", "expected"),
    [
        (-1, "cpu", 16, "", 0),  # the CPU: crops in the training process
        (-1, "cuda", 16, "", 8),  # a core per worker, one left, at most 8
        (-1, "cuda", 4, "", 3),
        (-1, "cuda", 16, "4", 3),  # torchrun: 4 processes share the 16 cores
        (-1, "cuda", 1, "", 0),
        (2, "cuda", 16, "", 2),  # asked for: as asked, up to the cores
        (32, "cpu", 16, "", 16),
    ],
)
def test_worker_count_defaults_feed_a_gpu_from_the_cores(
    monkeypatch, asked, device, cores, local_world, expected
):
    from types import SimpleNamespace

    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.setup import worker_count

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    config = TrainConfig(data_dir="d", out_dir="o", num_workers=asked)
    assert worker_count(config, SimpleNamespace(type=device)) == expected


def test_an_image_larger_than_the_cache_is_kept_alone_not_decoded_for_every_crop(dataset, monkeypatch):
    from napari_cellseg.training.data import ImageCache

    loads = []
    original = dataset.load_image
    monkeypatch.setattr(dataset, "load_image", lambda image_id: loads.append(image_id) or original(image_id))
    small, large = dataset.ids[0], dataset.ids[1]
    cache = ImageCache(dataset, NormalizationConfig(), max_bytes=1)  # every image is larger
    for _ in range(3):
        cache.get(large)
    assert loads == [large]
    cache.get(small)
    cache.get(small)
    assert loads == [large, small]  # the big one made room: one image held at a time


def test_the_nucleus_size_is_measured_on_target_maps_too(tmp_path):
    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import load_sample
    from napari_cellseg.training.setup import estimate_object_diameter

    image, mask, _ = load_sample("c_histology_1")
    add_to_dataset(tmp_path / "masks", "a", image, mask, "C")
    add_to_dataset(
        tmp_path / "targets", "a", image, instances_to_targets(mask, thickness=1), "C", kind="targets"
    )
    from_masks = estimate_object_diameter(CellDataset.open(tmp_path / "masks"), ["a"])
    from_targets = estimate_object_diameter(CellDataset.open(tmp_path / "targets"), ["a"])
    assert from_masks and from_targets == pytest.approx(from_masks, rel=0.15)
