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

# Training factors are kept in this range: beyond it, an image is mostly a
# labelling problem (one huge nucleus, specks) rather than another scale.
MIN_TRAIN_FACTOR = 0.25
MAX_TRAIN_FACTOR = 4.0


def size_factor(instances: np.ndarray, object_diameter: float) -> float:
    """``object_diameter / median nucleus diameter`` of ``instances``, clipped; 1.0 with < 3 nuclei."""
    diameter = median_diameter(instances)
    if diameter is None:
        return 1.0
    return float(np.clip(object_diameter / diameter, MIN_TRAIN_FACTOR, MAX_TRAIN_FACTOR))


def size_factors(dataset, ids: Iterable[str], object_diameter: float | None) -> dict[str, float]:
    """The factor of every id (all 1.0 when ``object_diameter`` is None)."""
    if object_diameter is None:
        return {image_id: 1.0 for image_id in ids}
    return {
        image_id: size_factor(dataset.load_reference_instances(image_id), object_diameter) for image_id in ids
    }


def resize_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resample ``(H, W)`` or ``(H, W, C)`` pixels by ``factor``, keeping the dtype.

    Area averaging when shrinking, bilinear when enlarging.
    """
    if factor == 1.0:
        return image
    shape = (scaled_size(image.shape[0], factor), scaled_size(image.shape[1], factor))
    out = resize_channels_last(np.asarray(image, dtype=np.float32), shape)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype, copy=False)


def resize_labels(labels: np.ndarray, factor: float) -> np.ndarray:
    """Resample instance labels or a class map by ``factor`` (nearest neighbour), keeping the dtype."""
    import cv2

    if factor == 1.0:
        return labels
    height, width = scaled_size(labels.shape[0], factor), scaled_size(labels.shape[1], factor)
    # NEAREST_EXACT samples at pixel centres, as the image's area and linear resampling do; plain
    # NEAREST takes floor(x / f) and would shift the labels up to half a pixel up-left of the image.
    out = cv2.resize(labels.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return out.astype(labels.dtype, copy=False)
