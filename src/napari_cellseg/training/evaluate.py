"""Dev-set scoring during training: pixel metrics, and AP@0.5 after the watershed.

An evaluator collects one image at a time (:meth:`add`, with the predicted
``(3, H, W)`` class probabilities and the ground truth) and returns a flat
``{name: float}`` dict (:meth:`result`) whose ``score_name`` entry picks the
best checkpoint (higher is better). Two are provided:

``pixel_f1`` (:class:`PixelEvaluator`)
    Pixels take the most probable class; from the confusion matrix pooled over
    the dev images: F1 of the boundary and of the interior class, their mean
    ``pixel_f1`` (the score), per-class IoU and ``mean_iou`` over 3 classes.
``ap50`` (:class:`InstanceEvaluator`)
    The pixel metrics plus instances from
    :func:`napari_cellseg.inference.watershed.instances_from_probabilities`
    (default :class:`WatershedParams`) matched to the ground-truth instances:
    ``ap50`` = TP / (TP + FP + FN) at IoU 0.5 with counts pooled over images
    (the score), ``ap75``, ``ap50_image_mean`` and ``f1_instances50`` (only IoU 0.5
    and 0.75 are matched during training: the DSB score's ten thresholds are for
    ``napari-cellseg evaluate``).

Any object with ``score_name``, ``add`` and ``result`` can be passed to the
engine instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..classes import BOUNDARY, CLASS_NAMES, INTERIOR

if TYPE_CHECKING:
    from ..data.dataset import CellDataset


class DevEvaluator(Protocol):
    score_name: str

    def add(self, probabilities: np.ndarray, target: np.ndarray, instances: np.ndarray | None) -> None: ...

    def result(self) -> dict[str, float]: ...


class PixelEvaluator:
    """Pooled pixel metrics of the most probable class (score ``pixel_f1``)."""

    score_name = "pixel_f1"

    def __init__(self) -> None:
        self.confusion = np.zeros((3, 3), dtype=np.int64)  # rows truth, columns prediction

    def add(self, probabilities: np.ndarray, target: np.ndarray, instances: np.ndarray | None = None) -> None:
        if probabilities.ndim != 3 or probabilities.shape[0] != 3 or probabilities.shape[1:] != target.shape:
            raise ValueError(
                f"probabilities must be (3, H, W) matching the target {target.shape}, got {probabilities.shape}"
            )
        predicted = np.argmax(probabilities, axis=0)
        valid = target < 3  # an ignore index (255) counts nowhere
        pairs = target[valid].astype(np.int64) * 3 + predicted[valid]
        self.confusion += np.bincount(pairs, minlength=9).reshape(3, 3)

    def result(self) -> dict[str, float]:
        c = self.confusion
        tp = np.diag(c).astype(np.float64)
        fp, fn = c.sum(axis=0) - tp, c.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), 0.0)
        out = {f"f1_{CLASS_NAMES[k]}": float(f1[k]) for k in (BOUNDARY, INTERIOR)}
        out["pixel_f1"] = float((f1[BOUNDARY] + f1[INTERIOR]) / 2)
        out.update({f"iou_{name}": float(iou[k]) for k, name in enumerate(CLASS_NAMES)})
        out["mean_iou"] = float(iou.mean())
        out["pixel_accuracy"] = float(tp.sum() / max(1, c.sum()))
        return out


class InstanceEvaluator(PixelEvaluator):
    """Pixel metrics plus AP at IoU 0.5 after the watershed (score ``ap50``)."""

    score_name = "ap50"

    def __init__(self, params: Any = None) -> None:
        super().__init__()
        from ..inference.watershed import WatershedParams

        self.params = params if params is not None else WatershedParams()
        self.images: list[Any] = []

    def add(self, probabilities: np.ndarray, target: np.ndarray, instances: np.ndarray | None = None) -> None:
        from ..inference.watershed import instances_from_probabilities
        from ..metrics import image_metrics

        super().add(probabilities, target)
        if instances is None:
            from ..data.targets import targets_to_instances

            instances = targets_to_instances(target)
        predicted = instances_from_probabilities(probabilities, self.params)
        self.images.append(image_metrics(instances, predicted, thresholds=(0.5, 0.75)))

    def result(self) -> dict[str, float]:
        from ..metrics import pool_metrics

        out = super().result()
        if self.images:
            pooled = pool_metrics(self.images)
            out["ap50"] = float(pooled.at("ap", 0.5))
            out["ap75"] = float(pooled.at("ap", 0.75))
            out["ap50_image_mean"] = float(pooled.at("image_mean_ap", 0.5))
            out["f1_instances50"] = float(pooled.at("f1", 0.5))
        else:
            out["ap50"] = 0.0
        return out


def make_evaluator(metric: str = "auto", watershed: dict | None = None) -> DevEvaluator:
    """An evaluator by name; ``auto`` is ``ap50`` when the watershed and metrics import.

    ``watershed``: the settings AP is scored with (a run from a trained model keeps its
    tuned ones); default :class:`~napari_cellseg.inference.watershed.WatershedParams`.
    """
    if metric not in ("auto", "ap50", "pixel_f1"):
        raise ValueError(f"unknown dev metric {metric!r}; choose 'auto', 'ap50' or 'pixel_f1'")
    if metric == "pixel_f1":
        return PixelEvaluator()
    try:
        if watershed:
            from ..inference.watershed import WatershedParams

            return InstanceEvaluator(WatershedParams.from_dict(watershed))
        return InstanceEvaluator()
    except ImportError:
        if metric == "ap50":
            raise
        return PixelEvaluator()


@dataclass(frozen=True)
class DevImage:
    """One dev image with its ground truth, loaded once per run."""

    id: str
    image: np.ndarray
    target: np.ndarray
    instances: np.ndarray | None
    factor: float = 1.0  # size normalisation: the network sees the image resampled by it


def load_dev_images(
    dataset: CellDataset,
    ids: list[str],
    thickness: int = 1,
    limit: int | None = None,
    size_factors: Mapping[str, float] | None = None,
) -> list[DevImage]:
    """Read the dev images (the first ``limit`` of ``ids``) and their targets.

    With ``size_factors`` (size-normalised training), each image keeps its own
    scale and records its factor: :func:`evaluate_dev` has the network resample
    it, as ``segment --diameter`` does, and scores the cells at the image's scale.
    """
    from ..data.targets import instances_to_targets

    out = []
    for image_id in ids[:limit]:
        factor = (size_factors or {}).get(image_id, 1.0)
        image = dataset.load_image(image_id)
        if dataset[image_id].label_kind == "masks":
            instances = dataset.load_instances(image_id)
            target = instances_to_targets(instances, thickness=thickness)
        else:
            instances, target = None, dataset.load_target(image_id)
        out.append(DevImage(image_id, image, target, instances, factor))
    return out


def evaluate_dev(
    model: Any,
    model_config: Any,
    images: list[DevImage],
    evaluator: DevEvaluator,
    device: Any = None,
    predict: Callable[..., np.ndarray] | None = None,
) -> dict[str, float]:
    """Score ``model`` on dev images (whole images, tiled prediction as in inference).

    ``predict(model, model_config, image, device=..., [diameter=...])`` (``diameter``
    for images with a size factor) defaults to
    :func:`napari_cellseg.inference.predict.predict_probabilities`. The model is
    left in train mode afterwards.
    """
    if predict is None:
        from ..inference.predict import predict_probabilities as predict
    if getattr(model_config, "default_diameter", None) is not None:
        # each image's scale is known (DevImage.factor): no estimate
        model_config = dataclasses.replace(model_config, default_diameter=None)
    try:
        for dev in images:
            sized = {}
            if dev.factor != 1.0:  # the known nucleus size, normalised tile by tile as in inference
                sized["diameter"] = model_config.object_diameter / dev.factor
            probabilities = predict(model, model_config, dev.image, device=device, **sized)
            evaluator.add(probabilities, dev.target, dev.instances)
    finally:
        model.train()
    return evaluator.result()
