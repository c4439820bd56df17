"""Dev evaluators: pixel metrics by hand, AP@0.5 on a real mask."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.targets import instances_to_targets
from napari_cellseg.sample_data import load_sample
from napari_cellseg.training.evaluate import InstanceEvaluator, PixelEvaluator, make_evaluator


def _one_hot(target: np.ndarray) -> np.ndarray:
    return np.stack([(target == k).astype(np.float32) for k in range(3)])


def test_pixel_metrics_by_hand():
    target = np.array([[0, 0, 1, 1], [2, 2, 2, 255]], dtype=np.uint8)  # 255 is ignored
    predicted = np.array([[0, 1, 1, 2], [2, 2, 0, 0]], dtype=np.uint8)
    evaluator = PixelEvaluator()
    evaluator.add(_one_hot(predicted), target)
    result = evaluator.result()
    # boundary: TP 1, FP 1, FN 1 -> F1 = 2/4; interior: TP 2, FP 1, FN 1 -> F1 = 4/6
    assert result["f1_boundary"] == pytest.approx(0.5)
    assert result["f1_interior"] == pytest.approx(2 / 3)
    assert result["pixel_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    # background: TP 1, FP 1 (the interior pixel called background), FN 1 -> IoU 1/3
    assert result["iou_background"] == pytest.approx(1 / 3)
    assert result["pixel_accuracy"] == pytest.approx(4 / 7)
    with pytest.raises(ValueError, match=r"must be \(3, H, W\) matching the target"):
        evaluator.add(np.zeros((3, 2, 2), np.float32), target)


def test_ap50_is_one_for_the_ground_truth_and_drops_for_noise():
    _, instances, _ = load_sample("c_histology_2")
    target = instances_to_targets(instances)
    perfect = InstanceEvaluator()
    perfect.add(_one_hot(target), target, instances)
    result = perfect.result()
    assert result["ap50"] > 0.95 and result["pixel_f1"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = InstanceEvaluator()
    noisy.add(rng.dirichlet((1, 1, 1), size=target.shape).transpose(2, 0, 1).astype(np.float32), target)
    assert noisy.result()["ap50"] < 0.2  # instances rebuilt from the target when not given


def test_make_evaluator_names():
    assert make_evaluator("pixel_f1").score_name == "pixel_f1"
    assert make_evaluator("auto").score_name == "ap50"
    with pytest.raises(ValueError, match="unknown dev metric"):
        make_evaluator("dice")


def test_size_normalised_dev_images_are_scored_at_their_own_scale_like_segment():
    """The network gets each image's known diameter and resamples it tile by tile, as
    ``segment --diameter`` does; the cells are scored against the labels as drawn."""
    import dataclasses

    from napari_cellseg.training.evaluate import DevImage, evaluate_dev

    image, instances, _ = load_sample("c_histology_2")
    target = instances_to_targets(instances)

    @dataclasses.dataclass
    class Config:
        object_diameter: float = 30.0
        default_diameter: float | None = 0.0

    seen = []

    def predict(model, config, pixels, device=None, **kwargs):
        seen.append((pixels.shape, kwargs, config.default_diameter))
        return _one_hot(target)  # probabilities at the image's scale

    class Model:
        def train(self):
            pass

    dev = [DevImage("a", image, target, instances, factor=0.5), DevImage("b", image, target, instances)]
    result = evaluate_dev(Model(), Config(), dev, InstanceEvaluator(), predict=predict)
    assert seen[0] == (image.shape, {"diameter": 60.0}, None)  # 30 px / 0.5
    assert seen[1] == (image.shape, {}, None)
    assert result["ap50"] > 0.95
