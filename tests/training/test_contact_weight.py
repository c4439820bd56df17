"""contact_weight: boundary pixels between two cells weigh more in weighted-ce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellseg.classes import BOUNDARY
from napari_cellseg.data.augment import Augmenter
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.normalize import NormalizationConfig
from napari_cellseg.data.targets import contact_pixels, instances_to_targets
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.data import CropDataset, image_weights
from napari_cellseg.training.losses import CONTACT_TARGET, WeightedCrossEntropy, build_loss

torch.set_num_threads(1)


def _two_touching_and_one_alone():
    labels = np.zeros((20, 30), np.int32)
    labels[4:12, 2:8] = 1
    labels[4:12, 8:14] = 2  # touches cell 1 along column 7/8
    labels[4:12, 22:28] = 3  # alone
    return labels


def test_contact_pixels_are_between_two_cells_only():
    labels = _two_touching_and_one_alone()
    contact = contact_pixels(labels, radius=2)
    assert contact[6, 7] and contact[6, 8]  # both sides of the touching line
    assert contact[6, 6] and not contact[6, 5]  # within 2 px of cell 2, then not
    assert not contact[:, 18:].any()  # the lone cell has no contact anywhere
    assert not contact[0].any()  # rows 2 px above the cells: no window holds both
    with pytest.raises(ValueError, match="radius must be >= 1"):
        contact_pixels(labels, radius=0)
    with pytest.raises(ValueError, match=r"\(20, 30, 3\)"):
        contact_pixels(np.zeros((20, 30, 3), np.int32))


def test_contact_weight_multiplies_the_loss_of_contact_pixels_only():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    target = torch.tensor([[[0, 1, 2, 1], [1, 3, 3, 2], [0, 0, 2, 2], [1, 1, 0, 0]]])
    as_boundary = torch.where(target == CONTACT_TARGET, BOUNDARY, target)
    log_p = torch.log_softmax(logits, 1).gather(1, as_boundary[:, None])[:, 0]
    weights = torch.tensor([1.0, 5.0, 3.0], dtype=torch.float64)[as_boundary]
    weights = weights * torch.where(target == CONTACT_TARGET, 4.0, 1.0)
    expected = -(weights * log_p).sum() / weights.sum()
    loss = build_loss("weighted-ce", class_weights=(1, 5, 3), contact_weight=4.0)(logits, target)
    torch.testing.assert_close(loss, expected)
    # off (1): value 3 is no class, as before
    with pytest.raises(ValueError, match=r"class value\(s\) \[3\]"):
        WeightedCrossEntropy()(logits, target)
    assert "contact_weight=4.0" in repr(build_loss("weighted-ce", contact_weight=4.0))
    with pytest.raises(ValueError, match="contact_weight must be > 0"):
        WeightedCrossEntropy(contact_weight=0)


def test_crops_mark_contact_boundaries_and_keep_the_rest_of_the_target():
    dataset = CellDataset.open(SAMPLE_DIR)
    probabilities = image_weights(dataset, dataset.ids, None, patch_size=64, area_weighted=False)

    def crops(contact_weight):
        augmenter = Augmenter.preset("default", patch_size=(64, 64))
        return CropDataset(dataset, dataset.ids, probabilities, augmenter, NormalizationConfig(),
                           thickness=2, contact_weight=contact_weight)  # fmt: skip

    plain, marked = crops(1.0), crops(5.0)
    n_contact = 0
    for k in range(6):
        image, target = plain.sample(k)
        marked_image, marked_target = marked.sample(k)
        assert np.array_equal(image, marked_image)
        contact = marked_target == CONTACT_TARGET
        assert np.all(target[contact] == BOUNDARY)  # only boundary pixels become contacts
        assert np.array_equal(np.where(contact, BOUNDARY, marked_target), target)
        assert CONTACT_TARGET not in target
        n_contact += int(contact.sum())
    assert n_contact > 0  # the sample nuclei touch


def test_contact_boundaries_match_the_instances_they_come_from():
    labels = _two_touching_and_one_alone()
    target = instances_to_targets(labels, thickness=2)
    contact = (target == BOUNDARY) & contact_pixels(labels, radius=3)
    assert contact[:, 5:11].any() and not contact[:, 15:].any()


def test_config_accepts_contact_weight_with_hard_weighted_ce_only(tmp_path):
    TrainConfig(data_dir="d", out_dir="o", contact_weight=3.0).save(tmp_path / "train.json")
    assert TrainConfig.load(tmp_path / "train.json").contact_weight == 3.0

    def problems(**settings):
        config = TrainConfig(data_dir="data", out_dir="out", **settings)
        return [p for p in config.problems() if "contact_weight" in p]

    assert problems(contact_weight=3.0) == []
    (problem,) = problems(contact_weight=3.0, loss="weighted-bce")
    assert "needs loss 'weighted-ce'" in problem
    (problem,) = problems(contact_weight=3.0, target_profile="distance")
    assert "target_profile 'hard'" in problem
    (problem,) = problems(contact_weight=0)
    assert "contact_weight must be > 0" in problem
