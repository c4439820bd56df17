"""Size normalisation: resample each image so its nuclei have one median diameter.

Microscopes and labs differ mostly by magnification. A model trained with
``TrainConfig.object_diameter = D`` sees every training image resampled by
``D / d``, ``d`` being the median equivalent diameter of that image's
labelled nuclei, so nuclei always measure about ``D`` pixels; at inference
the diameter of each image is estimated and the image resampled the same way
(the model's ``default_diameter`` is 0). This is Cellpose's ``diam_mean``.

No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..inference.scale import median_diameter, resize_channels_last, scaled_size
from .arguments import check_number

# Training factors are kept in this range: beyond it, an image is mostly a
# labelling problem (one huge nucleus, specks) rather than another scale.
MIN_TRAIN_FACTOR = 0.25
MAX_TRAIN_FACTOR = 4.0


def size_factor(instances: np.ndarray, object_diameter: float) -> float:
    """``object_diameter / median nucleus diameter`` of ``instances``, clipped; 1.0 with < 3 nuclei.

    ``object_diameter`` is in pixels, > 0.
    """
    object_diameter = check_number(object_diameter, "object_diameter", positive=True)
    diameter = median_diameter(instances)
    if diameter is None:
        return 1.0
    return float(np.clip(object_diameter / diameter, MIN_TRAIN_FACTOR, MAX_TRAIN_FACTOR))


def size_factors(dataset, ids: Iterable[str], object_diameter: float | None) -> dict[str, float]:
    """The factor of every id (all 1.0 when ``object_diameter`` is None)."""
    if object_diameter is None:
        return {image_id: 1.0 for image_id in ids}
    object_diameter = check_number(object_diameter, "object_diameter", positive=True)
    return {
        image_id: size_factor(dataset.load_reference_instances(image_id), object_diameter) for image_id in ids
    }


def resize_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resample ``(H, W)`` or ``(H, W, C)`` pixels by ``factor``, keeping the dtype.

    Area averaging when shrinking, bilinear when enlarging. ``factor`` is finite and > 0.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"image must be a non-empty (H, W) or (H, W, C) array, got shape {image.shape}")
    if image.dtype.kind not in "iuf":
        raise ValueError(f"image must have an integer or float dtype, got {image.dtype}")
    factor = check_number(factor, "factor", positive=True)
    if factor == 1.0:
        return image
    shape = (scaled_size(image.shape[0], factor), scaled_size(image.shape[1], factor))
    out = resize_channels_last(np.asarray(image, dtype=np.float32), shape)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype, copy=False)


def resize_labels(labels: np.ndarray, factor: float) -> np.ndarray:
    """Resample 2D instance labels or a class map by ``factor`` (nearest neighbour), keeping the dtype.

    ``labels`` are non-negative integers (bool kept as bool) of any size; ``factor`` is finite and > 0.
    A stack is resized plane by plane by the caller: a ``(Z, H, W)`` array is refused.
    """
    import cv2

    from ..instance_matching import check_labels

    original = np.asarray(labels)
    if original.ndim != 2 or 0 in original.shape:
        raise ValueError(f"labels must be a non-empty 2D (H, W) array, got shape {original.shape}")
    labels = check_labels(original)  # integer (bool as uint8) and >= 0
    factor = check_number(factor, "factor", positive=True)
    if factor == 1.0:
        return original
    height, width = scaled_size(labels.shape[0], factor), scaled_size(labels.shape[1], factor)
    values = None
    if labels.size and int(labels.max()) > np.iinfo(np.int32).max:
        # cv2 resizes int32 at most: larger ids are resized as indices into their sorted values.
        values, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape)
    # NEAREST_EXACT samples at pixel centres, as the image's area and linear resampling do; plain
    # NEAREST takes floor(x / f) and would shift the labels up to half a pixel up-left of the image.
    out = cv2.resize(labels.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    if values is not None:
        out = values[out]
    return out.astype(original.dtype, copy=False)
